//go:build unix

package websocket_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
)

// BenchmarkPublish measures QoS 0 publishes of 64 bytes to mosquitto over
// ws and wss, including the time for the broker to have read them all (a
// Ping round trip after the last), like the root package's
// BenchmarkPublishTransport for its own transports. It also reports the CPU
// time the client process spent per publish (client-cpu-ns/op).
func BenchmarkPublish(b *testing.B) {
	wb := startWSBroker(b)
	payload := make([]byte, 64)
	for _, scheme := range schemes {
		b.Run(scheme, func(b *testing.B) {
			ctx := context.Background()
			cfg := wb.config(scheme)
			cfg.Version = mqtt.Version5
			c := connect(b, cfg)
			m := mqtt.Message{Topic: "bench/websocket", Payload: payload}
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			cpu := processCPU(b)
			b.ResetTimer()
			for range b.N {
				if err := c.Publish(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := c.Ping(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "client-cpu-ns/op")
		})
	}
}

// processCPU returns the user and system CPU time of this process so far.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
