package failover

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// record keeps what one publisher and one subscriber pair saw: when each
// message was published and acknowledged, and every copy received. Its
// methods may be called from any goroutine.
type record struct {
	name string
	qos  byte

	mu       sync.Mutex
	started  []time.Time  // by seq-1: when the publish was made
	acked    []time.Time  // by seq-1: when its acknowledgement was seen (zero: none)
	failed   []error      // by seq-1: a publish that failed
	received []receipt    // in arrival order
	resent   map[int]bool // seqs in flight when the publisher lost a connection
	pubNode  []nodeSpan   // where the publisher was connected, over time
	subNode  []nodeSpan   // where the subscriber was connected, over time
	sessions sessionCount
	waits    []backoffWait // the client's own waits before reconnection attempts (this module's client only)
}

// backoffWait is a wait the client announced before a reconnection attempt.
type backoffWait struct {
	pub bool // the publisher's, else the subscriber's
	at  time.Time
	d   time.Duration
}

// receipt is one message received.
type receipt struct {
	seq int
	at  time.Time
	dup bool // the broker set DUP
}

// nodeSpan says the client was connected to url from since on.
type nodeSpan struct {
	url   string // "" while disconnected
	since time.Time
}

// sessionCount counts what the broker said of the sessions on reconnection.
type sessionCount struct {
	resumed, recreated, resubscribed int
	resubscribeErrs                  []error
}

func newRecord(name string, qos byte) *record {
	return &record{name: name, qos: qos, resent: map[int]bool{}}
}

func payload(seq int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(seq)) }

func seqOf(p []byte) (int, error) {
	if len(p) != 8 {
		return 0, fmt.Errorf("payload of %d bytes", len(p))
	}
	return int(binary.BigEndian.Uint64(p)), nil
}

// published notes that seq (1-based, consecutive) is being published.
func (r *record) published(seq int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq != len(r.started)+1 {
		panic(fmt.Sprintf("seq %d after %d", seq, len(r.started)))
	}
	r.started = append(r.started, time.Now())
	r.acked = append(r.acked, time.Time{})
	r.failed = append(r.failed, nil)
}

// completed notes the outcome of publishing seq.
func (r *record) completed(seq int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failed[seq-1] = err
		return
	}
	r.acked[seq-1] = time.Now()
}

// got notes a received message.
func (r *record) got(seq int, dup bool) {
	r.mu.Lock()
	r.received = append(r.received, receipt{seq: seq, at: time.Now(), dup: dup})
	r.mu.Unlock()
}

// pubConnected and subConnected note where a client is connected ("" for
// a lost connection).
func (r *record) pubConnected(url string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if url == "" {
		// What is in flight now is re-sent on the next connection.
		for i := range r.started {
			if r.acked[i].IsZero() && r.failed[i] == nil {
				r.resent[i+1] = true
			}
		}
	}
	r.pubNode = append(r.pubNode, nodeSpan{url, now})
}

func (r *record) subConnected(url string) {
	r.mu.Lock()
	r.subNode = append(r.subNode, nodeSpan{url, time.Now()})
	r.mu.Unlock()
}

// session notes a reconnection's session-present flag.
func (r *record) session(present bool) {
	r.mu.Lock()
	if present {
		r.sessions.resumed++
	} else {
		r.sessions.recreated++
	}
	r.mu.Unlock()
}

// resubscribed notes the client subscribed again after a lost session.
func (r *record) resubscribed(err error) {
	r.mu.Lock()
	r.sessions.resubscribed++
	if err != nil {
		r.sessions.resubscribeErrs = append(r.sessions.resubscribeErrs, err)
	}
	r.mu.Unlock()
}

// waited notes a wait before a reconnection attempt of the publisher or
// the subscriber.
func (r *record) waited(pub bool, at time.Time, d time.Duration) {
	r.mu.Lock()
	r.waits = append(r.waits, backoffWait{pub, at, d})
	r.mu.Unlock()
}

// waitedWithin returns how long the clients a kill hit (who) waited before
// reconnection attempts between t and t+d: the part of a recovery that was
// the client's own backoff.
func (r *record) waitedWithin(who role, t time.Time, d time.Duration) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sum time.Duration
	for _, w := range r.waits {
		mine := (w.pub && who != hitSub) || (!w.pub && who != hitPub)
		if !mine || w.at.Before(t) || !w.at.Before(t.Add(d)) {
			continue
		}
		sum += min(w.d, t.Add(d).Sub(w.at))
	}
	return sum
}

// nodeAt returns where spans say the client was connected at t.
func nodeAt(spans []nodeSpan, t time.Time) string {
	url := ""
	for _, s := range spans {
		if s.since.After(t) {
			break
		}
		url = s.url
	}
	return url
}

// on reports whether the publisher or the subscriber was connected to url
// at t.
func (r *record) on(url string, t time.Time) (pub, sub bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return nodeAt(r.pubNode, t) == url, nodeAt(r.subNode, t) == url
}

// currentNodes returns where the publisher and the subscriber are
// connected now ("" while disconnected).
func (r *record) currentNodes() (pub, sub string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return nodeAt(r.pubNode, time.Now()), nodeAt(r.subNode, time.Now())
}

// progress returns the number of acknowledged publishes and of received
// messages.
func (r *record) progress() (acked, received int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.acked {
		if !a.IsZero() {
			acked++
		}
	}
	return acked, len(r.received)
}

// missing returns the acknowledged seqs not received yet.
func (r *record) missing() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := make(map[int]bool, len(r.received))
	for _, m := range r.received {
		seen[m.seq] = true
	}
	var miss []int
	for i, a := range r.acked {
		if !a.IsZero() && !seen[i+1] {
			miss = append(miss, i+1)
		}
	}
	return miss
}

// recovery is how long one client took to recover from one failover.
type recovery struct {
	ack, recv time.Duration // to the first acknowledged publish and first received message made after the kill (-1: none)
}

// recoveryAfter measures the recovery from a kill at t: the first
// publish made after t to be acknowledged, and the first message published
// after t to be received.
func (r *record) recoveryAfter(t time.Time) recovery {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := recovery{ack: -1, recv: -1}
	first := sort.Search(len(r.started), func(i int) bool { return !r.started[i].Before(t) })
	for i := first; i < len(r.started); i++ {
		if a := r.acked[i]; !a.IsZero() && (rec.ack < 0 || a.Sub(t) < rec.ack) {
			rec.ack = a.Sub(t)
		}
	}
	for _, m := range r.received {
		if m.seq-1 >= first {
			rec.recv = m.at.Sub(t)
			break
		}
	}
	return rec
}

// role says which of a pair's clients a kill hit.
type role string

const (
	hitNone role = ""
	hitPub  role = "publisher"
	hitSub  role = "subscriber"
	hitBoth role = "both"
)

// hitRecovery is how long the pair took to recover from the kill of url at
// t, measured on the client it hit: the first acknowledged publish made
// after the kill when it hit only the publisher, the first message
// received that was published after the kill when it hit the subscriber
// (which, when it hit both, includes the publisher's recovery). A kill
// that hit neither returns hitNone; -1 means no recovery was seen.
func (r *record) hitRecovery(url string, t time.Time) (time.Duration, role) {
	pub, sub := r.on(url, t.Add(-time.Millisecond))
	rec := r.recoveryAfter(t)
	switch {
	case pub && sub:
		return rec.recv, hitBoth
	case pub:
		return rec.ack, hitPub
	case sub:
		return rec.recv, hitSub
	}
	return 0, hitNone
}

// summary is what a pair's run came to.
type summary struct {
	published, acked, failed, received int
	lost, duplicates                   int
	// Messages received for the first time after a later one, by cause:
	// a copy the broker sent again on its own (DUP set), a message the
	// publisher re-sent after a reconnection, and the broker's forwarding
	// order otherwise.
	reorderedRedelivered, reorderedResent, reorderedBroker int
	firstLost                                              []int
	firstFailed                                            []error
	sessions                                               sessionCount
}

func (r *record) summarize() summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := summary{published: len(r.started), received: len(r.received), sessions: r.sessions}
	seen := map[int]bool{}
	highest := 0
	for _, m := range r.received {
		if seen[m.seq] {
			s.duplicates++
			continue
		}
		seen[m.seq] = true
		if m.seq < highest {
			switch {
			case m.dup:
				s.reorderedRedelivered++
			case r.resent[m.seq]:
				s.reorderedResent++
			default:
				s.reorderedBroker++
			}
		}
		highest = max(highest, m.seq)
	}
	for i := range r.started {
		switch {
		case r.failed[i] != nil:
			s.failed++
			if len(s.firstFailed) < 5 {
				s.firstFailed = append(s.firstFailed, fmt.Errorf("seq %d: %w", i+1, r.failed[i]))
			}
		case !r.acked[i].IsZero():
			s.acked++
			if !seen[i+1] {
				s.lost++
				if len(s.firstLost) < 10 {
					s.firstLost = append(s.firstLost, i+1)
				}
			}
		}
	}
	return s
}

func (s summary) String() string {
	failed := ""
	if len(s.firstFailed) > 0 {
		failed = fmt.Sprintf(" (first failures: %v)", s.firstFailed)
	}
	return failed + fmt.Sprintf("published %d, acknowledged %d, failed %d, received %d: lost %d, duplicates %d, "+
		"out of order %d (broker redelivery %d, publisher re-send %d, broker order %d); "+
		"sessions on reconnection: resumed %d, re-created %d (re-subscribed %d)",
		s.published, s.acked, s.failed, s.received, s.lost, s.duplicates,
		s.reorderedRedelivered+s.reorderedResent+s.reorderedBroker, s.reorderedRedelivered, s.reorderedResent, s.reorderedBroker,
		s.sessions.resumed, s.sessions.recreated, s.sessions.resubscribed)
}

// percentiles formats p50, p99 and max of ds (negative: no recovery seen).
func percentiles(ds []time.Duration) string {
	var ok []time.Duration
	none := 0
	for _, d := range ds {
		if d < 0 {
			none++
			continue
		}
		ok = append(ok, d)
	}
	if len(ok) == 0 {
		return fmt.Sprintf("n=0 (none recovered of %d)", len(ds))
	}
	slices.Sort(ok)
	at := func(p float64) time.Duration {
		i := int(p*float64(len(ok))+0.999999) - 1
		return ok[max(0, min(i, len(ok)-1))]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "n=%d p50 %v p99 %v max %v", len(ok), at(0.50).Round(time.Millisecond), at(0.99).Round(time.Millisecond), ok[len(ok)-1].Round(time.Millisecond))
	if none > 0 {
		fmt.Fprintf(&b, " (%d never)", none)
	}
	return b.String()
}

// around describes the receipts near the first receipt of a seq above
// seq, for a diagnosis.
func (r *record) around(seq int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for i, m := range r.received {
		if m.seq < seq-3 || m.seq > seq+40 {
			continue
		}
		fmt.Fprintf(&b, "#%d:%d", i, m.seq)
		if m.dup {
			b.WriteString("d")
		}
		fmt.Fprintf(&b, "@%s ", m.at.Format("05.000"))
	}
	return b.String()
}
