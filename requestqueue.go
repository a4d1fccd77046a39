package mqtt

import (
	"context"
	"errors"
	"sync"
)

// requestQueueMax is how many API calls may wait for the session goroutine
// before callers wait for room.
const requestQueueMax = 256

// requestQueue carries API calls (publishes, subscribes, pings, ...) to the
// session goroutine. Callers append under a mutex and wake the session with
// a 1-buffered kick; the session takes everything queued at once. A burst of
// calls thus costs the session one wake-up instead of one channel handoff
// each, and a caller waits only when requestQueueMax calls are queued.
// Once the session has stopped, the queue refuses new calls, so none can be
// left behind unanswered.
type requestQueue struct {
	mu      sync.Mutex
	items   []request     // guarded by mu
	spare   []request     // a taken batch kept for reuse; guarded by mu
	space   chan struct{} // made by a caller waiting for room, closed by take; guarded by mu
	stopped bool          // guarded by mu
	kick    chan struct{} // 1-buffered: items is not empty
}

func newRequestQueue() *requestQueue {
	return &requestQueue{kick: make(chan struct{}, 1)}
}

// push queues r. It fails with ctx's error if ctx has ended (or ends while
// the queue is full), and with errStopped once the session has stopped.
func (q *requestQueue) push(ctx context.Context, r request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for {
		q.mu.Lock()
		if q.stopped {
			q.mu.Unlock()
			return errStopped
		}
		if len(q.items) < requestQueueMax {
			q.items = append(q.items, r)
			q.mu.Unlock()
			select {
			case q.kick <- struct{}{}:
			default:
			}
			return nil
		}
		if q.space == nil {
			q.space = make(chan struct{})
		}
		space := q.space
		q.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// errStopped is push's error once the session has stopped; submit turns it
// into the client's error, which is set by then.
var errStopped = errors.New("mqtt: session stopped")

// take returns every queued call, in order. Only the session calls it; it
// hands the batch back with recycle when done.
func (q *requestQueue) take() []request {
	q.mu.Lock()
	batch := q.items
	q.items, q.spare = q.spare, nil
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
	q.mu.Unlock()
	return batch
}

// recycle keeps a handled batch's array for reuse.
func (q *requestQueue) recycle(batch []request) {
	clear(batch)
	q.mu.Lock()
	if q.spare == nil {
		q.spare = batch[:0]
	}
	q.mu.Unlock()
}

// stop refuses further calls and returns those still queued.
func (q *requestQueue) stop() []request {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stopped = true
	batch := q.items
	q.items, q.spare = nil, nil
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
	return batch
}
