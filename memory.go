package mqtt

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"unsafe"
)

// defaultMemoryLimit is Config.MemoryLimit's default.
const defaultMemoryLimit = 8 << 20

// Per-message memory besides the buffers of topic, payload and properties.
const (
	// inboundOverhead: a delivery in a queue's array, which may be half
	// empty after growing, and the QoS 1/2 acknowledgement record.
	inboundOverhead = 2*unsafe.Sizeof(delivery{}) + unsafe.Sizeof(inboundRef{})
	// outboundOverhead: the record that carries a publish.
	outboundOverhead = unsafe.Sizeof(publishReq{})
)

// memoryBudget bounds, in bytes, the messages a Client holds on the
// application's behalf (Config.MemoryLimit): received messages waiting in
// delivery queues (inbound), and publishes queued or in flight (outbound).
//
// Inbound messages may use the whole limit less what outbound holds;
// outbound may use at most half of it, so receiving always has room. A
// message is admitted regardless of its size when nothing is held in its
// direction, so that one message larger than the limit can always pass
// (the broker's and the client's Maximum Packet Size bound it).
//
// The session goroutine alone charges inbound bytes, and never waits for
// room: it decides what to do with a message that does not fit. Publishing
// goroutines charge outbound bytes and may wait. Anyone releases.
type memoryBudget struct {
	limit int64
	in    atomic.Int64 // inbound bytes held
	out   atomic.Int64 // outbound bytes held

	// waiters counts goroutines waiting for outbound room; a release takes
	// mu only when there are any.
	waiters atomic.Int32
	mu      sync.Mutex
	room    chan struct{} // closed on release when waiters wait; guarded by mu

	// sessionWaits is set by the session when a received message waits for
	// inbound room; whoever releases inbound bytes then tells the session.
	sessionWaits atomic.Bool
}

func newMemoryBudget(limit int64) *memoryBudget { return &memoryBudget{limit: limit} }

// qos0Limit is the QoS 0 capacity of each delivery queue: MessageBuffer,
// or no count at all under OverflowPolicy Block, where MemoryLimit alone
// bounds them.
func (cfg *Config) qos0Limit() int {
	if cfg.QoS0Overflow == Block {
		return int(^uint(0) >> 1)
	}
	return cfg.MessageBuffer
}

// errNoRoom is acquireOutbound's error when the budget is full and the
// caller does not wait.
var errNoRoom = errors.New("no room")

// footprint is what holding the outbound message m counts against the
// budget: the buffers it refers to and the record that carries it.
func (m *Message) footprint() int64 {
	n := len(m.Topic) + len(m.Payload) + len(m.ContentType) + len(m.ResponseTopic) + len(m.CorrelationData) +
		int(outboundOverhead) + userPropsSize(m.UserProperties)
	for _, u := range m.UserProperties {
		n += len(u.Key) + len(u.Value)
	}
	return int64(n)
}

// inboundFootprint is what holding a received message counts against the
// budget: the allocation of its PUBLISH body (bodySize), which holds its
// topic, payload and string properties, the slices the decoder made for its
// other properties, and its place in a delivery queue.
func inboundFootprint(m *Message, bodySize int) int64 {
	return int64(bodySize + int(inboundOverhead) + 4*cap(m.SubscriptionIDs) + userPropsSize(m.UserProperties))
}

func userPropsSize(props []UserProperty) int {
	return cap(props) * int(unsafe.Sizeof(UserProperty{}))
}

// tryInbound charges n inbound bytes if they fit, reporting whether they
// did. Only the session goroutine calls it.
func (b *memoryBudget) tryInbound(n int64) bool {
	in := b.in.Load()
	if in > 0 && in+b.out.Load()+n > b.limit {
		return false
	}
	b.in.Add(n)
	return true
}

// full reports whether n more inbound bytes would not fit: what tryInbound
// would refuse. Any goroutine may ask; the answer may be stale by the time
// it is used.
func (b *memoryBudget) full(n int64) bool {
	in := b.in.Load()
	return in > 0 && in+b.out.Load()+n > b.limit
}

// releaseInbound gives back n inbound bytes. It reports whether the session
// was waiting for room and must be told (only one releaser sees true).
func (b *memoryBudget) releaseInbound(n int64) (wake bool) {
	if n == 0 {
		return false
	}
	b.in.Add(-n)
	b.wake() // publishers waiting for outbound room may fit now
	return b.sessionWaits.Load() && b.sessionWaits.CompareAndSwap(true, false)
}

// waitInbound records that the session waits for inbound room. It reports
// false if room appeared meanwhile (the session retries at once instead).
func (b *memoryBudget) waitInbound(n int64) bool {
	b.sessionWaits.Store(true)
	in := b.in.Load()
	if in == 0 || in+b.out.Load()+n <= b.limit {
		b.sessionWaits.Store(false)
		return false
	}
	return true
}

// outboundFits reports whether n more outbound bytes fit.
func (b *memoryBudget) outboundFits(n int64) bool { return b.fits(b.out.Load(), n) }

func (b *memoryBudget) fits(out, n int64) bool {
	return out == 0 || (out+n <= b.limit/2 && out+b.in.Load()+n <= b.limit)
}

// acquireOutbound charges n outbound bytes. If they do not fit it fails at
// once with errNoRoom unless wait is set; then it waits for room until ctx
// ends or stop is closed (returning errStopped).
func (b *memoryBudget) acquireOutbound(ctx context.Context, n int64, wait bool, stop <-chan struct{}) error {
	for { // without waiters, a compare-and-swap is all it costs
		out := b.out.Load()
		if !b.fits(out, n) {
			break
		}
		if b.out.CompareAndSwap(out, out+n) {
			return nil
		}
	}
	for {
		// Registering as a waiter before checking means a release that
		// happens after the check sees the waiter and wakes it.
		b.waiters.Add(1)
		b.mu.Lock()
		if b.outboundFits(n) {
			b.out.Add(n) // concurrent fast paths may overshoot by one message each
			b.mu.Unlock()
			b.waiters.Add(-1)
			return nil
		}
		if !wait {
			b.mu.Unlock()
			b.waiters.Add(-1)
			return errNoRoom
		}
		if b.room == nil {
			b.room = make(chan struct{})
		}
		room := b.room
		b.mu.Unlock()
		var err error
		select {
		case <-room:
		case <-ctx.Done():
			err = ctx.Err()
		case <-stop:
			err = errStopped
		}
		b.waiters.Add(-1)
		if err != nil {
			return err
		}
	}
}

// releaseOutbound gives back n outbound bytes and wakes waiting publishers.
func (b *memoryBudget) releaseOutbound(n int64) {
	if n == 0 {
		return
	}
	b.out.Add(-n)
	b.wake()
}

func (b *memoryBudget) wake() {
	if b.waiters.Load() == 0 {
		return
	}
	b.mu.Lock()
	if b.room != nil {
		close(b.room)
		b.room = nil
	}
	b.mu.Unlock()
}
