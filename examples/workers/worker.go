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
	label  string // "worker N", or "process P worker N" in a worker process
	client *mqtt.Client
	sub    *mqtt.Subscription
	done   int // messages processed; read after work has returned
}

// workerSpec says how to start one worker.
type workerSpec struct {
	server string
	group  string
	shared string // $share/group/filter
	qos    mqtt.QoS
	// process is the number of the worker process, or -1 when the pool
	// runs in one process.
	process int
	// sessionExpiry, when positive, gives each worker a persistent session
	// that the broker keeps this long after a disconnection (CleanStart
	// off), so that a worker restarted with the same client ID resumes it.
	sessionExpiry time.Duration
}

// startWorker connects worker id and subscribes it to the shared filter.
// Its client ID is group-id, or group-process-id in a worker process: the
// same on every run, so that a persistent session is found again.
func startWorker(ctx context.Context, id int, spec workerSpec) (*worker, error) {
	clientID, label := fmt.Sprintf("%s-%d", spec.group, id), fmt.Sprintf("worker %d", id)
	if spec.process >= 0 {
		clientID = fmt.Sprintf("%s-%d-%d", spec.group, spec.process, id)
		label = fmt.Sprintf("process %d worker %d", spec.process, id)
	}
	c, err := mqtt.Connect(ctx, mqtt.Config{
		Servers:       []string{spec.server},
		ClientID:      clientID,
		CleanStart:    spec.sessionExpiry <= 0,
		SessionExpiry: max(spec.sessionExpiry, 0),
		KeepAlive:     30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: connect: %w", label, err)
	}
	sub, err := c.Subscribe(ctx, spec.shared, spec.qos)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: subscribe to %s: %w", label, spec.shared, err)
	}
	return &worker{id: id, label: label, client: c, sub: sub}, nil
}

// work processes messages until ctx ends; processed is called after each.
// A QoS 1 or 2 message is acknowledged when it is taken from the channel,
// so the broker redelivers nothing the worker has not taken. A resumed
// persistent session may deliver messages before Subscribe has returned:
// those arrive on the client's Messages channel, and are work too.
func (w *worker) work(ctx context.Context, out *lineWriter, processed func()) error {
	for {
		var m mqtt.Message
		var ok bool
		select {
		case m, ok = <-w.sub.Messages():
		case m, ok = <-w.client.Messages():
		case <-w.client.Done():
			return fmt.Errorf("%s: %w", w.label, w.client.Err())
		case <-ctx.Done():
			// Asked to stop, or another worker failed and the group
			// reports that.
			return nil
		}
		if !ok {
			return fmt.Errorf("%s: the client stopped delivering", w.label)
		}
		w.handle(out, m)
		w.done++
		processed()
	}
}

// handle is the work done for one message: here, printing it.
func (w *worker) handle(out *lineWriter, m mqtt.Message) {
	out.printf("%s: %s %s\n", w.label, m.Topic, m.Payload)
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
