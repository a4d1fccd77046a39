//go:build !js

package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/examples/browser/internal/pipeline"
	"github.com/chromedp/chromedp"
)

// measureThroughput measures QoS 1 messages per second through mosquitto's
// WebSocket listener between the page's client and a native one, both
// ways, next to two native clients over WebSocket, all in one run. A run
// ends when the receiver has every message.
func measureThroughput(t *testing.T, ctx context.Context, p *tab, wsURL string) {
	t.Helper()
	before := p.state().Subscriptions
	p.set("filter", "bench/in")
	p.set("subqos", "1")
	p.click("subscribe")
	p.waitState("subscribed to bench/in", func(s pageState) bool { return s.Subscriptions == before+1 })
	pub := connectNative(t, ctx, wsURL, "bench-pub")
	sub := connectNative(t, ctx, wsURL, "bench-sub")
	out, err := sub.Subscribe(ctx, "bench/out", mqtt.AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}

	stop := startProfile(t, p, "native → page")
	start := time.Now()
	if err := pipeline.Publish(ctx, pub, "bench/in", benchMessages, mqtt.AtLeastOnce); err != nil {
		t.Fatal(err)
	}
	p.waitState("given every message", func(s pageState) bool { return s.BenchReceived == benchMessages })
	toBrowser := rate(benchMessages, time.Since(start))
	stop()

	stop = startProfile(t, p, "page → native")
	start = time.Now()
	p.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`mqttDemo.benchPublish("bench/out", %d, 1).catch((e) => { window.benchError = String(e) }), 0`, benchMessages)))
	receive(t, ctx, out.Messages(), benchMessages)
	fromBrowser := rate(benchMessages, time.Since(start))
	stop()

	start = time.Now()
	if err := pipeline.Publish(ctx, pub, "bench/out", benchMessages, mqtt.AtLeastOnce); err != nil {
		t.Fatal(err)
	}
	receive(t, ctx, out.Messages(), benchMessages)
	native := rate(benchMessages, time.Since(start))

	t.Logf("throughput through mosquitto over WebSocket, %d QoS 1 messages of %d bytes, %d in flight:", benchMessages, pipeline.PayloadSize, pipeline.Window)
	t.Logf("  native → browser: %7.0f msg/s (%.2f× native → native)", toBrowser, toBrowser/native)
	t.Logf("  browser → native: %7.0f msg/s (%.2f× native → native)", fromBrowser, fromBrowser/native)
	t.Logf("  native → native:  %7.0f msg/s", native)
}

func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

// receive takes n messages from ch, within a minute.
func receive(t *testing.T, ctx context.Context, ch <-chan mqtt.Message, n int) {
	t.Helper()
	timeout := time.After(time.Minute)
	for i := range n {
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("received %d of %d messages", i, n)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
}
