package mqtt

import (
	"context"
	"fmt"
	"sync"
)

// DeliveryResult is the outcome of a durable publish, keyed by the ID that
// PublishDurable returned.
type DeliveryResult struct {
	ID  uint64 // as returned by PublishDurable (the message's sequence number in the Store)
	Err error  // nil: the broker acknowledged the message (PUBACK, or PUBCOMP for QoS 2)
}

// PublishDurable queues a QoS 1 or 2 message so that it survives a
// reconnect and, with a durable Store, a crash of the process. It returns
// once the message is recorded and queued, with an ID whose outcome later
// arrives on DeliveryResults, from this process or, after a crash, from the
// next one that opens the same Store. Without a Store it still survives
// reconnects. It counts against Config.Queue while it waits to be sent, and
// fails with ErrQueueFull rather than wait when the queue is full.
func (c *Client) PublishDurable(ctx context.Context, m Message) (id uint64, err error) {
	if m.QoS == AtMostOnce {
		return 0, &ArgumentError{What: "QoS", Value: "0", Err: errDurableQoS0}
	}
	if err := validatePublish(&m); err != nil {
		return 0, err
	}
	r := &durableReq{p: newPublishReq(detachedCtx, m), accepted: make(chan error, 1)}
	r.p.durable = true
	if err := c.charge(ctx, r.p, false); err != nil {
		return 0, err
	}
	if err := c.s.submit(ctx, r); err != nil {
		r.p.complete(err)
		return 0, err
	}
	select {
	case err := <-r.accepted:
		return r.p.seq, err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

type durableError string

func (e durableError) Error() string { return string(e) }

const errDurableQoS0 = durableError("durable publishes need QoS 1 or 2")

// DeliveryResults returns the channel of outcomes of durable publishes. The
// client never waits for the application to read it: results queue up (at
// most one per durable message in flight) until read. It is closed when the
// client stops.
func (c *Client) DeliveryResults() <-chan DeliveryResult { return c.s.results.out }

// durableReq asks the session to accept a durable publish.
type durableReq struct {
	p        *publishReq
	accepted chan error
}

func (r *durableReq) fail(err error) {
	r.p.complete(err) // gives its memory back
	r.accepted <- err
}

func (r *durableReq) handle(s *session) {
	if err := s.refusing(); err != nil {
		r.fail(err)
		return
	}
	if s.queuedMsgs >= s.cfg.Queue.MaxMessages || s.queuedBytes+len(r.p.msg.Payload) > s.cfg.Queue.MaxBytes {
		// A durable publish never waits for room: the caller decides.
		r.fail(fmt.Errorf("%w (%d messages, %d bytes queued)", ErrQueueFull, s.queuedMsgs, s.queuedBytes))
		return
	}
	s.seq++
	r.p.seq = s.seq
	// Record it before anything else, so that acceptance means durability.
	if s.store != nil {
		if err := s.saveStored(r.p, false); err != nil {
			r.fail(err)
			return
		}
	}
	r.accepted <- nil
	if s.conn != nil && len(s.waiting) == 0 && s.trySendPublish(r.p) {
		return
	}
	s.queuedMsgs++
	s.queuedBytes += len(r.p.msg.Payload)
	s.waiting = append(s.waiting, r.p)
}

// resultQueue hands delivery results to the application without ever
// blocking the session: a pump goroutine feeds the unbuffered out channel
// from a slice.
type resultQueue struct {
	out  chan DeliveryResult
	wake chan struct{}
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	items   []DeliveryResult // guarded by mu
	started bool             // guarded by mu
	closed  bool             // guarded by mu
}

func (q *resultQueue) init() {
	q.out = make(chan DeliveryResult)
	q.wake = make(chan struct{}, 1)
	q.stop = make(chan struct{})
	q.done = make(chan struct{})
}

func (q *resultQueue) push(r DeliveryResult) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.items = append(q.items, r)
	start := !q.started
	q.started = true
	q.mu.Unlock()
	if start {
		go q.pump()
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *resultQueue) pump() {
	defer close(q.done)
	defer close(q.out)
	for {
		q.mu.Lock()
		var r DeliveryResult
		ok := len(q.items) > 0
		if ok {
			r = q.items[0]
		}
		q.mu.Unlock()
		if !ok {
			select {
			case <-q.wake:
				continue
			case <-q.stop:
				return
			}
		}
		select {
		case q.out <- r:
			q.mu.Lock()
			q.items[0] = DeliveryResult{}
			q.items = q.items[1:]
			q.mu.Unlock()
		case <-q.stop:
			return
		}
	}
}

// close stops the pump, waits for it and closes out.
func (q *resultQueue) close() {
	q.mu.Lock()
	started := q.started
	q.closed, q.started = true, true
	q.mu.Unlock()
	close(q.stop)
	if started {
		<-q.done
	} else {
		close(q.out)
	}
}
