package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
)

// runCompare runs every client in a fresh child process, rotating the
// order each trial (ABC, BCA, CAB, ...) and repeating the rotations, then
// prints a markdown table of medians.
func runCompare(w io.Writer, cfg runConfig, rounds int) error {
	ctx, cancel := context.WithTimeout(context.Background(), compareTimeout)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	rates := make(map[string][]float64)
	failures := make(map[string][]string)
	var orders [][]string
	for r := 0; r < rounds; r++ {
		for k := 0; k < 3; k++ {
			order := make([]string, 0, len(clients))
			for i := range clients {
				order = append(order, clients[(i+k)%len(clients)])
			}
			orders = append(orders, order)
		}
	}
	for t, order := range orders {
		for _, client := range order {
			if ctx.Err() != nil {
				fmt.Fprintf(os.Stderr, "bench: compare time limit reached after %d trials\n", t)
				goto report
			}
			rate, err := runChild(ctx, self, cfg, client)
			if err != nil {
				failures[client] = append(failures[client], err.Error())
				fmt.Fprintf(os.Stderr, "bench: trial %d %s: %v\n", t+1, client, err)
				continue
			}
			rates[client] = append(rates[client], rate)
			fmt.Fprintf(os.Stderr, "bench: trial %d %s %.0f msg/s\n", t+1, client, rate)
		}
	}
report:
	printTable(w, cfg, rates, failures)
	return nil
}

func runChild(ctx context.Context, self string, cfg runConfig, client string) (float64, error) {
	cctx, cancel := context.WithTimeout(ctx, runTimeout+10*time.Second)
	defer cancel()
	args := []string{
		"-workload", cfg.workload,
		"-client", client,
		"-target", cfg.target,
		"-n", strconv.Itoa(cfg.n),
		"-window", strconv.Itoa(cfg.window),
		"-mqttv", strconv.Itoa(int(cfg.version)),
		"-payload", strconv.Itoa(len(cfg.payload)),
	}
	cmd := exec.CommandContext(cctx, self, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 6 && f[1] == client {
			return strconv.ParseFloat(f[5], 64)
		}
	}
	return 0, fmt.Errorf("no result line in %q", out)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func printTable(w io.Writer, cfg runConfig, rates map[string][]float64, failures map[string][]string) {
	med := make(map[string]float64)
	for _, c := range clients {
		med[c] = median(rates[c])
	}
	bestPeer := max(med["paho"], med["pahov5"])
	fmt.Fprintf(w, "\n%s to %s, n=%d, payload %d B, window %d, MQTT %d for ours/raw\n\n",
		cfg.workload, cfg.target, cfg.n, len(cfg.payload), cfg.window, cfg.version)
	fmt.Fprintln(w, "| client | trials | median msg/s | min | max | vs best peer | vs raw |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, c := range clients {
		v := rates[c]
		lo, hi := 0.0, 0.0
		if len(v) > 0 {
			lo, hi = v[0], v[0]
			for _, x := range v {
				lo, hi = min(lo, x), max(hi, x)
			}
		}
		trials := strconv.Itoa(len(v))
		if n := len(failures[c]); n > 0 {
			trials += fmt.Sprintf(" (%d failed)", n)
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %.0f | %.0f | %s | %s |\n",
			c, trials, med[c], lo, hi, ratio(med[c], bestPeer), ratio(med[c], med["raw"]))
	}
}
