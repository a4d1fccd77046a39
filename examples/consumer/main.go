// Command consumer subscribes to a topic filter and prints each message it
// receives, driving the client from a select loop. It shuts down gracefully
// on SIGINT or SIGTERM (or after -count messages): it unsubscribes, sends
// DISCONNECT and waits for the client's goroutines to exit.
//
//	go run ./examples/consumer -server mqtt://127.0.0.1:1883 -topic 'sensors/#'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/b4e21b16/mqtt"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("consumer", flag.ContinueOnError)
	server := fs.String("server", "mqtt://127.0.0.1:1883", "broker URL")
	topic := fs.String("topic", "#", "topic filter to subscribe to")
	qos := fs.Int("qos", 1, "subscription QoS (0, 1 or 2)")
	count := fs.Int("count", 0, "exit after this many messages (0: run until interrupted)")
	ready := fs.String("ready", "", "print this line once subscribed (for scripts)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *qos < 0 || *qos > 2:
		return fmt.Errorf("-qos %d: want 0, 1 or 2", *qos)
	case *count < 0:
		return fmt.Errorf("-count %d: want 0 or more", *count)
	}

	c, err := mqtt.Connect(ctx, mqtt.Config{
		Servers:   []string{*server},
		KeepAlive: 30 * time.Second,
	})
	if err != nil {
		return err
	}
	// Close is a no-op after a successful Disconnect; it makes sure no
	// goroutine outlives run on the error paths.
	defer c.Close()

	sub, err := c.Subscribe(ctx, *topic, mqtt.QoS(*qos))
	if err != nil {
		return err
	}
	if *ready != "" {
		fmt.Fprintln(out, *ready)
	}

	received := 0
loop:
	for *count == 0 || received < *count {
		select {
		case m, ok := <-sub.Messages():
			if !ok {
				return errors.New("subscription ended")
			}
			received++
			fmt.Fprintf(out, "%s %s\n", m.Topic, m.Payload)
		case <-c.Done():
			return c.Err() // the connection was lost
		case <-ctx.Done():
			break loop // interrupted: shut down gracefully
		}
	}

	// Graceful shutdown, bounded in time even if the broker stops answering.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Unsubscribe(shutdownCtx, *topic); err != nil {
		return err
	}
	return c.Disconnect(shutdownCtx)
}
