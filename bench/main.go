// Command bench measures MQTT publish throughput of this module's client
// against paho.mqtt.golang, paho.golang and a raw pre-encoded writer, on a
// loopback in-process sink broker or a mosquitto child process.
//
//	go run . -workload pub-qos0 -client ours -target sink -n 200000
//	go run . -compare -workload pub-qos1 -target mosquitto -n 100000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// runConfig describes one measured run.
type runConfig struct {
	workload string
	client   string
	target   string
	n        int
	qos      int
	window   int
	version  byte
	topic    string
	payload  []byte
}

const (
	runTimeout     = 30 * time.Second
	compareTimeout = 5 * time.Minute
)

var clients = []string{"ours", "paho", "pahov5", "raw"}

func main() {
	var (
		workload = flag.String("workload", "pub-qos0", "pub-qos0 or pub-qos1")
		client   = flag.String("client", "ours", "ours, paho, pahov5 or raw")
		target   = flag.String("target", "sink", "sink or mosquitto")
		n        = flag.Int("n", 200000, "messages to publish")
		window   = flag.Int("window", 1000, "QoS 1 messages in flight")
		version  = flag.Int("mqttv", 5, "MQTT version for ours and raw (4 or 5)")
		payload  = flag.Int("payload", 64, "payload size in bytes")
		compare  = flag.Bool("compare", false, "run every client in child processes and print a table")
		rounds   = flag.Int("rounds", 3, "compare: repetitions of the interleaved orders")
	)
	flag.Parse()
	cfg := runConfig{
		workload: *workload,
		client:   *client,
		target:   *target,
		n:        *n,
		window:   *window,
		version:  byte(*version),
		topic:    "bench/topic",
		payload:  make([]byte, *payload),
	}
	switch cfg.workload {
	case "pub-qos0":
		cfg.qos = 0
	case "pub-qos1":
		cfg.qos = 1
	default:
		fatalf("unknown workload %q", cfg.workload)
	}
	if cfg.target != "sink" && cfg.target != "mosquitto" {
		fatalf("unknown target %q", cfg.target)
	}
	if cfg.n <= 0 || cfg.window <= 0 || cfg.window > 65535 {
		fatalf("bad -n or -window")
	}
	if cfg.version != 4 && cfg.version != 5 {
		fatalf("bad -mqttv %d", cfg.version)
	}
	if *compare {
		if err := runCompare(os.Stdout, cfg, *rounds); err != nil {
			fatalf("compare: %v", err)
		}
		return
	}
	if err := runOne(os.Stdout, cfg); err != nil {
		fatalf("%s %s %s: %v", cfg.workload, cfg.client, cfg.target, err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}

// runOne starts the target, runs one client and prints the result line.
func runOne(w io.Writer, cfg runConfig) error {
	watchdog := time.AfterFunc(runTimeout+5*time.Second, func() {
		fmt.Fprintln(os.Stderr, "bench: run exceeded its time limit")
		os.Exit(3)
	})
	defer watchdog.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()

	var addr string
	switch cfg.target {
	case "sink":
		s, err := startSink()
		if err != nil {
			return err
		}
		defer s.Close()
		addr = s.Addr()
	case "mosquitto":
		m, err := startMosquitto()
		if err != nil {
			return err
		}
		defer m.Close()
		addr = m.Addr()
	}

	var run func(context.Context, string, runConfig) (time.Duration, error)
	switch cfg.client {
	case "ours":
		run = runOurs
	case "paho":
		run = runPaho
	case "pahov5":
		run = runPahoV5
	case "raw":
		run = runRaw
	default:
		return fmt.Errorf("%w %q", errUnknownClient, cfg.client)
	}
	type result struct {
		d   time.Duration
		err error
	}
	done := make(chan result, 1)
	go func() {
		d, err := run(ctx, addr, cfg)
		done <- result{d, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		return fmt.Errorf("timed out after %v", runTimeout)
	}
	if r.err != nil {
		return r.err
	}
	secs := r.d.Seconds()
	fmt.Fprintf(w, "%s %s %s %d %.6f %.0f\n", cfg.workload, cfg.client, cfg.target, cfg.n, secs, float64(cfg.n)/secs)
	return nil
}
