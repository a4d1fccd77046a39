package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt/internal/sink"
)

// TestWorkloadsOnSink runs the sink workloads with a few messages for this
// client and the raw baseline, checking that each completes and reports
// what it measures.
func TestWorkloadsOnSink(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"pub-qos0", "pub-qos1", "pub-qos2", "lat-qos1", "recv-qos0", "recv-qos1"} {
		for _, client := range []string{"ours", "raw"} {
			t.Run(name+"/"+client, func(t *testing.T) {
				t.Parallel()
				wl, err := findWorkload(name)
				if err != nil {
					t.Fatal(err)
				}
				cfg := runConfig{workload: name, client: client, target: "sink", n: 3000, window: 100, version: 5, topic: "bench/topic", payload: make([]byte, 64)}
				var out strings.Builder
				if err := runOne(&out, wl, cfg); err != nil {
					t.Fatal(err)
				}
				r, err := parseResult(out.String())
				if err != nil {
					t.Fatal(err)
				}
				if strings.HasPrefix(name, "lat-") {
					if !(r.P50 > 0 && r.P50 <= r.P99 && r.P99 <= r.P999) {
						t.Errorf("percentiles %v %v %v", r.P50, r.P99, r.P999)
					}
				} else if r.Rate <= 0 || r.Count != cfg.n {
					t.Errorf("rate %v, count %d", r.Rate, r.Count)
				}
			})
		}
	}
}

// TestSinkCountsPublishes checks that a pipelined run delivers every
// message to the sink, at each QoS.
func TestSinkCountsPublishes(t *testing.T) {
	t.Parallel()
	for _, client := range []string{"ours", "raw"} {
		for qos := byte(0); qos <= 2; qos++ {
			t.Run(fmt.Sprintf("%s/qos%d", client, qos), func(t *testing.T) {
				t.Parallel()
				s, err := sink.Start(sink.Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				c, err := dialClient(ctx, client, s.Addr(), dialOpts{id: "t", version: 5, topic: "bench/topic", payload: make([]byte, 64)})
				if err != nil {
					t.Fatal(err)
				}
				const n = 2500
				if err := c.pipeline(ctx, n, qos, 64); err != nil {
					t.Fatal(err)
				}
				if err := c.close(ctx); err != nil {
					t.Fatal(err)
				}
				want := int64(n)
				if qos == 0 {
					want++ // the closing QoS 1 publish
				}
				if got := s.Received(); got != want {
					t.Errorf("sink received %d publishes, want %d", got, want)
				}
			})
		}
	}
}

func TestPercentiles(t *testing.T) {
	t.Parallel()
	samples := make([]time.Duration, 1000)
	for i := range samples {
		samples[len(samples)-1-i] = time.Duration(i+1) * time.Microsecond
	}
	var r result
	percentiles(&r, samples)
	if r.P50 != 500 || r.P99 != 990 || r.P999 != 999 {
		t.Errorf("p50 %v p99 %v p99.9 %v, want 500 990 999", r.P50, r.P99, r.P999)
	}
}

func TestNumber(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{2309831.6, "2,309,832"},
		{12345, "12,345"},
		{4038, "4038"},
		{46.44, "46.4"},
		{1.013, "1.01"},
	} {
		if got := number(tc.v); got != tc.want {
			t.Errorf("number(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

// TestProcessCPU checks the broker CPU meter on this process, which burns
// some CPU between two readings.
func TestProcessCPU(t *testing.T) {
	t.Parallel()
	before := processCPU(os.Getpid())
	deadline := time.Now().Add(10 * time.Second)
	x := uint64(1)
	for processCPU(os.Getpid()) <= before {
		for range 1 << 20 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		if time.Now().After(deadline) {
			t.Fatalf("the CPU time read from /proc stayed at %v", before)
		}
	}
	_ = x
	if got := startBrokerCPU(0).perMsg(100); got != 0 {
		t.Errorf("CPU per message without a broker process: %v, want 0", got)
	}
}
