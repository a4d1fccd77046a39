package mqtt_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/sink"
)

// startSink starts the in-process sink broker, which acknowledges at once
// and does no routing, so that the client is what gets measured.
func startSink(tb testing.TB, opts sink.Options) *sink.Server {
	tb.Helper()
	s, err := sink.Start(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func benchClient(b *testing.B, s *sink.Server, v mqtt.ProtocolVersion) *mqtt.Client {
	b.Helper()
	c, err := mqtt.Connect(context.Background(), mqtt.Config{Servers: []string{s.URL()}, ClientID: "bench", Version: v, QoS0Overflow: mqtt.Block})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

var payload64 = make([]byte, 64)

func BenchmarkPublish(b *testing.B) {
	for _, tc := range []struct {
		name string
		qos  mqtt.QoS
	}{{"qos0", 0}, {"qos1", 1}, {"qos2", 2}} {
		b.Run(tc.name, func(b *testing.B) {
			c := benchClient(b, startSink(b, sink.Options{}), mqtt.Version5)
			ctx := context.Background()
			m := mqtt.Message{Topic: "bench/topic", Payload: payload64, QoS: tc.qos}
			b.SetBytes(int64(len(payload64)))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Publish(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPublishPipelined keeps up to 1000 QoS 1/2 publishes in flight.
func BenchmarkPublishPipelined(b *testing.B) {
	for _, tc := range []struct {
		name string
		qos  mqtt.QoS
	}{{"qos1", 1}, {"qos2", 2}} {
		b.Run(tc.name, func(b *testing.B) {
			c := benchClient(b, startSink(b, sink.Options{}), mqtt.Version5)
			m := mqtt.Message{Topic: "bench/topic", Payload: payload64, QoS: tc.qos}
			window := make(chan *mqtt.Pending, 1000)
			b.SetBytes(int64(len(payload64)))
			b.ReportAllocs()
			for b.Loop() {
				if len(window) == cap(window) {
					if err := (<-window).Wait(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
				window <- c.PublishAsync(m)
			}
			for len(window) > 0 {
				if err := (<-window).Wait(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReceive(b *testing.B) {
	for _, tc := range []struct {
		name string
		qos  mqtt.QoS
	}{{"qos0", 0}, {"qos1", 1}, {"qos2", 2}} {
		b.Run(tc.name, func(b *testing.B) {
			s := startSink(b, sink.Options{FloodCount: b.N, FloodQoS: byte(tc.qos), FloodPayload: 64})
			c := benchClient(b, s, mqtt.Version5)
			b.SetBytes(64)
			b.ReportAllocs()
			b.ResetTimer()
			sub, err := c.Subscribe(context.Background(), "sink/#", tc.qos)
			if err != nil {
				b.Fatal(err)
			}
			for range b.N {
				<-sub.Messages()
			}
		})
	}
}

// BenchmarkStalledConsumerMemory measures what a client holds while its
// application takes nothing for half a second under a flood from the sink:
// the peak growth of the live heap (sampled every 100 ms after a
// collection) against Config.MemoryLimit (default 8 MiB). One operation is
// one stall; the metrics are the largest over all operations.
func BenchmarkStalledConsumerMemory(b *testing.B) {
	for _, size := range []int{64, 1 << 20} {
		for _, tc := range []struct {
			name   string
			qos    mqtt.QoS
			policy mqtt.OverflowPolicy
		}{{"qos0-drop", 0, mqtt.DropNewest}, {"qos0-block", 0, mqtt.Block}, {"qos1", 1, mqtt.DropNewest}} {
			name := fmt.Sprintf("%dB/%s", size, tc.name)
			if size >= 1<<20 {
				name = fmt.Sprintf("%dMiB/%s", size>>20, tc.name)
			}
			b.Run(name, func(b *testing.B) {
				var peak, held int64
				for b.Loop() {
					s, err := sink.Start(sink.Options{FloodCount: 64<<20/size + 1000, FloodQoS: byte(tc.qos), FloodPayload: size})
					if err != nil {
						b.Fatal(err)
					}
					before := liveHeap()
					c, err := mqtt.Connect(context.Background(), mqtt.Config{Servers: []string{s.URL()}, Version: mqtt.Version5,
						QoS0Overflow: tc.policy, MessageBuffer: 1 << 20})
					if err != nil {
						b.Fatal(err)
					}
					sampler := sampleHeap()
					if _, err := c.Subscribe(context.Background(), "sink/#", tc.qos); err != nil {
						b.Fatal(err)
					}
					<-time.After(500 * time.Millisecond)
					peak = max(peak, sampler.stop()-before)
					held = max(held, c.Stats().HeldBytes[0])
					c.Close()
					s.Close()
				}
				b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
				b.ReportMetric(float64(held)/(1<<20), "held-MiB")
			})
		}
	}
}
