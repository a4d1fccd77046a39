// Command bench compares this module's MQTT client ("ours") with
// paho.mqtt.golang ("paho", MQTT 3.1.1), paho.golang ("pahov5", MQTT 5.0),
// paho.golang's autopaho ("autopaho") and a raw baseline that writes
// pre-encoded packets on a plain net.Conn ("raw"), on loopback, against an
// in-process sink broker that acknowledges at once or a mosquitto child
// process.
//
//	go run . -workload pub-qos1 -client ours -target sink
//	go run . -compare -workload all > RESULTS.md
//	go run . -workload pub-qos1 -client ours -target sink -n 1000000 -cpuprofile cpu.out
//
// Workloads: pub-qos0, pub-qos1, pub-qos2 (pipelined publish), lat-qos1
// (publish-and-wait latency), e2e-qos0, e2e-qos1, e2e-lat (publisher to
// subscriber through mosquitto), recv-qos0, recv-qos1 (flood from the
// sink), idle (memory per idle connection), conn (10,000 connections).
//
// The scale command opens connections up to the open-file limit of one
// process, or beyond it across several client processes, against several
// mosquitto instances (see scale.go):
//
//	go run . scale -client ours -n 19000
//	go run . scale -client ours -n 100000 -procs 6
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/b4e21b16/mqtt/internal/sink"
)

// runConfig describes one measured run, or a comparison of runs.
type runConfig struct {
	workload string
	client   string
	target   string
	n        int // 0: the workload's default for the target
	window   int
	version  byte
	// noAliases stops ours from sending topic aliases.
	noAliases bool
	topic     string
	payload   []byte
	// memprofile, when set, receives a heap profile taken while all
	// connections of the idle and conn workloads are open.
	memprofile string
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "scale":
			raiseFileLimit()
			os.Exit(scaleMain(os.Args[2:]))
		case scaleWorkerCmd:
			raiseFileLimit()
			os.Exit(scaleWorkerMain(os.Args[2:]))
		}
	}
	var (
		workloadF  = flag.String("workload", "pub-qos0", "workload name, comma-separated names, or all (with -compare)")
		client     = flag.String("client", "ours", "ours, paho, pahov5, autopaho or raw")
		target     = flag.String("target", "", "sink or mosquitto; empty: every target of the workload")
		n          = flag.Int("n", 0, "messages (or connections) per run; 0: the workload's default")
		window     = flag.Int("window", 1000, "QoS 1/2 messages in flight (publish and receive flood)")
		version    = flag.Int("mqttv", 5, "MQTT version for ours and raw (4 or 5)")
		noAliases  = flag.Bool("noaliases", false, "ours: send no topic aliases (the library sends them when the broker allows)")
		payload    = flag.Int("payload", 64, "payload size in bytes")
		compare    = flag.Bool("compare", false, "run every client in child processes and print a markdown table")
		rounds     = flag.Int("rounds", 1, "compare: repetitions of the three interleaved orders")
		only       = flag.String("clients", strings.Join(clients, ","), "compare: clients to run")
		cpuprofile = flag.String("cpuprofile", "", "single run: write a CPU profile of the whole process to this file")
		memprofile = flag.String("memprofile", "", "single run: write a heap profile taken with all connections open (idle, conn), or every allocation of the run (the other workloads)")
	)
	flag.Parse()
	raiseFileLimit()
	cfg := runConfig{
		workload:  *workloadF,
		client:    *client,
		target:    *target,
		n:         *n,
		window:    *window,
		version:   byte(*version),
		noAliases: *noAliases,
		topic:     "bench/topic",
		payload:   make([]byte, *payload),

		memprofile: *memprofile,
	}
	if cfg.target != "" && cfg.target != "sink" && cfg.target != "mosquitto" {
		fatalf("unknown target %q", cfg.target)
	}
	if cfg.n < 0 || cfg.window <= 0 || cfg.window > 65535 {
		fatalf("bad -n or -window")
	}
	if cfg.version != 4 && cfg.version != 5 {
		fatalf("bad -mqttv %d", cfg.version)
	}
	names := strings.Split(cfg.workload, ",")
	if cfg.workload == "all" {
		names = names[:0]
		for _, w := range workloads {
			names = append(names, w.name)
		}
	}
	var ws []workload
	for _, name := range names {
		w, err := findWorkload(name)
		if err != nil {
			fatalf("%v", err)
		}
		ws = append(ws, w)
	}
	if *compare {
		cs := strings.Split(*only, ",")
		for _, c := range cs {
			if _, ok := dialers[c]; !ok {
				fatalf("unknown client %q", c)
			}
		}
		if err := runCompare(os.Stdout, ws, cs, cfg, *rounds); err != nil {
			fatalf("compare: %v", err)
		}
		return
	}
	if len(ws) != 1 {
		fatalf("a single run takes one workload")
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fatalf("%v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatalf("%v", err)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if *memprofile != "" {
		runtime.MemProfileRate = 1
	}
	if err := runOne(os.Stdout, ws[0], cfg); err != nil {
		pprof.StopCPUProfile()
		fatalf("%s %s %s: %v", cfg.workload, cfg.client, cfg.target, err)
	}
	if *memprofile != "" && ws[0].name != "idle" && ws[0].name != "conn" {
		// The message workloads: every allocation of the run, by site.
		if err := writeProfile("allocs", *memprofile); err != nil {
			fatalf("%v", err)
		}
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}

// raiseFileLimit lifts RLIMIT_NOFILE as far as allowed, for the
// connection workloads; mosquitto, a child process, inherits it.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	want := syscall.Rlimit{Cur: 1 << 17, Max: max(lim.Max, 1<<17)}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

// runOne starts the target, runs one client through one workload and
// prints a readable line and the result line.
func runOne(w io.Writer, wl workload, cfg runConfig) error {
	if cfg.target == "" {
		cfg.target = wl.targets[0]
	}
	if cfg.n == 0 {
		cfg.n = wl.n[cfg.target]
	}
	if cfg.n == 0 {
		return fmt.Errorf("workload %s does not run against %s", wl.name, cfg.target)
	}
	limit := wl.runTimeout()
	watchdog := time.AfterFunc(limit+5*time.Second, func() {
		fmt.Fprintln(os.Stderr, "bench: run exceeded its time limit")
		os.Exit(3)
	})
	defer watchdog.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()

	e := env{client: cfg.client, cfg: cfg}
	switch cfg.target {
	case "sink":
		var opts sink.Options
		if strings.HasPrefix(wl.name, "recv-") {
			// Delivered at the QoS the workload subscribes with, 0 or 1.
			opts = sink.Options{FloodCount: cfg.n, FloodQoS: 1, FloodWindow: cfg.window, FloodTopic: cfg.topic, FloodPayload: len(cfg.payload)}
		}
		s, err := sink.Start(opts)
		if err != nil {
			return err
		}
		defer s.Close()
		e.addr = s.Addr()
	case "mosquitto":
		m, err := startMosquitto()
		if err != nil {
			return err
		}
		defer m.Close()
		e.addr, e.brokerPID = m.Addr(), m.PID()
	}
	type outcome struct {
		r   result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		r, err := wl.run(ctx, e)
		done <- outcome{r, err}
	}()
	var o outcome
	select {
	case o = <-done:
	case <-ctx.Done():
		return fmt.Errorf("timed out after %v", limit)
	}
	if o.err != nil {
		return o.err
	}
	// One write for both lines, so a reader that stops after the first
	// (such as head -1) cannot cut the process short before its profile
	// is written.
	var out strings.Builder
	fmt.Fprintf(&out, "%s %s %s n=%d: %s\n", wl.name, cfg.client, cfg.target, cfg.n, describe(o.r))
	writeResult(&out, o.r)
	_, err := io.WriteString(w, out.String())
	return err
}

// describe formats the fields of r that were measured.
func describe(r result) string {
	var parts []string
	add := func(v float64, format string) {
		if v != 0 {
			parts = append(parts, fmt.Sprintf(format, v))
		}
	}
	add(r.Secs, "%.3f s")
	add(r.Rate, "%.0f/s")
	add(r.P50, "p50 %.1f µs")
	add(r.P99, "p99 %.1f µs")
	add(r.P999, "p99.9 %.1f µs")
	add(r.Allocs, "%.2f allocs/msg")
	add(r.ConnBytes, "%.0f B/conn")
	add(r.ConnStack, "of which stacks %.0f B")
	add(r.ConnGs, "%.1f goroutines/conn")
	add(r.PeakMiB, "heap+stack %.1f MiB")
	add(r.BrokerMiB, "broker RSS %.1f MiB")
	add(r.BrokerCPU, "broker CPU %.2f µs/msg")
	return strings.Join(parts, ", ")
}
