package mqtt

import (
	"context"
	"errors"
	"testing"
	"time"
)

type testRequest struct{ n int }

func (*testRequest) handle(*session) {}
func (*testRequest) fail(error)      {}

// TestRequestQueue checks the queue between API calls and the session:
// order is kept, a full queue makes callers wait until the session takes
// the batch (or their context ends), and after stop nothing is accepted,
// so no call is left unanswered.
func TestRequestQueue(t *testing.T) {
	q := newRequestQueue()
	ctx := context.Background()
	for i := range requestQueueMax {
		if err := q.push(ctx, &testRequest{i}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-q.kick:
	default:
		t.Fatal("no kick after push")
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := q.push(short, &testRequest{-1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("push to a full queue with an ending context: %v", err)
	}
	waiting := make(chan error, 1)
	go func() { waiting <- q.push(ctx, &testRequest{requestQueueMax}) }()
	batch := q.take()
	if len(batch) != requestQueueMax {
		t.Fatalf("took %d, want %d", len(batch), requestQueueMax)
	}
	for i, r := range batch {
		if r.(*testRequest).n != i {
			t.Fatalf("batch[%d] = %d: order not kept", i, r.(*testRequest).n)
		}
	}
	q.recycle(batch)
	if err := <-waiting; err != nil {
		t.Fatalf("push once room was made: %v", err)
	}
	left := q.stop()
	if len(left) != 1 || left[0].(*testRequest).n != requestQueueMax {
		t.Fatalf("stop returned %v, want the one queued call", left)
	}
	if err := q.push(ctx, &testRequest{}); err != errStopped {
		t.Fatalf("push after stop: %v, want errStopped", err)
	}
	canceled, cancel2 := context.WithCancel(ctx)
	cancel2()
	if err := newRequestQueue().push(canceled, &testRequest{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("push with an ended context: %v", err)
	}
}
