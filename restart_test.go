package mqtt_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
)

// restartMode is how TestMosquittoBrokerRestart takes the broker down.
type restartMode int

const (
	// restartStop stops the broker with SIGTERM while messages flow. With
	// persistence on, mosquitto saves every session, with its queued and
	// in-flight messages, as it exits, so the clients resume their sessions
	// and no message may be lost or, at QoS 2, duplicated.
	restartStop restartMode = iota
	// restartKill kills the broker with SIGKILL. Mosquitto only has what
	// its last autosave (every second) wrote, so the kill comes once the
	// traffic has settled and been saved; the sessions then survive, and
	// the publishes made while the broker is down go out after it is back.
	// (Killed in mid-traffic, the broker comes back with state up to a
	// second old: messages it acknowledged since are gone, and a stale
	// incoming QoS 2 packet ID makes it discard a new message that reuses
	// the ID. Nothing a client can do about either.)
	restartKill
	// restartKillLost kills a broker without persistence while messages
	// flow: it comes back with no sessions at all. One client publishes and
	// subscribes, so that its resubscription precedes its re-sent and
	// queued publishes on the new connection. Messages published before the
	// kill may be lost (the dead broker had acknowledged them) or, at QoS 2,
	// duplicated (it had forwarded them, but its PUBREC was lost with it):
	// they are counted, not failed. Every message published after the kill
	// must arrive, and once at QoS 2.
	restartKillLost
)

func (m restartMode) String() string {
	return [...]string{"stop", "kill", "kill-lost"}[m]
}

// TestMosquittoBrokerRestart takes mosquitto down and brings it back on the
// same port while a publisher and a subscriber with persistent sessions
// exchange QoS 1 and QoS 2 messages: both clients notice
// the loss, reconnect, resume their sessions or resubscribe, the publishes
// made while the broker is down wait in the offline queue and complete once
// it is back, and every message whose publish succeeded arrives, QoS 2
// messages once.
func TestMosquittoBrokerRestart(t *testing.T) {
	t.Parallel()
	for _, ver := range versions {
		for _, mode := range []restartMode{restartStop, restartKill, restartKillLost} {
			t.Run(ver.name+"/"+mode.String(), func(t *testing.T) {
				t.Parallel()
				runBrokerRestart(t, ver.v, mode)
			})
		}
	}
}

func runBrokerRestart(t *testing.T, v mqtt.ProtocolVersion, mode restartMode) {
	opts := brokertest.Options{Persistence: mode != restartKillLost}
	if mode == restartKill {
		opts.Extra = append(opts.Extra, "autosave_interval 1", "autosave_on_changes false")
	}
	// Mosquitto 2.0.11 needs an in-flight limit (max_inflight_messages,
	// default 20) above what the clients keep in flight:
	//   - It refuses a QoS 1 PUBLISH beyond the limit (which counts QoS 2
	//     messages awaiting PUBREL) with reason 0x97 "quota exceeded" and
	//     discards the message. 3.1.1 can neither announce the limit nor
	//     carry a reason code in PUBACK: the publisher sees a plain PUBACK
	//     and the message is gone. (Over 5.0 the limit is announced as
	//     Receive Maximum, which the client honours.)
	//   - After a restart it restores at most that many in-flight
	//     messages per client with their state and sends the others again
	//     as new PUBLISHes: a QoS 2 message past PUBREL whose PUBCOMP it
	//     had not read when it stopped arrives a second time. The
	//     subscriber's Receive Maximum (256) keeps it below 1000.
	opts.Extra = append(opts.Extra, "max_inflight_messages 1000")
	b := brokertest.Start(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	id := uniqueID(t)
	topic := id + "/restart"
	persistent := func(clientID string) mqtt.Config {
		return mqtt.Config{
			Servers: []string{b.URL()}, ClientID: clientID, Version: v, KeepAlive: 5 * time.Second,
			CleanStart: false, SessionExpiry: time.Hour,
			Reconnect: mqtt.ReconnectConfig{MinDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond},
		}
	}

	sub := connect(t, persistent(id+"-sub"))
	subEvents := watchEvents(t, sub)
	s, err := sub.Subscribe(ctx, topic, mqtt.ExactlyOnce)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	pub, pubEvents := sub, subEvents
	if mode != restartKillLost {
		pub = connect(t, persistent(id+"-pub"))
		pubEvents = watchEvents(t, pub)
	}
	clients := []struct {
		name   string
		c      *mqtt.Client
		events *eventLog
	}{{"subscriber", sub, subEvents}, {"publisher", pub, pubEvents}}
	if pub == sub {
		clients = clients[:1]
		clients[0].name = "client"
	}

	rx := newRestartReceiver(s, sub)
	defer rx.stop()
	pb := &restartPublisher{c: pub, topic: topic}

	const (
		total  = 1200 // messages in the streaming modes, half of them QoS 2
		window = 64   // publishes in flight at most
	)
	var streamErr chan error
	if mode == restartKill {
		// Settle and let the broker save the settled state twice over.
		if err := pb.publish(ctx, 300, window); err != nil {
			t.Fatalf("publishing before the kill: %v", err)
		}
		waitUntil(ctx, t, "all messages published before the kill to arrive", func() bool { return rx.count() == 300 }, func() string { return rx.missing(pb.all()) })
		// Wait for an autosave that started after the traffic settled.
		settled := time.Now()
		db := filepath.Join(b.Dir(), "data", "mosquitto.db")
		waitUntil(ctx, t, "the broker to save the settled state", func() bool {
			fi, err := os.Stat(db)
			return err == nil && fi.ModTime().After(settled.Add(1100*time.Millisecond))
		})
	} else {
		streamErr = make(chan error, 1)
		go func() { streamErr <- pb.publish(ctx, total, window) }()
		waitUntil(ctx, t, "a quarter of the messages to arrive", func() bool { return rx.count() >= total/4 })
	}

	// Down.
	marks := make([]int, len(clients))
	for i, c := range clients {
		marks[i] = c.events.len()
	}
	downAt := time.Now()
	if mode == restartStop {
		b.Stop(t)
	} else {
		b.Kill(t)
	}
	pb.epoch.Store(1)
	for i, c := range clients {
		e := c.events.waitFor(ctx, t, marks[i], mqtt.EventConnectionLost)
		t.Logf("%s: connection lost after %v: %v", c.name, e.Time.Sub(downAt).Round(time.Millisecond), e.Err)
	}
	// Publishes made now wait in the offline queue; in the streaming modes
	// the publisher's window is full of messages in flight, so add some.
	pb.start(100)
	<-time.After(300 * time.Millisecond) // a window in which none of them may complete
	offline := pb.since(1)
	for _, m := range offline {
		select {
		case <-m.p.Done():
			t.Fatalf("message %d, published while the broker was down, completed before it was back: %v", m.seq, m.p.Err())
		default:
		}
	}

	// Up.
	pb.epoch.Store(2)
	for i, c := range clients {
		marks[i] = c.events.len()
	}
	b.Restart(t)
	t.Logf("broker down for %v; %d publishes made meanwhile", time.Since(downAt).Round(time.Millisecond), len(offline))
	sessionsKept := true
	for i, c := range clients {
		e := c.events.waitFor(ctx, t, marks[i], mqtt.EventConnected)
		t.Logf("%s: reconnected, session present %t", c.name, e.SessionPresent)
		sessionsKept = sessionsKept && e.SessionPresent
		if want := mode != restartKillLost; e.SessionPresent != want {
			if want {
				t.Errorf("%s: the broker did not resume the session it saved (session present false)", c.name)
			} else {
				t.Errorf("%s: session present after a restart without persistence", c.name)
			}
		}
	}
	if sessionsKept {
		for i, c := range clients {
			if c.events.has(marks[i], mqtt.EventResubscribed) {
				t.Errorf("%s: resubscribed although the broker resumed the session", c.name)
			}
		}
	} else {
		e := subEvents.waitFor(ctx, t, marks[0], mqtt.EventResubscribed)
		if e.Err != nil {
			t.Errorf("resubscription refused: %v", e.Err)
		}
		t.Log("the broker lost the sessions (session present false): the subscriber resubscribed; messages published before the restart may be lost or duplicated")
	}

	// Traffic continues.
	if mode == restartKill {
		if err := pb.publish(ctx, 300, window); err != nil {
			t.Fatalf("publishing after the restart: %v", err)
		}
	} else if err := <-streamErr; err != nil {
		t.Fatalf("publisher: %v", err)
	}
	for _, m := range offline {
		if err := m.p.Wait(ctx); err != nil {
			t.Errorf("message %d, published while the broker was down: %v", m.seq, err)
		}
	}

	// Every message that must arrive does; then give duplicates a moment.
	msgs := pb.all()
	mustArrive := func(m *restartMsg) bool { return m.p.Err() == nil && (sessionsKept || m.epoch > 0) }
	waitUntil(ctx, t, "every message to arrive", func() bool {
		for _, m := range msgs {
			if mustArrive(m) && rx.times(m.seq) == 0 {
				return false
			}
		}
		return true
	}, func() string { return rx.missing(msgs) })
	<-time.After(500 * time.Millisecond) // a window for late duplicates to show
	rx.stop()

	var q1Dups, lost, lostDups int
	for _, m := range msgs {
		if err := m.p.Err(); err != nil {
			t.Errorf("message %d (%v) failed: %v", m.seq, m.qos, err)
			continue
		}
		n := rx.times(m.seq)
		switch {
		case n == 0:
			lost++ // unreachable when mustArrive
		case n > 1 && m.qos == mqtt.AtLeastOnce:
			q1Dups += n - 1
		case n > 1 && mustArrive(m):
			t.Errorf("QoS 2 message %d (published %s) arrived %d times", m.seq, [...]string{"before the broker went down", "while it was down", "after it was back"}[m.epoch], n)
		case n > 1:
			lostDups++
		}
	}
	if lost > 0 || lostDups > 0 {
		t.Logf("the broker lost its state (session present false): of the messages published before it went down, %d were lost and %d QoS 2 messages arrived twice", lost, lostDups)
	}
	if rx.foreign.Load() > 0 || rx.wrongQoS.Load() > 0 || rx.unrouted.Load() > 0 {
		t.Errorf("%d messages with an unknown payload, %d with the wrong QoS, %d outside the subscription's channel",
			rx.foreign.Load(), rx.wrongQoS.Load(), rx.unrouted.Load())
	}
	t.Logf("%d messages (%d published while the broker was down), %d QoS 1 duplicates", len(msgs), len(offline), q1Dups)

	if pub != sub {
		if err := pub.Disconnect(ctx); err != nil {
			t.Errorf("publisher Disconnect: %v", err)
		}
	}
	if err := sub.Disconnect(ctx); err != nil {
		t.Errorf("subscriber Disconnect: %v", err)
	}
}

// waitUntil polls cond until it holds, failing the test when ctx ends.
func waitUntil(ctx context.Context, t *testing.T, what string, cond func() bool, explain ...func() string) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			var why string
			for _, f := range explain {
				why += ": " + f()
			}
			t.Fatalf("timed out waiting for %s%s", what, why)
		}
	}
}

// restartMsg is one message published by a restartPublisher.
type restartMsg struct {
	seq   uint64
	qos   mqtt.QoS
	epoch int32 // 0: published before the broker went down, 1: while it was down, 2: after it was back
	p     *mqtt.Pending
}

// restartPublisher publishes numbered messages, alternating QoS 1 and 2.
type restartPublisher struct {
	c     *mqtt.Client
	topic string
	epoch atomic.Int32

	mu   sync.Mutex
	msgs []*restartMsg // guarded by mu; index = seq
}

func restartQoS(seq uint64) mqtt.QoS { return mqtt.QoS(1 + seq%2) }

// start starts n publishes and returns them.
func (pb *restartPublisher) start(n int) []*restartMsg {
	ms := make([]*restartMsg, n)
	for i := range ms {
		ms[i] = pb.next()
	}
	return ms
}

func (pb *restartPublisher) next() *restartMsg {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	seq := uint64(len(pb.msgs))
	m := &restartMsg{seq: seq, qos: restartQoS(seq), epoch: pb.epoch.Load()}
	// The client keeps the payload until the publish completes.
	m.p = pb.c.PublishAsync(mqtt.Message{Topic: pb.topic, Payload: binary.BigEndian.AppendUint64(nil, seq), QoS: m.qos})
	pb.msgs = append(pb.msgs, m)
	return m
}

// publish publishes n messages with at most window of them in flight and
// waits for all to complete. It returns an error only if ctx ends.
func (pb *restartPublisher) publish(ctx context.Context, n, window int) error {
	inFlight := make([]*restartMsg, 0, window)
	for range n {
		if len(inFlight) == window {
			if inFlight[0].p.Wait(ctx); ctx.Err() != nil {
				return ctx.Err()
			}
			inFlight = inFlight[1:]
		}
		inFlight = append(inFlight, pb.next())
	}
	for _, m := range inFlight {
		if m.p.Wait(ctx); ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// since returns the messages published in epoch e or later.
func (pb *restartPublisher) since(e int32) []*restartMsg {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	var ms []*restartMsg
	for _, m := range pb.msgs {
		if m.epoch >= e {
			ms = append(ms, m)
		}
	}
	return ms
}

func (pb *restartPublisher) all() []*restartMsg { return pb.since(0) }

// restartReceiver counts the deliveries of each message number.
type restartReceiver struct {
	quit     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	mu   sync.Mutex
	seen map[uint64]int // guarded by mu

	foreign, wrongQoS, unrouted atomic.Int64
}

func newRestartReceiver(s *mqtt.Subscription, c *mqtt.Client) *restartReceiver {
	r := &restartReceiver{quit: make(chan struct{}), done: make(chan struct{}), seen: make(map[uint64]int)}
	go func() {
		defer close(r.done)
		subCh, defCh := s.Messages(), c.Messages()
		for subCh != nil || defCh != nil {
			select {
			case m, ok := <-subCh:
				if !ok {
					subCh = nil
					continue
				}
				r.add(m)
			case m, ok := <-defCh:
				if !ok {
					defCh = nil
					continue
				}
				r.unrouted.Add(1)
				r.add(m)
			case <-r.quit:
				return
			}
		}
	}()
	return r
}

func (r *restartReceiver) add(m mqtt.Message) {
	if len(m.Payload) != 8 {
		r.foreign.Add(1)
		return
	}
	seq := binary.BigEndian.Uint64(m.Payload)
	if m.QoS != restartQoS(seq) {
		r.wrongQoS.Add(1)
	}
	r.mu.Lock()
	r.seen[seq]++
	r.mu.Unlock()
}

func (r *restartReceiver) stop() {
	r.stopOnce.Do(func() { close(r.quit) })
	<-r.done
}

// count returns how many distinct messages arrived.
func (r *restartReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// missing describes the messages of ms that have not arrived.
func (r *restartReceiver) missing(ms []*restartMsg) string {
	var lost []string
	for _, m := range ms {
		if r.times(m.seq) == 0 {
			lost = append(lost, fmt.Sprintf("%d (%v, epoch %d, done %t, err %v)", m.seq, m.qos, m.epoch, isDone(m.p), m.p.Err()))
		}
	}
	if len(lost) > 20 {
		lost = append(lost[:20], "...")
	}
	return fmt.Sprintf("%d missing: %v", len(lost), lost)
}

func isDone(p *mqtt.Pending) bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

func (r *restartReceiver) times(seq uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[seq]
}

// eventLog records a client's Events.
type eventLog struct {
	mu      sync.Mutex
	events  []mqtt.Event  // guarded by mu
	changed chan struct{} // signalled after each append
	done    chan struct{}
}

// watchEvents records c's events until c stops.
func watchEvents(t *testing.T, c *mqtt.Client) *eventLog {
	l := &eventLog{changed: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		// The channel is closed once the client has stopped.
		for e := range c.Events() {
			l.add(e)
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-l.done
		if n := c.Stats().EventsDropped; n > 0 {
			t.Errorf("%d events dropped", n)
		}
	})
	return l
}

func (l *eventLog) add(e mqtt.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *eventLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

// find returns the first event of kind k at index from or later.
func (l *eventLog) find(from int, k mqtt.EventKind) (mqtt.Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events[min(from, len(l.events)):] {
		if e.Kind == k {
			return e, true
		}
	}
	return mqtt.Event{}, false
}

func (l *eventLog) has(from int, k mqtt.EventKind) bool {
	_, ok := l.find(from, k)
	return ok
}

// waitFor waits for an event of kind k at index from or later.
func (l *eventLog) waitFor(ctx context.Context, t *testing.T, from int, k mqtt.EventKind) mqtt.Event {
	t.Helper()
	for {
		if e, ok := l.find(from, k); ok {
			return e
		}
		select {
		case <-l.changed:
		case <-ctx.Done():
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("no %v event: %v (events so far: %s)", k, ctx.Err(), describeEvents(l.events))
		}
	}
}

func describeEvents(es []mqtt.Event) string {
	var errs []error
	s := ""
	for _, e := range es {
		s += e.Kind.String() + "; "
		if e.Err != nil {
			errs = append(errs, e.Err)
		}
	}
	return fmt.Sprintf("%s errors: %v", s, errors.Join(errs...))
}
