package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/b4e21b16/mqtt"
)

// worker is one member of the pool: a client of its own and its share of
// the subscription.
type worker struct {
	id     int
	client *mqtt.Client
	sub    *mqtt.Subscription
	done   int // messages processed; read after work has returned
}

// startWorker connects worker id and subscribes it to the shared filter.
func startWorker(ctx context.Context, id int, server, group, shared string, qos mqtt.QoS) (*worker, error) {
	c, err := mqtt.Connect(ctx, mqtt.Config{
		Servers:    []string{server},
		ClientID:   fmt.Sprintf("%s-%d", group, id),
		CleanStart: true,
		KeepAlive:  30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("worker %d: connect: %w", id, err)
	}
	sub, err := c.Subscribe(ctx, shared, qos)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("worker %d: subscribe to %s: %w", id, shared, err)
	}
	return &worker{id: id, client: c, sub: sub}, nil
}

// work processes messages until ctx ends; processed is called after each.
// A QoS 1 or 2 message is acknowledged when it is taken from the channel,
// so the broker redelivers nothing the worker has not taken.
func (w *worker) work(ctx context.Context, out *lineWriter, processed func()) error {
	for {
		select {
		case m, ok := <-w.sub.Messages():
			if !ok {
				return fmt.Errorf("worker %d: subscription ended", w.id)
			}
			w.handle(out, m)
			w.done++
			processed()
		case <-w.client.Done():
			return fmt.Errorf("worker %d: %w", w.id, w.client.Err())
		case <-ctx.Done():
			// Asked to stop, or another worker failed and the group
			// reports that.
			return nil
		}
	}
}

// handle is the work done for one message: here, printing it.
func (w *worker) handle(out *lineWriter, m mqtt.Message) {
	out.printf("worker %d: %s %s\n", w.id, m.Topic, m.Payload)
}

// lineWriter lets the workers print whole lines to one writer.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
}
