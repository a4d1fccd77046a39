package mqtt

// fifo is a first-in first-out queue that reuses its array: popping
// advances a head index, and a push into a full array first moves the live
// entries to the front when at least half of it is free, so a queue that
// never quite empties does not grow without bound.
type fifo[T any] struct {
	items []T
	head  int
}

func (q *fifo[T]) len() int  { return len(q.items) - q.head }
func (q *fifo[T]) front() T  { return q.items[q.head] }
func (q *fifo[T]) cap() int  { return cap(q.items) }
func (q *fifo[T]) live() []T { return q.items[q.head:] }

func (q *fifo[T]) push(v T) {
	if len(q.items) == cap(q.items) && q.head > 0 && q.head >= len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, v)
}

func (q *fifo[T]) pop() T {
	v := q.items[q.head]
	var zero T
	q.items[q.head] = zero
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return v
}

// reset empties the queue and lets its array go.
func (q *fifo[T]) reset() {
	clear(q.items)
	*q = fifo[T]{}
}
