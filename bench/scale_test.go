package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestScale runs the scale command small, for each client it drives: two
// client processes, two mosquitto instances, several source addresses and
// two rounds. Every connection must connect, exchange its message and
// disconnect, and nothing may be left behind.
func TestScale(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(mosquittoBin); err != nil && os.Getenv("CI") == "" {
		t.Skipf("mosquitto is not installed: %v", err)
	}
	for _, client := range scaleClients {
		t.Run(client, func(t *testing.T) {
			t.Parallel()
			cfg := scaleConfig{client: client, conns: 300, procs: 2, brokers: 2, dials: 32, perSource: 70,
				version: 5, rounds: 2, phaseWait: time.Minute}
			var out strings.Builder
			if err := runScale(&out, cfg); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			r := parseScaleResult(t, out.String())
			if r.Connected != cfg.conns || r.Exchanged != cfg.conns || r.Closed != cfg.conns || r.Failed != 0 {
				t.Errorf("connected %d, exchanged %d, closed %d, failed %d; want %d, %d, %d, 0",
					r.Connected, r.Exchanged, r.Closed, r.Failed, cfg.conns, cfg.conns, cfg.conns)
			}
			if len(r.Left) != cfg.rounds {
				t.Fatalf("%d leftover reports, want %d", len(r.Left), cfg.rounds)
			}
			for i, l := range r.Left {
				if l.Goroutines > 0 || l.Files > 0 || l.BrokerFiles > 0 {
					t.Errorf("round %d left %+v", i+1, l)
				}
			}
			if r.HeapStackPerConn <= 0 || r.GoroutinesPerConn <= 0 || r.ConnectRate <= 0 {
				t.Errorf("nothing measured: %+v", r)
			}
			t.Log(out.String())
		})
	}
}

// TestScaleReportsFailures has more connections than the broker accepts:
// the run fails, and the refused connections are counted under their
// cause, while the others go through every phase and are closed.
func TestScaleReportsFailures(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(mosquittoBin); err != nil && os.Getenv("CI") == "" {
		t.Skipf("mosquitto is not installed: %v", err)
	}
	cfg := scaleConfig{client: "ours", conns: 100, procs: 1, brokers: 1, dials: 8, perSource: 1000,
		version: 5, rounds: 1, phaseWait: time.Minute, brokerMax: 60}
	var out strings.Builder
	err := runScale(&out, cfg)
	r := parseScaleResult(t, out.String())
	// mosquitto admits max_connections + 1.
	if r.Failed < 30 || r.Failed > 40 || r.Connected+r.Failed != cfg.conns || r.Exchanged != r.Connected || r.Closed != r.Connected {
		t.Errorf("connected %d, exchanged %d, closed %d, failed %d; want about 60 through every phase and the other 40 failed",
			r.Connected, r.Exchanged, r.Closed, r.Failed)
	}
	if want := fmt.Sprintf("%d connections failed", r.Failed); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("runScale: %v, want %q", err, want)
	}
	if want := fmt.Sprintf("%6d × ours connect: ", r.Failed); !strings.Contains(out.String(), want) {
		t.Errorf("the failures are not grouped under one cause (%q):\n%s", want, out.String())
	}
	if l := r.Left[0]; l.Goroutines > 0 || l.Files > 0 || l.BrokerFiles > 0 {
		t.Errorf("left %+v", l)
	}
	t.Log(out.String())
}

func parseScaleResult(t *testing.T, out string) scaleResult {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, resultPrefix); ok {
			var r scaleResult
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				t.Fatal(err)
			}
			return r
		}
	}
	t.Fatalf("no result line in\n%s", out)
	return scaleResult{}
}

// TestScaleChecksLimits refuses runs that would need more open files per
// process than the limit allows.
func TestScaleChecksLimits(t *testing.T) {
	t.Parallel()
	for _, cfg := range []scaleConfig{
		{client: "ours", conns: 30000, procs: 1, brokers: 3, dials: 1, perSource: 1000, version: 5, rounds: 1},
		{client: "ours", conns: 30000, procs: 3, brokers: 1, dials: 1, perSource: 1000, version: 5, rounds: 1},
		{client: "raw", conns: 10, procs: 1, dials: 1, perSource: 1000, version: 5, rounds: 1},
		{client: "ours", conns: 10, procs: 0, dials: 1, perSource: 1000, version: 5, rounds: 1},
	} {
		if err := cfg.check(20000); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	ok := scaleConfig{client: "ours", conns: 100000, procs: 6, dials: 256, perSource: 2000, version: 5, rounds: 1}
	if err := ok.check(20000); err != nil {
		t.Errorf("100,000 connections over 6 processes: %v", err)
	}
	if ok.brokers != 7 {
		t.Errorf("%d brokers for 100,000 connections, want 7", ok.brokers)
	}
}

// TestMaskError groups causes that differ only in addresses and ids.
func TestMaskError(t *testing.T) {
	t.Parallel()
	a := maskError(errString("ours connect: dial tcp 127.1.0.3:40001->127.0.0.2:41234: connect: connection refused"))
	b := maskError(errString("ours connect: dial tcp 127.1.0.9:40777->127.0.0.1:39999: connect: connection refused"))
	if a != b || strings.Contains(a, "127.") {
		t.Errorf("%q and %q", a, b)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
