// Command metrics exports an MQTT client's statistics to Prometheus. It
// connects, subscribes to a topic filter, publishes a message every
// -interval to a topic under it, pings the broker every -ping to measure the
// round-trip time, and serves the client's counters at /metrics on a
// loopback address. Connection events are printed as they happen.
//
// The exporter is the Collector in collector.go; it depends only on the
// client and client_golang, so it can be copied into a service as it is.
//
//	go run . -server mqtt://127.0.0.1:1883 -listen 127.0.0.1:9464
//	curl -s http://127.0.0.1:9464/metrics
//
// On start it prints "serving metrics on http://ADDR/metrics" (with the
// bound port when -listen ends in :0). It stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/prometheus/client_golang/prometheus"
)

// shutdownTimeout bounds the graceful shutdown of the HTTP server and of
// the MQTT connection.
const shutdownTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "metrics:", err)
		os.Exit(1)
	}
}

// options are the parsed command line.
type options struct {
	server, listen string
	topic, filter  string
	qos            mqtt.QoS
	interval, ping time.Duration
	count          int
}

func parseArgs(args []string, stdout io.Writer) (options, error) {
	fs := flag.NewFlagSet("metrics", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var o options
	fs.StringVar(&o.server, "server", "mqtt://127.0.0.1:1883", "broker URL")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:9464", "loopback address to serve /metrics on (port 0 picks a free one)")
	fs.StringVar(&o.topic, "topic", "metrics/demo/tick", "topic to publish to")
	fs.StringVar(&o.filter, "filter", "metrics/demo/#", "topic filter to subscribe to (QoS 2)")
	qos := fs.Int("qos", 1, "QoS of the published messages (0, 1 or 2)")
	fs.DurationVar(&o.interval, "interval", time.Second, "time between published messages")
	fs.DurationVar(&o.ping, "ping", 15*time.Second, "time between pings that measure the round-trip time")
	fs.IntVar(&o.count, "count", 0, "stop publishing after this many messages and keep serving (0: no limit)")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	switch {
	case fs.NArg() > 0:
		return options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *qos < 0 || *qos > 2:
		return options{}, fmt.Errorf("-qos %d: want 0, 1 or 2", *qos)
	case o.interval <= 0:
		return options{}, fmt.Errorf("-interval %v: must be positive", o.interval)
	case o.ping <= 0:
		return options{}, fmt.Errorf("-ping %v: must be positive", o.ping)
	case o.count < 0:
		return options{}, fmt.Errorf("-count %d: must not be negative", o.count)
	}
	if err := checkLoopback(o.listen); err != nil {
		return options{}, err
	}
	o.qos = mqtt.QoS(*qos)
	return o, nil
}

// run is the whole program; main and the tests call it.
func run(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseArgs(args, out)
	if err != nil {
		return err
	}
	c, err := mqtt.Connect(ctx, mqtt.Config{
		Servers:   []string{o.server},
		KeepAlive: 30 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("connect to %s: %w", o.server, err)
	}
	// Close is a no-op after a successful Disconnect; it makes sure no
	// goroutine outlives run on the error paths.
	defer c.Close()
	sub, err := c.Subscribe(ctx, o.filter, mqtt.ExactlyOnce)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", o.filter, err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(c, nil))
	srv, err := serveMetrics(o.listen, reg)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "serving metrics on http://%s/metrics\n", srv.addr)

	loopErr := loop(ctx, c, sub, o, out)

	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return errors.Join(loopErr, srv.shutdown(shutdownCtx), c.Disconnect(shutdownCtx))
}

// loop publishes, pings, takes the received messages and prints events
// until ctx ends (a clean stop) or the client stops for good.
func loop(ctx context.Context, c *mqtt.Client, sub *mqtt.Subscription, o options, out io.Writer) error {
	publish := time.NewTicker(o.interval)
	defer publish.Stop()
	ping := time.NewTicker(o.ping)
	defer ping.Stop()
	tick := publish.C
	sent := 0
	for {
		select {
		case <-tick:
			msg := mqtt.Message{Topic: o.topic, QoS: o.qos, Payload: fmt.Appendf(nil, "tick %06d", sent)}
			if err := callWithTimeout(ctx, func(ctx context.Context) error { return c.Publish(ctx, msg) }); err != nil {
				fmt.Fprintf(out, "publish: %v\n", err)
				continue
			}
			if sent++; o.count > 0 && sent == o.count {
				tick = nil // done publishing; keep serving
			}
		case <-ping.C:
			if err := callWithTimeout(ctx, func(ctx context.Context) error { _, err := c.Ping(ctx); return err }); err != nil {
				fmt.Fprintf(out, "ping: %v\n", err)
			}
		case _, ok := <-sub.Messages():
			if !ok {
				return fmt.Errorf("subscription to %s ended: %w", o.filter, c.Err())
			}
		case ev, ok := <-c.Events():
			if !ok { // closed once the client has stopped
				return c.Err()
			}
			fmt.Fprintf(out, "event: %v\n", ev.Kind)
		case <-c.Done():
			return c.Err()
		case <-ctx.Done():
			return nil
		}
	}
}

// callWithTimeout runs f with a context that ends with ctx or after
// shutdownTimeout, so that one unanswered packet cannot stall the loop
// forever. An error caused by ctx ending is not reported.
func callWithTimeout(ctx context.Context, f func(context.Context) error) error {
	fctx, cancel := context.WithTimeout(ctx, shutdownTimeout)
	defer cancel()
	if err := f(fctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// checkLoopback refuses a listen address whose host is not a loopback
// address: the metrics are served without authentication, so expose them
// further through a proxy that adds it.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-listen %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen %q: want a loopback address such as 127.0.0.1:9464", addr)
	}
	return nil
}
