package mqtt

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/b4e21b16/mqtt/packet"
)

// Pending is the completion of a publish started with PublishAsync or
// PublishDurable, or restored from a Store (Client.Restored). Done is
// closed when the publish has completed; Err then reports its outcome. A
// Pending is the caller's: once completed it never changes, and the client
// never reuses it.
type Pending struct {
	id uint64 // set before the caller sees the Pending; never changed

	// completed is set, after err and done, once the publish has
	// completed: from then on Done and Err read without the lock, so that
	// a completed Pending can be shared (see succeeded).
	completed atomic.Bool

	mu       sync.Mutex
	done     chan struct{} // made on first use by Done; closed on completion; guarded by mu
	finished bool          // guarded by mu
	err      error         // guarded by mu
}

// ID returns the number of a durable publish in the Store: what
// PublishDurable returned it with, and what Client.Restored finds it by
// after a restart. It is 0 for other publishes.
func (p *Pending) ID() uint64 { return p.id }

// Done returns a channel that is closed when the publish has completed.
func (p *Pending) Done() <-chan struct{} {
	if p.completed.Load() {
		if p.done != nil {
			return p.done
		}
		return closedChan
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		if p.finished {
			return closedChan
		}
		p.done = make(chan struct{})
	}
	return p.done
}

// Err returns the publish's outcome once Done is closed, and nil before.
func (p *Pending) Err() error {
	if p.completed.Load() {
		return p.err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Wait waits for the publish to complete and returns its outcome, or ctx's
// error if ctx ends first (the publish then goes on).
func (p *Pending) Wait(ctx context.Context) error {
	select {
	case <-p.Done():
		return p.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// complete records the outcome; only the first call counts.
func (p *Pending) complete(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	p.err = err
	if p.done != nil {
		close(p.done)
	}
	p.completed.Store(true)
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// succeeded is the Pending of every asynchronous QoS 0 publish written at
// once: completed without error, it never changes, so one serves them all
// and such a publish allocates nothing.
var succeeded = func() *Pending { p := new(Pending); p.complete(nil); return p }()

// publishReq is one publish from the API call that made it until it
// completes: the request the session receives, then its record while it
// waits to be sent and while it is in flight. The session goroutine owns
// every field but those set before submission; the caller learns the
// outcome through pending (PublishAsync, PublishDurable) or reply
// (Publish), never through the record, which the caller does not see.
type publishReq struct {
	msg Message
	ctx context.Context // the caller's: a publish still waiting for a packet ID is dropped when it ends

	// The caller's view: pending (returned to the caller, who may keep it
	// for ever; it lives in the record so that an asynchronous publish costs
	// one allocation), or reply, a 1-buffered channel a synchronous Publish
	// waits on.
	pending Pending
	reply   chan error

	// mem and charge are the memory budget and the bytes this publish holds
	// in it until it completes; set before it is submitted.
	mem    *memoryBudget
	charge int64

	// Owned by the session goroutine while the publish is queued or in
	// flight. The PUBLISH itself is encoded from msg whenever it is
	// (re-)sent.
	id        uint16      // packet identifier, 0 until sent (QoS 1 and 2)
	dup       bool        // re-sent: DUP set
	phase     packet.Type // the acknowledgement awaited next
	seq       uint64      // order of publishing
	relSeq    uint64      // QoS 2: order in which its PUBREC arrived
	durable   bool        // made with PublishDurable: pending.id names it in the Store
	stored    bool        // a record of it is in the Store
	completed bool        // complete was called
	// rejections counts connections that ended with this the oldest publish
	// in flight, before the broker sent anything (Reconnect.RejectAfter).
	rejections int
}

// detachedCtx is the context of publishes no caller waits for.
var detachedCtx = context.Background()

func newPublishReq(ctx context.Context, m Message) *publishReq {
	return &publishReq{msg: m, ctx: ctx}
}

// uncharge gives r's memory back when r was never handed to the session.
func (r *publishReq) uncharge() {
	if r.mem != nil {
		r.mem.releaseOutbound(r.charge)
		r.mem, r.charge = nil, 0
	}
}

// complete ends the publish with err: its memory is given back and the
// caller is told. Only the first call counts; nothing in r may be used for
// the publish afterwards.
func (r *publishReq) complete(err error) {
	if r.completed {
		return
	}
	r.completed = true
	r.uncharge()
	if r.reply != nil {
		r.reply <- err
		return
	}
	r.pending.complete(err)
}

// replyChans recycles the channels synchronous publishes wait on. Each
// Client has its own, so that channels never cross between testing/synctest
// bubbles. A channel goes back only once its one value was received.
type replyChans struct{ pool sync.Pool }

func (rc *replyChans) get() chan error {
	if ch, ok := rc.pool.Get().(chan error); ok {
		return ch
	}
	return make(chan error, 1)
}

func (rc *replyChans) put(ch chan error) { rc.pool.Put(ch) }
