package mqtt_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/sink"
)

// Allocation regression tests for the hot paths (DESIGN property 6). They
// are deterministic, unlike timings, so they run with every test run. They
// must not be parallel: allocation counts are process-wide, and top-level
// tests that do not call t.Parallel run while no parallel test does.

// allocsPerOp warms f up with runs calls (filling pools and growing
// buffers to their working size), then returns the allocations per call
// over runs more calls, process-wide (so including the client's
// goroutines). The caller allows a margin (allocSlack) for what is
// amortized over many calls, such as a buffer that grows now and then, or
// the reader allocating messages it has read ahead of the application; a
// path that allocates on every call exceeds it.
func allocsPerOp(t *testing.T, runs int, f func()) float64 {
	t.Helper()
	for range runs {
		f()
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	got := float64(after.Mallocs-before.Mallocs) / float64(runs)
	t.Logf("%.3f allocations per call (%d calls)", got, runs)
	return got
}

// allocSlack is the part of an allocation per call that allocsPerOp's
// callers tolerate above their bound. The race detector makes sync.Pool
// drop a quarter of what is put back, so pooled objects are allocated
// again now and then.
var allocSlack = map[bool]float64{false: 0.2, true: 0.6}[raceEnabled]

func allocClient(t *testing.T, s *sink.Server, v mqtt.ProtocolVersion) *mqtt.Client {
	t.Helper()
	c, err := mqtt.Connect(context.Background(), mqtt.Config{Servers: []string{s.URL()}, Version: v, QoS0Overflow: mqtt.Block})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestAllocsPublish(t *testing.T) {
	for _, ver := range fakeVersions {
		for _, tc := range []struct {
			qos  mqtt.QoS
			want float64
		}{{mqtt.AtMostOnce, 0}, {mqtt.AtLeastOnce, 1}, {mqtt.ExactlyOnce, 1}} {
			t.Run(ver.name+"/"+tc.qos.String(), func(t *testing.T) {
				c := allocClient(t, startSink(t, sink.Options{}), ver.v)
				ctx := context.Background()
				m := mqtt.Message{Topic: "alloc/topic", Payload: payload64, QoS: tc.qos}
				got := allocsPerOp(t, 2000, func() {
					if err := c.Publish(ctx, m); err != nil {
						t.Fatal(err)
					}
				})
				if got > tc.want+allocSlack {
					t.Errorf("Publish at %v: %v allocations per call, want at most %v", tc.qos, got, tc.want)
				}
			})
		}
	}
}

func TestAllocsPublishAsync(t *testing.T) {
	for _, qos := range []mqtt.QoS{mqtt.AtMostOnce, mqtt.AtLeastOnce, mqtt.ExactlyOnce} {
		t.Run(qos.String(), func(t *testing.T) {
			c := allocClient(t, startSink(t, sink.Options{}), mqtt.Version5)
			m := mqtt.Message{Topic: "alloc/topic", Payload: payload64, QoS: qos}
			window := make(chan *mqtt.Pending, 100)
			got := allocsPerOp(t, 5000, func() {
				if len(window) == cap(window) {
					if err := (<-window).Wait(context.Background()); err != nil {
						t.Fatal(err)
					}
				}
				window <- c.PublishAsync(m)
			})
			for len(window) > 0 {
				if err := (<-window).Wait(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			want := 1.0 // the Pending
			if qos == mqtt.AtMostOnce {
				want = 0 // written at once: a shared completed Pending
			}
			if got > want+allocSlack {
				t.Errorf("PublishAsync at %v: %v allocations per message, want at most %v", qos, got, want)
			}
		})
	}
}

func TestAllocsReceive(t *testing.T) {
	const runs = 5000
	for _, ver := range fakeVersions {
		for _, qos := range []mqtt.QoS{mqtt.AtMostOnce, mqtt.AtLeastOnce, mqtt.ExactlyOnce} {
			t.Run(ver.name+"/"+qos.String(), func(t *testing.T) {
				// Each call takes one message: runs to warm up, runs+1 measured.
				s := startSink(t, sink.Options{FloodCount: 2*runs + 1, FloodQoS: byte(qos), FloodPayload: 64})
				c := allocClient(t, s, ver.v)
				sub, err := c.Subscribe(context.Background(), "sink/#", qos)
				if err != nil {
					t.Fatal(err)
				}
				got := allocsPerOp(t, runs, func() {
					m, ok := <-sub.Messages()
					if !ok || len(m.Payload) != 64 {
						t.Fatalf("received %v (open %v)", m, ok)
					}
					// The sink tags its messages with the Subscription
					// Identifier, as brokers do.
					if ver.v == mqtt.Version5 && (len(m.SubscriptionIDs) != 1 || m.SubscriptionIDs[0] != sub.ID()) {
						t.Fatalf("Subscription Identifiers %v, want [%d]", m.SubscriptionIDs, sub.ID())
					}
				})
				if got > 1+allocSlack {
					t.Errorf("receive at %v: %v allocations per message, want at most 1", qos, got)
				}
			})
		}
	}
}
