package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

const compareTimeout = 40 * time.Minute

// trialKey names the results of one client on one workload and target.
type trialKey struct{ workload, target, client string }

// runCompare runs every client through every workload and target in a
// fresh child process per trial, rotating the client order each trial
// (ABC, BCA, CAB) and repeating the rotations rounds times, then prints one
// markdown table of medians.
func runCompare(w io.Writer, ws []workload, cs []string, cfg runConfig, rounds int) error {
	ctx, cancel := context.WithTimeout(context.Background(), compareTimeout)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	results := make(map[trialKey][]result)
	failures := make(map[trialKey][]string)
	started := time.Now()
	for _, wl := range ws {
		for _, target := range wl.targets {
			if cfg.target != "" && target != cfg.target {
				continue
			}
			for t, order := range rotations(cs, rounds) {
				for _, client := range order {
					if _, skip := wl.skip[client]; skip {
						continue
					}
					if ctx.Err() != nil {
						return fmt.Errorf("time limit reached: %w", ctx.Err())
					}
					k := trialKey{wl.name, target, client}
					r, err := runChild(ctx, self, wl, cfg, target, client)
					if err != nil {
						failures[k] = append(failures[k], err.Error())
						fmt.Fprintf(os.Stderr, "bench: %s %s trial %d %s: %v\n", wl.name, target, t+1, client, err)
						continue
					}
					results[k] = append(results[k], r)
					fmt.Fprintf(os.Stderr, "bench: %s %s trial %d %s: %s\n", wl.name, target, t+1, client, describe(r))
				}
			}
		}
	}
	fmt.Fprintf(w, "%d trials per cell (orders rotated), %s total, %s, GOMAXPROCS %d\n\n",
		3*rounds, time.Since(started).Round(time.Second), runtime.Version(), runtime.GOMAXPROCS(0))
	printTable(w, ws, cs, cfg, results, failures)
	return nil
}

// rotations returns rounds repetitions of the three rotations of cs that
// start at its first, second and third client.
func rotations(cs []string, rounds int) [][]string {
	var orders [][]string
	for r := 0; r < rounds; r++ {
		for k := 0; k < min(3, len(cs)); k++ {
			order := make([]string, 0, len(cs))
			for i := range cs {
				order = append(order, cs[(i+k)%len(cs)])
			}
			orders = append(orders, order)
		}
	}
	return orders
}

func runChild(ctx context.Context, self string, wl workload, cfg runConfig, target, client string) (result, error) {
	cctx, cancel := context.WithTimeout(ctx, wl.runTimeout()+15*time.Second)
	defer cancel()
	args := []string{
		"-workload", wl.name,
		"-client", client,
		"-target", target,
		"-n", strconv.Itoa(cfg.n),
		"-window", strconv.Itoa(cfg.window),
		"-mqttv", strconv.Itoa(int(cfg.version)),
		"-noaliases=" + strconv.FormatBool(cfg.noAliases),
		"-payload", strconv.Itoa(len(cfg.payload)),
	}
	cmd := exec.CommandContext(cctx, self, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return result{}, fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return parseResult(string(out))
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratio formats a/b, or "-" when either is missing.
func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// number formats a median for the table: thousands separated when large,
// more decimals when small.
func number(v float64) string {
	switch {
	case v >= 10000:
		s := strconv.FormatInt(int64(v+0.5), 10)
		for i := len(s) - 3; i > 0; i -= 3 {
			s = s[:i] + "," + s[i:]
		}
		return s
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func printTable(w io.Writer, ws []workload, cs []string, cfg runConfig, results map[trialKey][]result, failures map[trialKey][]string) {
	fmt.Fprintf(w, "| workload | broker | n | metric | goal | %s | ours ÷ best peer | ours ÷ raw | goal met |\n", strings.Join(cs, " | "))
	fmt.Fprintf(w, "|---|---|---|---|---|%s---|---|---|\n", strings.Repeat("---|", len(cs)))
	var notes []string
	for _, wl := range ws {
		for _, target := range wl.targets {
			if cfg.target != "" && target != cfg.target {
				continue
			}
			n := cfg.n
			if n == 0 {
				n = wl.n[target]
			}
			for _, m := range wl.metrics {
				if m.target != "" && m.target != target {
					continue
				}
				med := make(map[string]float64)
				var cells []string
				for _, c := range cs {
					k := trialKey{wl.name, target, c}
					var vals []float64
					for _, r := range results[k] {
						vals = append(vals, m.get(r))
					}
					med[c] = median(vals)
					cell := "-"
					if why, skip := wl.skip[c]; skip {
						notes = append(notes, fmt.Sprintf("%s/%s/%s: not run: %s", wl.name, target, c, why))
					}
					if len(vals) > 0 {
						cell = number(med[c])
					}
					if f := failures[k]; len(f) > 0 {
						notes = append(notes, fmt.Sprintf("%s/%s/%s: %d of %d trials failed: %s", wl.name, target, c, len(f), len(f)+len(results[k]), f[0]))
						cell += fmt.Sprintf(" (%d failed)", len(f))
					}
					cells = append(cells, cell)
				}
				best := 0.0
				for _, p := range peers {
					v := med[p]
					if v == 0 {
						continue
					}
					if best == 0 || (m.lower && v < best) || (!m.lower && v > best) {
						best = v
					}
				}
				met := ""
				if m.met != nil && med["ours"] != 0 {
					met = "no"
					if m.met(med["ours"], best, med["raw"]) {
						met = "yes"
					}
				}
				vsRaw := ratio(med["ours"], med["raw"])
				if m.noRaw {
					vsRaw = "-"
				}
				fmt.Fprintf(w, "| %s: %s | %s | %d | %s | %s | %s | %s | %s | %s |\n",
					wl.name, wl.what, target, n, m.label, m.goal, strings.Join(cells, " | "),
					ratio(med["ours"], best), vsRaw, met)
			}
		}
	}
	if len(notes) > 0 {
		slices.Sort(notes)
		notes = slices.Compact(notes)
		fmt.Fprintln(w)
		for _, s := range notes {
			fmt.Fprintf(w, "- %s\n", s)
		}
	}
}
