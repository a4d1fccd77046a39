package mqtt

import (
	"context"
	"fmt"
	"slices"
)

// PublishDurable queues a QoS 1 or 2 message so that it survives a
// reconnect and, with a durable Store, a crash of the process. It returns
// once the message is recorded and queued, with a Pending whose ID names it
// in the Store. The Pending completes as Publish would return; if the
// process stops first, the next one that opens the same Store re-sends the
// message and finds its Pending, with the same ID, in Client.Restored.
// Without a Store it still survives reconnects. It counts against
// Config.Queue while it waits to be sent, and fails with ErrQueueFull
// rather than wait when the queue is full.
func (c *Client) PublishDurable(ctx context.Context, m Message) (*Pending, error) {
	if m.QoS == AtMostOnce {
		return nil, &ArgumentError{What: "QoS", Value: "0", Err: errDurableQoS0}
	}
	if err := validatePublish(&m); err != nil {
		return nil, err
	}
	r := &durableReq{p: newPublishReq(detachedCtx, m), accepted: make(chan error, 1)}
	r.p.durable = true
	if err := c.charge(ctx, r.p, false); err != nil {
		return nil, err
	}
	if err := c.s.submit(ctx, r); err != nil {
		r.p.complete(err)
		return nil, err
	}
	select {
	case err := <-r.accepted:
		if err != nil {
			return nil, err
		}
		return &r.p.pending, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Restored returns the Pendings of the durable publishes that Connect
// found in Config.Store, left by an earlier process (see PublishDurable):
// the client sends them again, and each completes as that process's
// PublishDurable would have. Their IDs are those PublishDurable returned
// then. The slice is the same for the client's whole life.
func (c *Client) Restored() []*Pending { return slices.Clone(c.restored) }

type durableError string

func (e durableError) Error() string { return string(e) }

const errDurableQoS0 = durableError("durable publishes need QoS 1 or 2")

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
	r.p.pending.id = s.seq
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
