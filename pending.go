package mqtt

import (
	"context"
	"sync/atomic"

	"github.com/b4e21b16/mqtt/packet"
)

// Pending is the completion of a publish started with PublishAsync (and,
// inside Publish, of every QoS 1 and 2 publish). Done is closed when the
// publish completed; Err then reports its outcome.
type Pending struct {
	msg  Message
	ctx  context.Context // the caller's: a publish still waiting for a packet ID is dropped when it ends
	done chan struct{}
	err  error // written once before done is closed
	fin  atomic.Bool

	// Owned by the session goroutine while the publish is in flight.
	pub   packet.Publish
	phase packet.Type // the acknowledgement awaited next
}

func newPending(ctx context.Context, m Message) *Pending {
	return &Pending{msg: m, ctx: ctx, done: make(chan struct{})}
}

// Done returns a channel that is closed when the publish has completed.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Err returns the publish's outcome once Done is closed, and nil before.
func (p *Pending) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Wait waits for the publish to complete and returns its outcome, or ctx's
// error if ctx ends first (the publish then goes on).
func (p *Pending) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// complete records the outcome; only the first call counts.
func (p *Pending) complete(err error) {
	if p.fin.CompareAndSwap(false, true) {
		p.err = err
		close(p.done)
	}
}
