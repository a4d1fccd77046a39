package mqtt

import (
	"context"
	"sync"

	"github.com/b4e21b16/mqtt/packet"
)

// Pending is the completion of a publish started with PublishAsync (and,
// inside Publish, of every QoS 1 and 2 publish). Done is closed when the
// publish completed; Err then reports its outcome.
type Pending struct {
	msg Message
	ctx context.Context // the caller's: a publish still waiting for a packet ID is dropped when it ends

	mu       sync.Mutex
	done     chan struct{} // made on first use by Done; closed on completion; guarded by mu
	finished bool          // guarded by mu
	err      error         // guarded by mu
	// signal, when set, receives one value on completion. Publish uses it
	// with pooled Pendings so that a synchronous publish allocates nothing.
	signal chan struct{}

	// Owned by the session goroutine while the publish is in flight. The
	// PUBLISH itself is encoded from msg whenever it is (re-)sent.
	id      uint16      // packet identifier, 0 until sent (QoS 1 and 2)
	dup     bool        // re-sent: DUP set
	phase   packet.Type // the acknowledgement awaited next
	seq     uint64      // order of publishing
	relSeq  uint64      // QoS 2: order in which its PUBREC arrived
	durable bool        // the outcome goes to Client.DeliveryResults
	stored  bool        // a record of it is in the Store
	// rejections counts connections that ended with this the oldest publish
	// in flight, before the broker sent anything (Reconnect.RejectAfter).
	rejections int

	// mem and charge are the memory budget and the bytes this publish holds
	// in it until it completes; set before it is submitted.
	mem    *memoryBudget
	charge int64
}

// detachedCtx is the context of publishes no caller waits for.
var detachedCtx = context.Background()

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func newPending(ctx context.Context, m Message) *Pending {
	return &Pending{msg: m, ctx: ctx}
}

// pendingPool recycles the completions of synchronous publishes. Each Client
// has its own, so that channels never cross between testing/synctest bubbles.
type pendingPool struct{ pool sync.Pool }

// get returns a pooled Pending for a synchronous publish.
func (pp *pendingPool) get(ctx context.Context, m Message) *Pending {
	p, _ := pp.pool.Get().(*Pending)
	if p == nil {
		p = &Pending{signal: make(chan struct{}, 1)}
	}
	p.msg, p.ctx = m, ctx
	return p
}

// put recycles p after its completion was received from p.signal.
func (pp *pendingPool) put(p *Pending) {
	sig := p.signal
	*p = Pending{signal: sig}
	pp.pool.Put(p)
}

// Done returns a channel that is closed when the publish has completed.
func (p *Pending) Done() <-chan struct{} {
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

// uncharge gives p's memory back when p was never handed to the session.
func (p *Pending) uncharge() {
	if p.mem != nil {
		p.mem.releaseOutbound(p.charge)
		p.mem, p.charge = nil, 0
	}
}

// complete records the outcome; only the first call counts.
func (p *Pending) complete(err error) {
	p.mu.Lock()
	if p.finished {
		p.mu.Unlock()
		return
	}
	p.finished = true
	p.err = err
	if p.done != nil {
		close(p.done)
	}
	sig := p.signal
	mem, charge := p.mem, p.charge
	p.mem, p.charge = nil, 0
	p.mu.Unlock()
	if mem != nil {
		mem.releaseOutbound(charge)
	}
	if sig != nil {
		sig <- struct{}{}
	}
}
