package mqtt

import (
	"context"
	"sync"
)

// delivery is one message waiting in a deliveryQueue. ref is nil for QoS 0;
// for QoS 1 and 2 it is the session's record of the unacknowledged message,
// which the session acknowledges once every queue holding it let it go.
// size is what the entry counts against the memory budget until it leaves
// the queue.
type delivery struct {
	msg  Message
	ref  *inboundRef
	size int64
}

// deliveryQueue decouples the session from an application's channel. The
// session pushes without ever blocking; a pump goroutine offers the head to
// the unbuffered out channel, so a message counts as taken only when the
// application has received it. QoS 0 entries are bounded by limit; QoS 1/2
// entries are bounded by flow control (Config.ReceiveMaximum).
type deliveryQueue struct {
	out   chan Message  // unbuffered; closed by the pump when it exits
	wake  chan struct{} // 1-buffered: an item was pushed
	done  chan struct{} // closed by close
	limit int           // most QoS 0 entries

	mu      sync.Mutex
	items   fifo[delivery] // guarded by mu
	qos0    int            // QoS 0 entries in items; guarded by mu
	closed  bool           // guarded by mu
	started bool           // the pump runs; guarded by mu
}

func newDeliveryQueue(limit int) *deliveryQueue {
	return &deliveryQueue{out: make(chan Message), wake: make(chan struct{}, 1), done: make(chan struct{}), limit: limit}
}

// push appends d. It returns false, keeping nothing, when d is QoS 0 and the
// QoS 0 limit is reached. It reports whether the pump must be started.
func (q *deliveryQueue) push(d delivery) (ok, start bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return true, false
	}
	if d.ref == nil {
		if q.qos0 >= q.limit {
			return false, false
		}
		q.qos0++
	}
	q.items.push(d)
	start = !q.started
	q.started = true
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true, start
}

// offer hands msg straight to an application goroutine already waiting on
// out, without the pump, when nothing is queued ahead of it. It reports
// whether msg was taken. Only the session calls it (as it alone pushes and
// closes), so the queue cannot fill or close between the check and the
// send.
func (q *deliveryQueue) offer(msg Message) bool {
	q.mu.Lock()
	empty := !q.closed && q.items.len() == 0
	q.mu.Unlock()
	if !empty {
		return false
	}
	select {
	case q.out <- msg:
		return true
	default:
		return false
	}
}

// queueKeepCap is the most entries an empty queue's array keeps when
// trimmed.
const queueKeepCap = 64

// trim lets a burst's large array go once the queue is empty.
func (q *deliveryQueue) trim() {
	q.mu.Lock()
	if q.items.len() == 0 && q.items.cap() > queueKeepCap {
		q.items.reset()
	}
	q.mu.Unlock()
}

// peek returns the head without removing it.
func (q *deliveryQueue) peek() (delivery, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.items.len() == 0 {
		return delivery{}, false
	}
	return q.items.front(), true
}

// taken removes the head after the pump handed it over and returns the
// new head, if any, in the same critical section. open is false if the
// queue was closed meanwhile (close already accounted for the head).
func (q *deliveryQueue) taken() (next delivery, more, open bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return delivery{}, false, false
	}
	if d := q.items.pop(); d.ref == nil {
		q.qos0--
	}
	if q.items.len() == 0 {
		return delivery{}, false, true
	}
	return q.items.front(), true, true
}

// close stops the queue and returns the entries not yet taken (including a
// head the pump may be offering right now). It reports whether a pump was
// started, whose exit the caller must wait for.
func (q *deliveryQueue) close() ([]delivery, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, false
	}
	q.closed = true
	left := q.items.live()
	q.items = fifo[delivery]{}
	close(q.done)
	started := q.started
	q.started = true // no pump may start after close
	return left, started
}

// pump offers queued messages to out until the queue closes; it then closes
// out. After each handover it gives the entry's bytes back to mem and tells
// the session, through its request queue, that a QoS 1/2 message was taken
// (the *inboundRef) or that room it waited for appeared (roomNotice). stop
// ends a blocked send.
func (q *deliveryQueue) pump(inbox *requestQueue, mem *memoryBudget, stop <-chan struct{}) {
	defer close(q.out)
	d, ok := q.peek()
	for {
		if !ok {
			select {
			case <-q.wake:
				d, ok = q.peek()
				continue
			case <-q.done:
				return
			case <-stop:
				return
			}
		}
		// A receiver is usually waiting during a flood: try the cheap
		// non-blocking send before the full select.
		select {
		case q.out <- d.msg:
		default:
			select {
			case q.out <- d.msg:
			case <-q.done:
				return
			case <-stop:
				return
			}
		}
		next, more, open := q.taken()
		if !open {
			return
		}
		// The session hears of both through its request queue; a push
		// fails only once the session has stopped.
		if mem.releaseInbound(d.size) && inbox.push(context.Background(), roomNotice{}) != nil {
			return
		}
		if d.ref != nil && inbox.push(context.Background(), d.ref) != nil {
			return
		}
		d, ok = next, more
	}
}

// roomNotice tells the session that memory it waited for to deliver a
// received message is free.
type roomNotice struct{}

func (roomNotice) handle(s *session) { s.retryStalled() }
func (roomNotice) fail(error)        {}

// handle records that the application took the message ref belongs to from
// a delivery queue; see session.onTaken.
func (ref *inboundRef) handle(s *session) { s.onTaken(ref) }
func (ref *inboundRef) fail(error)        {}
