package mqtt

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/b4e21b16/mqtt/packet"
)

// ReconnectConfig configures automatic reconnection. The zero value
// reconnects forever with exponential backoff from 100 ms up to 30 s.
type ReconnectConfig struct {
	// Disable turns automatic reconnection off: a lost connection then
	// stops the client (Done closes, Err wraps ErrConnectionLost).
	Disable bool
	// MinDelay is the wait before the first attempt (default 100 ms). Each
	// failed attempt doubles it, up to MaxDelay (default 30 s); with
	// several Servers it doubles once per round over them, so that a dead
	// node does not hold up the attempt on the next one. Every wait is
	// randomised by ±25 % so that many clients do not retry in step, and
	// is counted from the start of the failed attempt before it: an
	// attempt that took longer than the wait (a cluster node holding the
	// CONNECT while it elects leaders) is followed by the next at once.
	MinDelay time.Duration
	MaxDelay time.Duration
	// MaxAttempts gives up after this many failed attempts in a row
	// (0: never give up). Giving up stops the client.
	MaxAttempts int
	// HealthyAfter is how long a connection must last for the backoff to
	// start again from MinDelay when it ends (default 10 s); a connection
	// over which the broker answered the client (any packet after CONNACK)
	// needs only a tenth of it. A connection that ends sooner (a broker
	// that accepts and then closes at once, two clients taking a Client ID
	// from each other) continues the backoff where the previous one left
	// it, so that such a broker is not stormed. After a healthy connection
	// the first attempt goes to the next server at once when Servers
	// lists several (a cluster node died: fail over without waiting), and
	// after MinDelay when it lists one.
	HealthyAfter time.Duration
	// RejectAfter fails a QoS 1 or 2 publish with ErrPublishRejected once it
	// was the oldest in flight on this many connections in a row that ended
	// before the broker sent anything at all (0, the default: never). Some
	// brokers answer a QoS or a size they do not support by closing the
	// connection, and would otherwise get the message again after every
	// reconnect; but on a network that drops connections early, such a
	// streak can also happen to a good message, so this is opt-in. Either
	// way the backoff grows across such connections.
	RejectAfter int
}

// QueueFullPolicy says what a publish does when the offline queue is full.
type QueueFullPolicy byte

const (
	// QueueWait makes the publishing call wait (honouring its context)
	// until the queue has room. The default.
	QueueWait QueueFullPolicy = iota
	// QueueFail fails the publish at once with an error matching
	// ErrQueueFull.
	QueueFail
)

// QueueConfig bounds the publishes that wait to be sent: those made while
// the client is reconnecting, and those waiting for the broker's flow
// control. They are sent in order once possible; none is dropped silently.
// Config.MemoryLimit bounds them in bytes, together with the publishes in
// flight.
type QueueConfig struct {
	// MaxMessages bounds the number of waiting publishes (default 10,000).
	MaxMessages int
	// MaxBytes further bounds their payload bytes (default: no bound
	// beyond Config.MemoryLimit).
	MaxBytes int
	// Full chooses what happens when a bound, or MemoryLimit, is reached.
	Full QueueFullPolicy
}

const (
	defaultMinDelay     = 100 * time.Millisecond
	defaultMaxDelay     = 30 * time.Second
	defaultHealthyAfter = 10 * time.Second
	defaultQueueMsgs    = 10000
)

func (r *ReconnectConfig) withDefaults() {
	if r.MinDelay <= 0 {
		r.MinDelay = defaultMinDelay
	}
	if r.MaxDelay <= 0 {
		r.MaxDelay = defaultMaxDelay
	}
	if r.HealthyAfter <= 0 {
		r.HealthyAfter = defaultHealthyAfter
	}
	r.MaxDelay = max(r.MaxDelay, r.MinDelay)
}

func (q *QueueConfig) withDefaults() {
	if q.MaxMessages <= 0 {
		q.MaxMessages = defaultQueueMsgs
	}
	if q.MaxBytes <= 0 {
		q.MaxBytes = int(^uint(0) >> 1)
	}
}

// backoff returns the wait before attempt n (1-based) of a series of
// failures over the given number of servers: exponential from MinDelay,
// doubling once per round over the servers, capped at MaxDelay, with ±25 %
// jitter.
func (r *ReconnectConfig) backoff(n, servers int) time.Duration {
	n = (n-1)/max(servers, 1) + 1
	d := r.MinDelay
	for i := 1; i < n && d < r.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, r.MaxDelay)
	jitter := time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
	return max(d+jitter, time.Millisecond)
}

// EventKind says what an Event reports.
type EventKind byte

// Connection state changes.
const (
	// EventConnected: a connection was established (first or again);
	// SessionPresent tells whether the broker resumed the session.
	EventConnected EventKind = iota + 1
	// EventConnectionLost: the connection ended; Err says why.
	EventConnectionLost
	// EventReconnecting: an attempt is about to be made after Delay.
	EventReconnecting
	// EventResubscribed: the broker had lost the session, and the client
	// subscribed again to every live subscription; Err reports filters the
	// broker refused this time. It follows the EventConnected of that
	// connection once the broker has answered every SUBSCRIBE: messages
	// published by others before then may not reach the subscriptions.
	EventResubscribed
	// EventGaveUp: reconnection stopped (MaxAttempts reached); the client
	// has stopped and Err says why.
	EventGaveUp
	// EventOverflow: the application did not keep up and the messages held
	// for it reached Config.MemoryLimit while a call waited for the broker,
	// so a received QoS 1 or 2 message was left unacknowledged (Err wraps
	// ErrOverflow). Once the application has caught up, the client
	// reconnects so that the broker sends such messages again.
	EventOverflow
)

var eventNames = [...]string{"", "connected", "connection lost", "reconnecting", "resubscribed", "gave up", "overflow"}

// String names the kind.
func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", byte(k))
}

// Event is a connection state change, delivered on Client.Events.
type Event struct {
	Kind           EventKind
	Time           time.Time
	Server         string        // the server concerned, if any
	SessionPresent bool          // EventConnected
	Attempt        int           // EventReconnecting, EventGaveUp: attempts so far
	Delay          time.Duration // EventReconnecting: wait before the attempt
	Err            error         // EventConnectionLost, EventResubscribed, EventGaveUp
}

// eventBuffer is the capacity of the Events channel.
const eventBuffer = 8

// emit publishes e on the events channel without ever blocking; when the
// application does not keep up, the event is counted in
// Stats().EventsDropped.
func (c *Client) emit(e Event) {
	e.Time = time.Now()
	select {
	case c.events <- e:
	default:
		c.counters.eventsDropped.Add(1)
	}
}

// Events returns the channel of connection state changes. It is buffered;
// events that find it full are dropped and counted in Stats().EventsDropped,
// so a client never waits for the application to read them. It is closed
// once the client has stopped, after the last event.
func (c *Client) Events() <-chan Event { return c.events }

// dialResult is what the reconnecting goroutine reports to the session.
type dialResult struct {
	conn     *connection
	err      error // set when the client gave up
	attempts int
}

// redialPlan is how the client reconnects after a connection ended.
type redialPlan struct {
	step  int           // backoff steps taken already: attempt n waits backoff(step+n)
	wait  time.Duration // the first attempt's wait instead of the backoff, when >= 0
	first *server       // where the first attempt goes (a redirection), if not the rotation
	next  int           // index in Config.Servers where the rotation starts
}

// planRedial decides how to reconnect after conn ended with cause. The
// backoff starts again only after a healthy connection: one that lasted
// Reconnect.HealthyAfter, or a tenth of it with the broker answering;
// the first attempt after it is then immediate when there is another
// server to go to. A server DISCONNECT is acted on by its reason code (see
// the README's reconnection policy):
//
//   - Session taken over (0x8E): another client connected with the same
//     Client ID; reconnecting at once would take the session back and start
//     a tug of war, so the first attempt waits MaxDelay.
//   - Server busy (0x89), Message rate too high (0x96), Quota exceeded
//     (0x97), Connection rate exceeded (0x9F): the connection counts as
//     unhealthy whatever its age, so the backoff keeps growing.
//   - Use another server (0x9C), Server moved (0x9D): with FollowRedirects
//     and a Server Reference, the first attempt goes there at once;
//     otherwise as unhealthy.
//
// The rotation over Config.Servers starts after the server that failed.
func (s *session) planRedial(conn *connection, cause error) redialPlan {
	rc := &s.cfg.Reconnect
	plan := redialPlan{wait: -1, next: s.c.serverIndex(conn.server) + 1}
	lived := time.Since(conn.started)
	healthy := lived >= rc.HealthyAfter || (lived >= rc.HealthyAfter/10 && conn.r.packetsIn.Load() > 0)
	if re, ok := errors.AsType[*ReasonError](cause); ok && re.Packet == "DISCONNECT" {
		switch re.Code {
		case packet.SessionTakenOver:
			healthy = false
			plan.wait = rc.MaxDelay
			s.log.Warn("mqtt: another client took over the session; waiting before reconnecting",
				"server", conn.server.url, "delay", rc.MaxDelay)
		case packet.ServerBusy, packet.MessageRateTooHigh, packet.QuotaExceeded, packet.ConnectionRateExceeded:
			healthy = false
		case packet.UseAnotherServer, packet.ServerMoved:
			if s.redirectTo != nil {
				plan.first, plan.wait = s.redirectTo, 0
			} else {
				healthy = false
			}
		}
	}
	s.redirectTo = nil
	switch {
	case errors.Is(cause, errCaughtUp):
		// Replaced on purpose (see checkCaughtUp): back at once, same server.
		plan.wait, plan.first = 0, &conn.server
	case healthy:
		s.failures = 0
		if plan.wait < 0 && len(s.c.servers) > 1 {
			plan.wait = 0 // fail over to the next server at once
		}
	default:
		s.failures++
	}
	plan.step = s.failures
	return plan
}

// serverIndex returns the position of srv in Config.Servers, or -1 for a
// server the client was redirected to.
func (c *Client) serverIndex(srv server) int {
	for i, x := range c.servers {
		if x.url == srv.url {
			return i
		}
	}
	return -1
}

// redial tries to connect until it succeeds, ctx ends or the attempt limit
// is reached, waiting with backoff between attempts and rotating over the
// servers as plan says. It runs on its own goroutine so that the session
// keeps serving calls (which queue) while the network is down.
func (c *Client) redial(ctx context.Context, out chan<- dialResult, plan redialPlan) {
	rc := &c.cfg.Reconnect
	var last error
	var tried time.Time // when the last failed attempt started
	redirect := plan.first
	for attempt := 1; ; attempt++ {
		delay := rc.backoff(plan.step+attempt, len(c.servers))
		switch {
		case attempt == 1 && plan.wait >= 0:
			delay = plan.wait
		case attempt > 1:
			// The backoff paces the starts of attempts: time the failed
			// one took counts towards the wait.
			delay = max(delay-time.Since(tried), 0)
		}
		c.counters.attempts.Add(1)
		c.emit(Event{Kind: EventReconnecting, Attempt: attempt, Delay: delay})
		c.log.Info("mqtt: reconnecting", "attempt", attempt, "delay", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			out <- dialResult{err: ErrClosed}
			return
		}
		srv := c.servers[(plan.next+attempt-1)%len(c.servers)]
		if redirect != nil {
			srv, redirect = *redirect, nil
		}
		tried = time.Now()
		conn, err := c.dial(ctx, srv)
		if err == nil {
			out <- dialResult{conn: conn, attempts: attempt}
			return
		}
		if ctx.Err() != nil {
			out <- dialResult{err: ErrClosed}
			return
		}
		last = err
		c.log.Info("mqtt: reconnect attempt failed", "server", srv.url, "attempt", attempt, "err", err)
		if rc.MaxAttempts > 0 && attempt >= rc.MaxAttempts {
			out <- dialResult{attempts: attempt, err: errorf("mqtt: %w: gave up after %d reconnect attempts: %w", ErrConnectionLost, attempt, last)}
			return
		}
	}
}
