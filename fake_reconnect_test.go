package mqtt_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// fakeRcRetry is the reconnection the tests of this file configure: the first
// attempt after 1 s, doubling up to 4 s, each wait randomised by ±25 %.
var fakeRcRetry = mqtt.ReconnectConfig{MinDelay: time.Second, MaxDelay: 4 * time.Second}

// fakeRcClient connects a client configured by cfg (with fakeRcRetry
// unless cfg.Reconnect is set) to a new in-memory fake broker that answers
// the CONNECT with ack. It checks the first EventConnected and returns the
// client, the broker (from which the client's later connections are
// accepted) and the broker side of the connection, with a reader running.
func fakeRcClient(t *testing.T, cfg mqtt.Config, ack *packet.Connack) (*mqtt.Client, *fakebroker.Broker, *fakeConn) {
	t.Helper()
	if cfg.Reconnect == (mqtt.ReconnectConfig{}) {
		cfg.Reconnect = fakeRcRetry
	}
	b := fakebroker.New(t)
	res := fakeStartConnect(t, context.Background(), b, cfg)
	bc := fakeAccept(t, b, fakeTimeout)
	bc.ExpectConnect(t)
	bc.Send(t, ack)
	c, err := fakeConnectDone(t, res, fakeTimeout)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if e := fakeRcExpectEvent(t, c, mqtt.EventConnected); e.SessionPresent != ack.SessionPresent {
		t.Fatalf("first EventConnected has SessionPresent %v, want %v", e.SessionPresent, ack.SessionPresent)
	}
	return c, b, fakeWatch(t, bc, fakeTimeout)
}

// fakeRcAccept accepts the client's next connection to b, answers its
// CONNECT with ack and returns the broker side, with a reader running, and
// the CONNECT.
func fakeRcAccept(t *testing.T, b *fakebroker.Broker, ack *packet.Connack) (*fakeConn, *packet.Connect) {
	t.Helper()
	bc := fakeAccept(t, b, fakeTimeout)
	cp := bc.ExpectConnect(t)
	bc.Send(t, ack)
	return fakeWatch(t, bc, fakeTimeout), cp
}

// fakeRcHealthy is how long a connection must last for its loss to start
// the backoff afresh (ReconnectConfig.HealthyAfter's default).
const fakeRcHealthy = 10 * time.Second

// fakeRcDrop makes the broker hang up on fc, after fakeRcHealthy of fake time
// so that the connection counts as healthy, and waits for the client to
// report the lost connection and its first reconnection attempt, which it
// returns.
func fakeRcDrop(t *testing.T, c *mqtt.Client, fc *fakeConn) mqtt.Event {
	t.Helper()
	fakeAdvance(fakeRcHealthy)
	fc.bc.Close()
	if e := fakeRcExpectEvent(t, c, mqtt.EventConnectionLost); e.Err == nil {
		t.Errorf("EventConnectionLost without Err")
	}
	return fakeRcExpectEvent(t, c, mqtt.EventReconnecting)
}

// fakeRcEvent returns the client's next event.
func fakeRcEvent(t *testing.T, c *mqtt.Client) mqtt.Event {
	t.Helper()
	select {
	case e := <-c.Events():
		return e
	case <-time.After(fakeTimeout):
		t.Fatalf("no event within %v", fakeTimeout)
		return mqtt.Event{}
	}
}

// fakeRcExpectEvent returns the client's next event, which must be of kind k.
func fakeRcExpectEvent(t *testing.T, c *mqtt.Client, k mqtt.EventKind) mqtt.Event {
	t.Helper()
	e := fakeRcEvent(t, c)
	if e.Kind != k {
		t.Fatalf("event %v (%+v), want %v", e.Kind, e, k)
	}
	return e
}

// fakeRcNoEvent checks, inside a bubble, that the client has no event to
// report once every goroutine has settled.
func fakeRcNoEvent(t *testing.T, c *mqtt.Client) {
	t.Helper()
	synctest.Wait()
	select {
	case e, ok := <-c.Events():
		if ok { // closed: the client stopped, and no event follows
			t.Fatalf("unexpected event %v (%+v)", e.Kind, e)
		}
	default:
	}
}

// fakeRcRunning checks that the client has not stopped.
func fakeRcRunning(t *testing.T, c *mqtt.Client) {
	t.Helper()
	synctest.Wait()
	select {
	case <-c.Done():
		t.Fatalf("client stopped: %v", c.Err())
	default:
	}
	if err := c.Err(); err != nil {
		t.Fatalf("Err = %v while the client runs", err)
	}
}

// fakeRcDone reports, inside a bubble, whether p has completed once
// every goroutine has settled.
func fakeRcDone(p *mqtt.Pending) bool {
	synctest.Wait()
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

// fakeRcWithin checks that d lies within ±25 % of nominal.
func fakeRcWithin(d, nominal time.Duration) bool {
	return d >= nominal-nominal/4 && d <= nominal+nominal/4
}

// fakeRcResent returns the PUBLISH p as the client must send it again.
func fakeRcResent(p *packet.Publish, dup bool) *packet.Publish {
	q := *p
	q.Dup = dup
	return &q
}

// fakeRcSubscribe subscribes to filters; the broker answers the SUBSCRIBE
// with codes, or grants each filter its QoS when codes is nil. It returns
// the subscription, the SUBSCRIBE and the error of SubscribeFilters.
func fakeRcSubscribe(t *testing.T, c *mqtt.Client, fc *fakeConn, codes []packet.ReasonCode, filters ...mqtt.Filter) (*mqtt.Subscription, *packet.Subscribe, error) {
	t.Helper()
	var sub *mqtt.Subscription
	call := fakeAsync(t, func() error {
		var err error
		sub, err = c.SubscribeFilters(context.Background(), filters...)
		return err
	})
	sp := fc.expectSubscribe()
	if codes == nil {
		for _, s := range sp.Subscriptions {
			codes = append(codes, packet.ReasonCode(s.QoS))
		}
	}
	fc.send(&packet.Suback{PacketID: sp.PacketID, ReasonCodes: codes})
	err := call.wait()
	return sub, sp, err
}

// fakeRcDrain returns, inside a bubble, the packets the client has sent
// and the test not yet read, once every goroutine has settled.
func fakeRcDrain(fc *fakeConn) []packet.Packet {
	synctest.Wait()
	var got []packet.Packet
	for {
		select {
		case p := <-fc.pkts:
			got = append(got, p)
		default:
			return got
		}
	}
}

// fakeRcAck sends the acknowledgement of type typ for packet identifier id.
func (fc *fakeConn) fakeRcAck(typ packet.Type, id uint16) {
	fc.t.Helper()
	fc.send(&packet.Ack{PacketType: typ, PacketID: id})
}

// TestFakeEventsReconnect checks the events of a reconnection: after the
// broker hangs up on a healthy connection, EventConnectionLost with the
// cause, then
// EventReconnecting for attempt 1 with a delay of MinDelay ±25 %, then, once
// the new connection is established after exactly that delay,
// EventConnected with the session-present flag of the new CONNACK. The new
// CONNECT carries the same client identifier and Clean Start 0, so that the
// broker may resume the session (3.1.1 [MQTT-3.1.2-4], 5.0 [MQTT-3.1.2-5]).
// The client keeps running throughout.
func TestFakeEventsReconnect(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "ev", Version: v, KeepAlive: -1, SessionExpiry: time.Hour}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		if c.SessionPresent() {
			t.Fatal("SessionPresent = true after a CONNACK with session present 0")
		}
		fakeAdvance(fakeRcHealthy)
		fc.bc.Close()
		lost := fakeRcExpectEvent(t, c, mqtt.EventConnectionLost)
		if lost.Err == nil || lost.Server != b.URL() {
			t.Errorf("EventConnectionLost = %+v, want Err set and Server %q", lost, b.URL())
		}
		rec := fakeRcExpectEvent(t, c, mqtt.EventReconnecting)
		if rec.Attempt != 1 || !fakeRcWithin(rec.Delay, time.Second) {
			t.Errorf("EventReconnecting = attempt %d after %v, want attempt 1 after 1s ±25%%", rec.Attempt, rec.Delay)
		}
		fakeRcRunning(t, c)

		fc2, cp := fakeRcAccept(t, b, &packet.Connack{SessionPresent: true})
		if waited := time.Since(rec.Time); waited != rec.Delay {
			t.Errorf("the client dialed %v after EventReconnecting, want its Delay %v", waited, rec.Delay)
		}
		if cp.ClientID != "ev" || cp.CleanStart {
			t.Errorf("CONNECT on reconnect: client %q clean %v, want \"ev\" and clean false", cp.ClientID, cp.CleanStart)
		}
		con := fakeRcExpectEvent(t, c, mqtt.EventConnected)
		if !con.SessionPresent || con.Server != b.URL() {
			t.Errorf("EventConnected = %+v, want SessionPresent and Server %q", con, b.URL())
		}
		if !c.SessionPresent() {
			t.Error("SessionPresent = false after a CONNACK with session present 1")
		}
		fakeRcRunning(t, c)
		fakeRcNoEvent(t, c)

		// The new connection is the client's.
		pub := c.PublishAsync(mqtt.Message{Topic: "after", QoS: mqtt.AtLeastOnce})
		fc2.fakeRcAck(packet.PUBACK, fc2.expectPublish().PacketID)
		if err := pub.Wait(context.Background()); err != nil {
			t.Fatalf("publish after reconnect: %v", err)
		}
		if c.Stats().EventsDropped != 0 {
			t.Errorf("EventsDropped = %d", c.Stats().EventsDropped)
		}
		st := c.Stats()
		if st.ConnectionLosses != 1 || st.ReconnectAttempts != 1 || st.Connects != 2 {
			t.Errorf("Stats: %d connection losses, %d reconnect attempts, %d connects; want 1, 1, 2",
				st.ConnectionLosses, st.ReconnectAttempts, st.Connects)
		}
	})
}

// TestFakeEventsServerDisconnect checks that an MQTT 5.0 DISCONNECT from the
// broker is the cause EventConnectionLost reports, as a *ReasonError with
// the reason code and string, and that the client then reconnects.
func TestFakeEventsServerDisconnect(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "ev", Version: mqtt.Version5, KeepAlive: -1}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		d := &packet.Disconnect{ReasonCode: packet.ServerShuttingDown}
		d.Props.ReasonString = "maintenance"
		d.Props.Set(packet.PropReasonString)
		fc.send(d)
		lost := fakeRcExpectEvent(t, c, mqtt.EventConnectionLost)
		var re *mqtt.ReasonError
		if !errors.As(lost.Err, &re) {
			t.Fatalf("EventConnectionLost.Err = %v, want a *mqtt.ReasonError", lost.Err)
		}
		if diff := cmp.Diff(mqtt.ReasonError{Packet: "DISCONNECT", Code: packet.ServerShuttingDown, Reason: "maintenance"}, *re); diff != "" {
			t.Errorf("ReasonError (-want +got):\n%s", diff)
		}
		fakeRcExpectEvent(t, c, mqtt.EventReconnecting)
		fakeRcAccept(t, b, &packet.Connack{})
		fakeRcExpectEvent(t, c, mqtt.EventConnected)
		fakeRcRunning(t, c)
	})
}

// TestFakeEventsKeepAliveTimeout checks that a broker that stops answering
// PINGREQ makes the client report EventConnectionLost with
// ErrKeepAliveTimeout, after which it reconnects and keeps alive on the new
// connection.
func TestFakeEventsKeepAliveTimeout(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "ka", Version: v, KeepAlive: 10 * time.Second}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		fc.expect(packet.PINGREQ)
		lost := fakeRcExpectEvent(t, c, mqtt.EventConnectionLost)
		if !errors.Is(lost.Err, mqtt.ErrKeepAliveTimeout) {
			t.Fatalf("EventConnectionLost.Err = %v, want ErrKeepAliveTimeout", lost.Err)
		}
		fakeRcExpectEvent(t, c, mqtt.EventReconnecting)
		fc2, _ := fakeRcAccept(t, b, &packet.Connack{})
		fakeRcExpectEvent(t, c, mqtt.EventConnected)
		fc2.expect(packet.PINGREQ)
		fc2.send(&packet.Pingresp{})
		fakeRcRunning(t, c)
		fakeRcNoEvent(t, c)
	})
}

// TestFakeBackoffGrowth checks the waits between failed attempts: they
// double from MinDelay up to MaxDelay, each randomised by ±25 % (and so not
// all exactly nominal), and each attempt is made exactly its announced Delay
// after the previous one. Without MaxAttempts the client keeps trying and
// keeps running, and connects once the broker is reachable again.
func TestFakeBackoffGrowth(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "bo", Version: mqtt.Version5, KeepAlive: -1}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		b.SetDialError(errors.New("network is unreachable"))
		fakeAdvance(fakeRcHealthy)
		fc.bc.Close()
		fakeRcExpectEvent(t, c, mqtt.EventConnectionLost)
		nominal := []time.Duration{1, 2, 4, 4, 4, 4, 4, 4}
		var prev mqtt.Event
		jittered := false
		for i, n := range nominal {
			n *= time.Second
			e := fakeRcExpectEvent(t, c, mqtt.EventReconnecting)
			if e.Attempt != i+1 {
				t.Errorf("EventReconnecting.Attempt = %d, want %d", e.Attempt, i+1)
			}
			if !fakeRcWithin(e.Delay, n) {
				t.Errorf("attempt %d: Delay %v, want %v ±25%%", e.Attempt, e.Delay, n)
			}
			if e.Delay != n {
				jittered = true
			}
			if i > 0 {
				if gap := e.Time.Sub(prev.Time); gap != prev.Delay {
					t.Errorf("attempt %d came %v after attempt %d, want its Delay %v", e.Attempt, gap, prev.Attempt, prev.Delay)
				}
			}
			prev = e
		}
		if !jittered {
			t.Error("every delay was exactly nominal: no jitter")
		}
		fakeRcRunning(t, c)
		if n := b.Pending(); n != 0 {
			t.Fatalf("%d connections reached the broker while it refused them", n)
		}
		b.SetDialError(nil)
		fakeRcAccept(t, b, &packet.Connack{})
		if waited := time.Since(prev.Time); waited != prev.Delay {
			t.Errorf("connected %v after the last EventReconnecting, want %v", waited, prev.Delay)
		}
		fakeRcExpectEvent(t, c, mqtt.EventConnected)
		fakeRcRunning(t, c)
	})
}

// TestFakeBackoffGiveUp checks MaxAttempts: after 3 failed attempts in a row
// the client reports EventGaveUp and stops. Done closes; Err wraps
// ErrConnectionLost and the last attempt's error and says it gave up; a
// publish that was in flight and one queued while reconnecting fail with
// it, and later calls are refused with it. No attempt follows.
func TestFakeBackoffGiveUp(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "gu", Version: v, KeepAlive: -1,
			Reconnect: mqtt.ReconnectConfig{MinDelay: time.Second, MaxDelay: 4 * time.Second, MaxAttempts: 3}}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		inflight := c.PublishAsync(mqtt.Message{Topic: "t", QoS: mqtt.AtLeastOnce})
		fc.expectPublish()
		dialErr := errors.New("network is unreachable")
		b.SetDialError(dialErr)
		rec := fakeRcDrop(t, c, fc)
		queued := c.PublishAsync(mqtt.Message{Topic: "t", QoS: mqtt.ExactlyOnce})
		for attempt := 2; attempt <= 3; attempt++ {
			if rec = fakeRcExpectEvent(t, c, mqtt.EventReconnecting); rec.Attempt != attempt {
				t.Errorf("EventReconnecting.Attempt = %d, want %d", rec.Attempt, attempt)
			}
		}
		gave := fakeRcExpectEvent(t, c, mqtt.EventGaveUp)
		if got := gave.Time.Sub(rec.Time); got != rec.Delay {
			t.Errorf("gave up %v after the last EventReconnecting, want after its Delay %v", got, rec.Delay)
		}
		err := fakeWaitDone(t, c, fakeTimeout)
		for what, e := range map[string]error{"Err": err, "EventGaveUp.Err": gave.Err} {
			if !errors.Is(e, mqtt.ErrConnectionLost) || !errors.Is(e, dialErr) || !strings.Contains(e.Error(), "gave up") {
				t.Errorf("%s = %v, want ErrConnectionLost wrapping the dial error, saying it gave up", what, e)
			}
		}
		for name, p := range map[string]*mqtt.Pending{"in-flight": inflight, "queued": queued} {
			if err := p.Wait(context.Background()); !errors.Is(err, mqtt.ErrConnectionLost) {
				t.Errorf("%s publish: %v, want ErrConnectionLost", name, err)
			}
		}
		if err := c.Publish(context.Background(), mqtt.Message{Topic: "t", QoS: mqtt.AtLeastOnce}); !errors.Is(err, mqtt.ErrConnectionLost) {
			t.Errorf("Publish after giving up: %v, want ErrConnectionLost", err)
		}
		b.SetDialError(nil)
		fakeAdvance(time.Minute)
		if n := b.Pending(); n != 0 {
			t.Errorf("%d connection attempts after giving up", n)
		}
		fakeRcNoEvent(t, c)
	})
}

// TestFakeBackoffRefused checks that attempts the broker accepts and then
// ends count as failed: a hang-up before CONNECT is read, a hang-up after
// it, and a CONNACK refusal; after MaxAttempts the error the client stops
// with is the refusal, as a *ConnectError with its code.
func TestFakeBackoffRefused(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, wire packet.Version) {
		cfg := mqtt.Config{ClientID: "rf", Version: v, KeepAlive: -1,
			Reconnect: mqtt.ReconnectConfig{MinDelay: time.Second, MaxDelay: 4 * time.Second, MaxAttempts: 3}}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		fakeRcDrop(t, c, fc)

		fakeAccept(t, b, fakeTimeout).Close()
		if e := fakeRcExpectEvent(t, c, mqtt.EventReconnecting); e.Attempt != 2 || !fakeRcWithin(e.Delay, 2*time.Second) {
			t.Errorf("after a hang-up: EventReconnecting attempt %d after %v, want attempt 2 after 2s ±25%%", e.Attempt, e.Delay)
		}

		bc := fakeAccept(t, b, fakeTimeout)
		bc.ExpectConnect(t)
		bc.Close()
		if e := fakeRcExpectEvent(t, c, mqtt.EventReconnecting); e.Attempt != 3 || !fakeRcWithin(e.Delay, 4*time.Second) {
			t.Errorf("after a hang-up: EventReconnecting attempt %d after %v, want attempt 3 after 4s ±25%%", e.Attempt, e.Delay)
		}

		bc = fakeAccept(t, b, fakeTimeout)
		bc.ExpectConnect(t)
		code := packet.NotAuthorized
		if wire == packet.V311 {
			code = packet.RefusedNotAuthorized
		}
		bc.Send(t, &packet.Connack{ReasonCode: code})
		bc.ExpectClosed(t)
		fakeRcExpectEvent(t, c, mqtt.EventGaveUp)
		err := fakeWaitDone(t, c, fakeTimeout)
		var ce *mqtt.ConnectError
		if !errors.Is(err, mqtt.ErrConnectionLost) || !errors.As(err, &ce) || ce.Code != code {
			t.Fatalf("Err = %v, want ErrConnectionLost and a *ConnectError with code %v", err, code)
		}
	})
}

// TestFakeBackoffConnectTimeout checks that a reconnection attempt whose
// CONNACK does not come within ConnectTimeout fails (the client closes that
// connection) and the next attempt follows the backoff.
func TestFakeBackoffConnectTimeout(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "ct", Version: mqtt.Version5, KeepAlive: -1, ConnectTimeout: 5 * time.Second}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		rec := fakeRcDrop(t, c, fc)
		bc := fakeAccept(t, b, fakeTimeout)
		bc.ExpectConnect(t)
		bc.ExpectClosed(t)
		if waited := time.Since(rec.Time); waited != rec.Delay+5*time.Second {
			t.Errorf("the client gave up on the CONNACK %v after EventReconnecting, want Delay+ConnectTimeout = %v",
				waited, rec.Delay+5*time.Second)
		}
		if e := fakeRcExpectEvent(t, c, mqtt.EventReconnecting); e.Attempt != 2 {
			t.Errorf("EventReconnecting.Attempt = %d, want 2", e.Attempt)
		}
		fakeRcAccept(t, b, &packet.Connack{})
		fakeRcExpectEvent(t, c, mqtt.EventConnected)
		fakeRcRunning(t, c)
	})
}

// TestFakeBackoffResetsAfterSuccess checks that MaxAttempts counts failures
// in a row: a successful connection starts the count, and the backoff,
// afresh.
func TestFakeBackoffResetsAfterSuccess(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "rs", Version: mqtt.Version311, KeepAlive: -1,
			Reconnect: mqtt.ReconnectConfig{MinDelay: time.Second, MaxDelay: 4 * time.Second, MaxAttempts: 2}}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		for round := range 3 {
			b.SetDialError(errors.New("unreachable"))
			if e := fakeRcDrop(t, c, fc); e.Attempt != 1 || !fakeRcWithin(e.Delay, time.Second) {
				t.Fatalf("round %d: first EventReconnecting attempt %d after %v, want attempt 1 after 1s ±25%%", round, e.Attempt, e.Delay)
			}
			if e := fakeRcExpectEvent(t, c, mqtt.EventReconnecting); e.Attempt != 2 {
				t.Fatalf("round %d: EventReconnecting.Attempt = %d, want 2", round, e.Attempt)
			}
			b.SetDialError(nil)
			fc, _ = fakeRcAccept(t, b, &packet.Connack{})
			fakeRcExpectEvent(t, c, mqtt.EventConnected)
			fakeRcRunning(t, c)
		}
	})
}

// TestFakeReconnectServerRotation checks that reconnection attempts rotate
// over Config.Servers, starting after the server whose connection was lost,
// and that EventConnected names the server reached.
func TestFakeReconnectServerRotation(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		b := fakebroker.New(t)
		var mu sync.Mutex
		var dialed []string
		cfg := mqtt.Config{ClientID: "sr", Version: mqtt.Version5, KeepAlive: -1, Reconnect: fakeRcRetry,
			Servers: []string{"mqtt://one:1883", "mqtt://two:1884"},
			Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
				mu.Lock()
				dialed = append(dialed, addr)
				mu.Unlock()
				return b.Dial(ctx, network, addr)
			}}
		res := fakeStartConnect(t, context.Background(), b, cfg)
		bc := fakeAccept(t, b, fakeTimeout)
		bc.Accept(t, false)
		c, err := fakeConnectDone(t, res, fakeTimeout)
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		fc := fakeWatch(t, bc, fakeTimeout)
		fakeRcExpectEvent(t, c, mqtt.EventConnected)
		b.SetDialError(errors.New("unreachable"))
		fakeRcDrop(t, c, fc)
		for range 3 {
			fakeRcExpectEvent(t, c, mqtt.EventReconnecting)
		}
		b.SetDialError(nil)
		fakeRcAccept(t, b, &packet.Connack{})
		if e := fakeRcExpectEvent(t, c, mqtt.EventConnected); e.Server != "mqtt://one:1883" {
			t.Errorf("EventConnected.Server = %q, want mqtt://one:1883", e.Server)
		}
		mu.Lock()
		got := slices.Clone(dialed)
		mu.Unlock()
		want := []string{"one:1883", "two:1884", "one:1883", "two:1884", "one:1883"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("dialed addresses (-want +got):\n%s", diff)
		}
	})
}

// TestFakeResumeQoS1 checks the resumption of a session the broker kept
// (session present 1): QoS 1 publishes unacknowledged when the connection
// dropped are sent again first, in their original order [MQTT-4.6.0-1],
// with their original packet identifiers [MQTT-4.4.0-1] and DUP set
// [MQTT-3.3.1-1]; they complete only on their PUBACKs. A publish made while
// reconnecting follows them, as a first delivery.
func TestFakeResumeQoS1(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "r1", Version: v, KeepAlive: -1, SessionExpiry: time.Hour}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		p1 := c.PublishAsync(mqtt.Message{Topic: "q/1", Payload: []byte("first"), QoS: mqtt.AtLeastOnce})
		p2 := c.PublishAsync(mqtt.Message{Topic: "q/2", Payload: []byte("second"), QoS: mqtt.AtLeastOnce, Retain: true})
		pub1, pub2 := fc.expectPublish(), fc.expectPublish()
		if pub1.PacketID == pub2.PacketID {
			t.Fatalf("two publishes in flight with packet ID %d", pub1.PacketID)
		}
		fakeRcDrop(t, c, fc)
		p3 := c.PublishAsync(mqtt.Message{Topic: "q/3", Payload: []byte("third"), QoS: mqtt.AtLeastOnce})
		if fakeRcDone(p1) || fakeRcDone(p2) || fakeRcDone(p3) {
			t.Fatal("a publish completed while the client was reconnecting")
		}

		fc2, _ := fakeRcAccept(t, b, &packet.Connack{SessionPresent: true})
		for _, want := range []*packet.Publish{fakeRcResent(pub1, true), fakeRcResent(pub2, true)} {
			if diff := cmp.Diff(want, fc2.expectPublish()); diff != "" {
				t.Errorf("re-sent PUBLISH (-want +got):\n%s", diff)
			}
		}
		pub3 := fc2.expectPublish()
		if pub3.Dup || string(pub3.Payload) != "third" || pub3.PacketID == pub1.PacketID || pub3.PacketID == pub2.PacketID {
			t.Errorf("queued publish sent as %s, want a first delivery with a fresh packet ID", fakebroker.Describe(pub3))
		}
		fc2.expectNothing()
		if fakeRcDone(p1) || fakeRcDone(p2) {
			t.Fatal("a re-sent publish completed before its PUBACK")
		}
		for _, p := range []*packet.Publish{pub1, pub2, pub3} {
			fc2.fakeRcAck(packet.PUBACK, p.PacketID)
		}
		for i, p := range []*mqtt.Pending{p1, p2, p3} {
			if err := p.Wait(context.Background()); err != nil {
				t.Errorf("publish %d: %v", i+1, err)
			}
		}
		fc2.expectNothing()
	})
}

// TestFakeResumeQoS2 checks that a resumed session continues each QoS 2
// exchange at its step [MQTT-4.4.0-1]: a message still awaiting PUBREC is
// sent again as PUBLISH with DUP and its packet identifier, one past PUBREC
// only as PUBREL: the PUBLISH must not be sent again once PUBREL was sent
// (MQTT 5.0 [MQTT-4.3.3-6], 3.1.1 [MQTT-4.3.3-1]). Both complete at their
// PUBCOMP.
func TestFakeResumeQoS2(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "r2", Version: v, KeepAlive: -1, SessionExpiry: time.Hour}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		pa := c.PublishAsync(mqtt.Message{Topic: "q/a", Payload: []byte("A"), QoS: mqtt.ExactlyOnce})
		pubA := fc.expectPublish()
		pb := c.PublishAsync(mqtt.Message{Topic: "q/b", Payload: []byte("B"), QoS: mqtt.ExactlyOnce})
		pubB := fc.expectPublish()
		fc.fakeRcAck(packet.PUBREC, pubB.PacketID)
		if rel := fc.expectAck(packet.PUBREL); rel.PacketID != pubB.PacketID {
			t.Fatalf("PUBREL for %d, want %d", rel.PacketID, pubB.PacketID)
		}
		fakeRcDrop(t, c, fc)

		fc2, _ := fakeRcAccept(t, b, &packet.Connack{SessionPresent: true})
		if diff := cmp.Diff(fakeRcResent(pubA, true), fc2.expectPublish()); diff != "" {
			t.Errorf("re-sent PUBLISH (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(&packet.Ack{PacketType: packet.PUBREL, PacketID: pubB.PacketID}, fc2.next()); diff != "" {
			t.Errorf("packet after the re-sent PUBLISH (-want +got):\n%s", diff)
		}
		fc2.expectNothing()
		if fakeRcDone(pa) || fakeRcDone(pb) {
			t.Fatal("a QoS 2 publish completed before its PUBCOMP")
		}
		fc2.fakeRcAck(packet.PUBCOMP, pubB.PacketID)
		if err := pb.Wait(context.Background()); err != nil {
			t.Errorf("publish B: %v", err)
		}
		fc2.fakeRcAck(packet.PUBREC, pubA.PacketID)
		if rel := fc2.expectAck(packet.PUBREL); rel.PacketID != pubA.PacketID {
			t.Fatalf("PUBREL for %d, want %d", rel.PacketID, pubA.PacketID)
		}
		fc2.fakeRcAck(packet.PUBCOMP, pubA.PacketID)
		if err := pa.Wait(context.Background()); err != nil {
			t.Errorf("publish A: %v", err)
		}
		fc2.expectNothing()
	})
}

// TestFakeResumeSessionLost checks reconnection to a broker that lost the
// session (session present 0). Before anything else the client subscribes
// again to every live subscription, one SUBSCRIBE each, with the same
// filters, options and (MQTT 5.0) subscription identifiers, so that routes
// exist before messages flow. Then an unacknowledged QoS 1 publish is sent
// again, without DUP since the new session never saw it; a QoS 2 publish
// past PUBREC completes without being sent again (the broker had received
// it). EventResubscribed, with no error, follows the last SUBACK, and the
// subscriptions keep receiving.
func TestFakeResumeSessionLost(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, wire packet.Version) {
		cfg := mqtt.Config{ClientID: "sl", Version: v, KeepAlive: -1, SessionExpiry: time.Hour}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		f2 := []mqtt.Filter{{Topic: "b/#", QoS: mqtt.ExactlyOnce}, {Topic: "c"}}
		if wire == packet.V5 {
			f2[0].NoLocal, f2[0].RetainAsPublished, f2[1].RetainHandling = true, true, 2
		}
		sub1, sp1, err := fakeRcSubscribe(t, c, fc, nil, mqtt.Filter{Topic: "a/+", QoS: mqtt.AtLeastOnce})
		if err != nil {
			t.Fatal(err)
		}
		sub2, sp2, err := fakeRcSubscribe(t, c, fc, nil, f2...)
		if err != nil {
			t.Fatal(err)
		}
		p1 := c.PublishAsync(mqtt.Message{Topic: "q/1", Payload: []byte("one"), QoS: mqtt.AtLeastOnce})
		pub1 := fc.expectPublish()
		p2 := c.PublishAsync(mqtt.Message{Topic: "q/2", Payload: []byte("two"), QoS: mqtt.ExactlyOnce})
		pub2 := fc.expectPublish()
		fc.fakeRcAck(packet.PUBREC, pub2.PacketID)
		fc.expectAck(packet.PUBREL)
		fakeRcDrop(t, c, fc)

		fc2, _ := fakeRcAccept(t, b, &packet.Connack{SessionPresent: false})
		if e := fakeRcExpectEvent(t, c, mqtt.EventConnected); e.SessionPresent {
			t.Error("EventConnected.SessionPresent = true")
		}
		var resubs []*packet.Subscribe
		for _, sp := range []*packet.Subscribe{sp1, sp2} {
			r := fc2.expectSubscribe()
			resubs = append(resubs, r)
			if diff := cmp.Diff(sp, r, cmpopts.IgnoreFields(packet.Subscribe{}, "PacketID")); diff != "" {
				t.Errorf("SUBSCRIBE on the new connection (-original +again):\n%s", diff)
			}
			if wire == packet.V5 && len(r.Props.SubscriptionIDs) != 1 {
				t.Errorf("SUBSCRIBE without one subscription identifier: %s", fakebroker.Describe(r))
			}
		}
		if ids := []uint16{resubs[0].PacketID, resubs[1].PacketID, pub1.PacketID}; ids[0] == ids[1] || ids[0] == ids[2] || ids[1] == ids[2] {
			t.Errorf("packet IDs in use twice: SUBSCRIBEs %d and %d, PUBLISH %d", ids[0], ids[1], ids[2])
		}
		if diff := cmp.Diff(fakeRcResent(pub1, false), fc2.expectPublish()); diff != "" {
			t.Errorf("PUBLISH sent again (-want +got):\n%s", diff)
		}
		// Whatever follows (TestFakeResumeResubscribeOnce checks there is
		// nothing) is no PUBLISH and no PUBREL.
		for _, p := range fakeRcDrain(fc2) {
			if p.Type() != packet.SUBSCRIBE {
				t.Errorf("unexpected %s", fakebroker.Describe(p))
			}
		}
		if !fakeRcDone(p2) || p2.Err() != nil {
			t.Errorf("QoS 2 publish past PUBREC: done %v, err %v; want completed successfully", fakeRcDone(p2), p2.Err())
		}
		if fakeRcDone(p1) {
			t.Error("QoS 1 publish completed before its PUBACK")
		}

		fakeRcNoEvent(t, c)
		fc2.send(&packet.Suback{PacketID: resubs[0].PacketID, ReasonCodes: []packet.ReasonCode{1}})
		fakeRcNoEvent(t, c)
		fc2.send(&packet.Suback{PacketID: resubs[1].PacketID, ReasonCodes: []packet.ReasonCode{2, 0}})
		if e := fakeRcExpectEvent(t, c, mqtt.EventResubscribed); e.Err != nil {
			t.Errorf("EventResubscribed.Err = %v, want nil", e.Err)
		}
		fc2.fakeRcAck(packet.PUBACK, pub1.PacketID)
		if err := p1.Wait(context.Background()); err != nil {
			t.Errorf("QoS 1 publish: %v", err)
		}

		in1 := &packet.Publish{Topic: "a/x", Payload: []byte("to 1")}
		in2 := &packet.Publish{Topic: "c", Payload: []byte("to 2")}
		if wire == packet.V5 {
			in1.Props.SubscriptionIDs = resubs[0].Props.SubscriptionIDs
			in2.Props.SubscriptionIDs = resubs[1].Props.SubscriptionIDs
		}
		fc2.send(in1)
		fc2.send(in2)
		if m := fakeRecv(t, sub1.Messages()); string(m.Payload) != "to 1" {
			t.Errorf("subscription 1 received %q", m.Payload)
		}
		if m := fakeRecv(t, sub2.Messages()); string(m.Payload) != "to 2" {
			t.Errorf("subscription 2 received %q", m.Payload)
		}
		fakeRcRunning(t, c)
	})
}

// TestFakeResumeResubscribeRefused checks that a filter the broker refuses
// when the client subscribes again after a session loss is reported by
// EventResubscribed as a *SubscribeError naming it, while the client keeps
// running.
func TestFakeResumeResubscribeRefused(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "rr", Version: v, KeepAlive: -1, SessionExpiry: time.Hour}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		if _, _, err := fakeRcSubscribe(t, c, fc, nil, mqtt.Filter{Topic: "ok/#"}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := fakeRcSubscribe(t, c, fc, nil, mqtt.Filter{Topic: "x/#", QoS: 1}, mqtt.Filter{Topic: "y", QoS: 1}); err != nil {
			t.Fatal(err)
		}
		fakeRcDrop(t, c, fc)
		fc2, _ := fakeRcAccept(t, b, &packet.Connack{})
		fakeRcExpectEvent(t, c, mqtt.EventConnected)
		r1, r2 := fc2.expectSubscribe(), fc2.expectSubscribe()
		fc2.send(&packet.Suback{PacketID: r1.PacketID, ReasonCodes: []packet.ReasonCode{0}})
		fc2.send(&packet.Suback{PacketID: r2.PacketID, ReasonCodes: []packet.ReasonCode{0x80, 1}})
		e := fakeRcExpectEvent(t, c, mqtt.EventResubscribed)
		var se *mqtt.SubscribeError
		if !errors.As(e.Err, &se) {
			t.Fatalf("EventResubscribed.Err = %v, want a *mqtt.SubscribeError", e.Err)
		}
		if diff := cmp.Diff([]mqtt.FilterResult{{Filter: "x/#", Code: 0x80}}, se.Refused); diff != "" {
			t.Errorf("refused filters (-want +got):\n%s", diff)
		}
		fakeRcRunning(t, c)
	})
}

// TestFakeResumeResubscribeLiveFilters checks that only live filters are
// subscribed again after a session loss: not one removed by Unsubscribe,
// not one the broker refused at first, and no subscription that ended.
func TestFakeResumeResubscribeLiveFilters(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "lf", Version: v, KeepAlive: -1}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		if _, _, err := fakeRcSubscribe(t, c, fc, nil, mqtt.Filter{Topic: "keep/1"}, mqtt.Filter{Topic: "drop/1"}); err != nil {
			t.Fatal(err)
		}
		var se *mqtt.SubscribeError
		if _, _, err := fakeRcSubscribe(t, c, fc, []packet.ReasonCode{0x80, 1}, mqtt.Filter{Topic: "refused"}, mqtt.Filter{Topic: "keep/2", QoS: 1}); !errors.As(err, &se) {
			t.Fatalf("partly refused subscribe: %v, want a *SubscribeError", err)
		}
		if _, _, err := fakeRcSubscribe(t, c, fc, nil, mqtt.Filter{Topic: "gone"}); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"drop/1", "gone"} {
			call := fakeAsync(t, func() error { return c.Unsubscribe(context.Background(), f) })
			u := fc.expect(packet.UNSUBSCRIBE).(*packet.Unsubscribe)
			fc.send(&packet.Unsuback{PacketID: u.PacketID, ReasonCodes: []packet.ReasonCode{0}})
			if err := call.wait(); err != nil {
				t.Fatalf("Unsubscribe %q: %v", f, err)
			}
		}
		fakeRcDrop(t, c, fc)
		fc2, _ := fakeRcAccept(t, b, &packet.Connack{})
		var got [][]packet.Subscription
		for range 2 {
			r := fc2.expectSubscribe()
			got = append(got, r.Subscriptions)
			fc2.send(&packet.Suback{PacketID: r.PacketID, ReasonCodes: []packet.ReasonCode{packet.ReasonCode(r.Subscriptions[0].QoS)}})
		}
		want := [][]packet.Subscription{{{Filter: "keep/1"}}, {{Filter: "keep/2", QoS: 1}}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("filters subscribed again (-want +got):\n%s", diff)
		}
		fakeRcExpectEvent(t, c, mqtt.EventConnected)
		if e := fakeRcExpectEvent(t, c, mqtt.EventResubscribed); e.Err != nil {
			t.Errorf("EventResubscribed.Err = %v", e.Err)
		}
		for _, p := range fakeRcDrain(fc2) {
			if sp, ok := p.(*packet.Subscribe); !ok || !slices.ContainsFunc(want, func(w []packet.Subscription) bool {
				return cmp.Equal(w, sp.Subscriptions)
			}) {
				t.Errorf("unexpected %s", fakebroker.Describe(p))
			}
		}
	})
}

// TestFakeResumeInboundQoS2 checks a received QoS 2 message across a
// reconnection with the session kept. The client sent PUBREC before the
// connection dropped; the broker then sends the PUBLISH again with DUP:
// the client answers PUBREC again and does not deliver it a second time
// (MQTT 5.0 [MQTT-4.3.3-9], 3.1.1 [MQTT-4.3.3-2]); PUBREL gets PUBCOMP
// and the identifier then starts a new message (MQTT 5.0 [MQTT-4.3.3-10],
// [MQTT-4.3.3-11]).
func TestFakeResumeInboundQoS2(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "i2", Version: v, KeepAlive: -1, SessionExpiry: time.Hour}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		in := &packet.Publish{Topic: "in/2", Payload: []byte("exactly once"), QoS: 2, PacketID: 7}
		fc.send(in)
		want := mqtt.Message{Topic: "in/2", Payload: []byte("exactly once"), QoS: mqtt.ExactlyOnce}
		if diff := cmp.Diff(want, fakeRecv(t, c.Messages()), cmpopts.EquateEmpty(), ignoreAck); diff != "" {
			t.Errorf("message (-want +got):\n%s", diff)
		}
		if a := fc.expectAck(packet.PUBREC); a.PacketID != 7 {
			t.Fatalf("PUBREC for %d, want 7", a.PacketID)
		}
		fakeRcDrop(t, c, fc)

		fc2, _ := fakeRcAccept(t, b, &packet.Connack{SessionPresent: true})
		fc2.expectNothing()
		fc2.send(fakeRcResent(in, true))
		if diff := cmp.Diff(&packet.Ack{PacketType: packet.PUBREC, PacketID: 7}, fc2.next()); diff != "" {
			t.Errorf("answer to the re-sent PUBLISH (-want +got):\n%s", diff)
		}
		fakeNoMsg(t, c.Messages())
		fc2.fakeRcAck(packet.PUBREL, 7)
		if diff := cmp.Diff(&packet.Ack{PacketType: packet.PUBCOMP, PacketID: 7}, fc2.next()); diff != "" {
			t.Errorf("answer to PUBREL (-want +got):\n%s", diff)
		}
		fakeNoMsg(t, c.Messages())

		fc2.send(&packet.Publish{Topic: "in/2", Payload: []byte("new"), QoS: 2, PacketID: 7})
		if m := fakeRecv(t, c.Messages()); string(m.Payload) != "new" {
			t.Errorf("message after PUBCOMP: %q, want \"new\"", m.Payload)
		}
		fc2.expectAck(packet.PUBREC)
		fc2.expectNothing()
	})
}

// TestFakeResumeInboundUntaken checks received QoS 1 and 2 messages the
// application had not taken when the connection dropped, with the session
// kept: the broker sends them again with DUP; each is delivered once, and
// acknowledged (PUBACK, PUBREC) on the new connection, in arrival order
// [MQTT-4.6.0-2] [MQTT-4.6.0-3], once the application takes it.
func TestFakeResumeInboundUntaken(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "iu", Version: v, KeepAlive: -1, SessionExpiry: time.Hour}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		in1 := &packet.Publish{Topic: "in/1", Payload: []byte("one"), QoS: 1, PacketID: 3}
		in2 := &packet.Publish{Topic: "in/2", Payload: []byte("two"), QoS: 2, PacketID: 4}
		fc.send(in1)
		fc.send(in2)
		fc.expectNothing()
		fakeRcDrop(t, c, fc)

		fc2, _ := fakeRcAccept(t, b, &packet.Connack{SessionPresent: true})
		fc2.send(fakeRcResent(in1, true))
		fc2.send(fakeRcResent(in2, true))
		fc2.expectNothing()
		m1 := fakeRecv(t, c.Messages())
		if diff := cmp.Diff(mqtt.Message{Topic: "in/1", Payload: []byte("one"), QoS: mqtt.AtLeastOnce}, m1, cmpopts.EquateEmpty(), ignoreAck); diff != "" {
			t.Errorf("first message (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(&packet.Ack{PacketType: packet.PUBACK, PacketID: 3}, fc2.next()); diff != "" {
			t.Errorf("after the first message was taken (-want +got):\n%s", diff)
		}
		fc2.expectNothing()
		m2 := fakeRecv(t, c.Messages())
		if diff := cmp.Diff(mqtt.Message{Topic: "in/2", Payload: []byte("two"), QoS: mqtt.ExactlyOnce}, m2, cmpopts.EquateEmpty(), ignoreAck); diff != "" {
			t.Errorf("second message (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(&packet.Ack{PacketType: packet.PUBREC, PacketID: 4}, fc2.next()); diff != "" {
			t.Errorf("after the second message was taken (-want +got):\n%s", diff)
		}
		fakeNoMsg(t, c.Messages())
		fc2.fakeRcAck(packet.PUBREL, 4)
		fc2.expectAck(packet.PUBCOMP)
		fc2.expectNothing()
	})
}

// TestFakeResumeInboundTakenWhileAway checks that a message the
// application takes while the client is reconnecting is acknowledged on
// the new connection as soon as the broker resumed the session.
func TestFakeResumeInboundTakenWhileAway(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "iw", Version: v, KeepAlive: -1, SessionExpiry: time.Hour}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		fc.send(&packet.Publish{Topic: "in", Payload: []byte("x"), QoS: 1, PacketID: 9})
		fc.expectNothing()
		fakeRcDrop(t, c, fc)
		fakeRecv(t, c.Messages())
		fc2, _ := fakeRcAccept(t, b, &packet.Connack{SessionPresent: true})
		if diff := cmp.Diff(&packet.Ack{PacketType: packet.PUBACK, PacketID: 9}, fc2.next()); diff != "" {
			t.Errorf("first packet on the new connection (-want +got):\n%s", diff)
		}
		fc2.expectNothing()
	})
}

// TestFakeResumeInboundSessionLost checks a received QoS 1 message not yet
// taken when the connection dropped, after a reconnection where the broker
// lost the session: the application still receives it, but the client
// sends no PUBACK, since its packet identifier means nothing to the new
// session; a new message with the same identifier is a new message.
func TestFakeResumeInboundSessionLost(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "il", Version: v, KeepAlive: -1, SessionExpiry: time.Hour}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		fc.send(&packet.Publish{Topic: "in", Payload: []byte("old"), QoS: 1, PacketID: 5})
		fc.expectNothing()
		fakeRcDrop(t, c, fc)
		fc2, _ := fakeRcAccept(t, b, &packet.Connack{SessionPresent: false})
		if m := fakeRecv(t, c.Messages()); string(m.Payload) != "old" {
			t.Fatalf("received %q, want \"old\"", m.Payload)
		}
		fc2.expectNothing()
		fc2.send(&packet.Publish{Topic: "in", Payload: []byte("new"), QoS: 1, PacketID: 5})
		if m := fakeRecv(t, c.Messages()); string(m.Payload) != "new" {
			t.Fatalf("received %q, want \"new\"", m.Payload)
		}
		if a := fc2.expectAck(packet.PUBACK); a.PacketID != 5 {
			t.Errorf("PUBACK for %d, want 5", a.PacketID)
		}
		fc2.expectNothing()
	})
}

// TestFakeReconnectCallsWait checks calls made while the broker is
// unreachable: Publish at QoS 1 and 2, Subscribe, Unsubscribe and Ping wait
// (the client keeps running) and complete after the reconnection, their
// packets sent in the order the calls were made. Each honours its context:
// one whose deadline passes returns context.DeadlineExceeded at that
// deadline, and a publish (QoS 0 too) that gave up is not sent later. A
// QoS 0 Publish that waits is in TestFakeReconnectQoS0PublishRecycled.
func TestFakeReconnectCallsWait(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "cw", Version: v, KeepAlive: -1, SessionExpiry: time.Hour}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		if _, _, err := fakeRcSubscribe(t, c, fc, nil, mqtt.Filter{Topic: "old"}); err != nil {
			t.Fatal(err)
		}
		b.SetDialError(errors.New("unreachable"))
		fakeRcDrop(t, c, fc)
		bg := context.Background()
		msg := func(qos mqtt.QoS, payload string) mqtt.Message {
			return mqtt.Message{Topic: "w", Payload: []byte(payload), QoS: qos}
		}
		var sub *mqtt.Subscription
		calls := []struct {
			name string
			f    func(ctx context.Context) error
		}{
			{"Publish QoS 1", func(ctx context.Context) error { return c.Publish(ctx, msg(1, "b")) }},
			{"Subscribe", func(ctx context.Context) error {
				var err error
				sub, err = c.Subscribe(ctx, "new/#", mqtt.AtLeastOnce)
				return err
			}},
			{"Publish QoS 2", func(ctx context.Context) error { return c.Publish(ctx, msg(2, "c")) }},
			{"Ping", func(ctx context.Context) error { _, err := c.Ping(ctx); return err }},
			{"Unsubscribe", func(ctx context.Context) error { return c.Unsubscribe(ctx, "old") }},
			{"Publish QoS 1 again", func(ctx context.Context) error { return c.Publish(ctx, msg(1, "d")) }},
		}
		var waiting []*fakeCall
		for _, call := range calls {
			waiting = append(waiting, fakeAsync(t, func() error { return call.f(bg) }))
			synctest.Wait() // the calls reach the client in this order
		}
		for _, qos := range []mqtt.QoS{0, 1, 2} {
			ctx, cancel := context.WithTimeout(bg, 2*time.Second)
			start := time.Now()
			if err := c.Publish(ctx, msg(qos, "late")); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 2*time.Second {
				t.Errorf("Publish QoS %d with a 2s deadline: %v after %v, want DeadlineExceeded after 2s", qos, err, time.Since(start))
			}
			cancel()
		}
		ctx, cancel := context.WithTimeout(bg, 2*time.Second)
		if _, err := c.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Ping with a 2s deadline: %v, want DeadlineExceeded", err)
		}
		cancel()
		fakeAdvance(time.Minute)
		for i, w := range waiting {
			if w.returned() {
				t.Errorf("%s returned while the broker was unreachable: %v", calls[i].name, w.err)
			}
		}
		fakeRcRunning(t, c)

		b.SetDialError(nil)
		fc2, _ := fakeRcAccept(t, b, &packet.Connack{SessionPresent: true})
		var got []string
		var pubB, pubC, pubD *packet.Publish
		var sp *packet.Subscribe
		var up *packet.Unsubscribe
		pings := 0
		for range 7 {
			switch p := fc2.next().(type) {
			case *packet.Publish:
				got = append(got, "PUBLISH "+string(p.Payload))
				switch string(p.Payload) {
				case "b":
					pubB = p
				case "c":
					pubC = p
				case "d":
					pubD = p
				}
				if p.Dup {
					t.Errorf("publish made while reconnecting sent with DUP: %s", fakebroker.Describe(p))
				}
			case *packet.Subscribe:
				got = append(got, "SUBSCRIBE "+p.Subscriptions[0].Filter)
				sp = p
			case *packet.Unsubscribe:
				got = append(got, "UNSUBSCRIBE "+p.Filters[0])
				up = p
			case *packet.Pingreq:
				got = append(got, "PINGREQ")
				pings++
			default:
				got = append(got, fakebroker.Describe(p))
			}
		}
		// The Ping that gave up may still be sent: a PINGREQ is harmless.
		want := []string{"PUBLISH b", "SUBSCRIBE new/#", "PUBLISH c", "PINGREQ", "UNSUBSCRIBE old", "PUBLISH d", "PINGREQ"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("packets on the new connection (-want +got):\n%s", diff)
		}
		fc2.expectNothing()
		fc2.fakeRcAck(packet.PUBACK, pubB.PacketID)
		fc2.send(&packet.Suback{PacketID: sp.PacketID, ReasonCodes: []packet.ReasonCode{1}})
		fc2.fakeRcAck(packet.PUBREC, pubC.PacketID)
		fc2.expectAck(packet.PUBREL)
		fc2.fakeRcAck(packet.PUBCOMP, pubC.PacketID)
		for range pings {
			fc2.send(&packet.Pingresp{})
		}
		fc2.send(&packet.Unsuback{PacketID: up.PacketID, ReasonCodes: []packet.ReasonCode{0}})
		fc2.fakeRcAck(packet.PUBACK, pubD.PacketID)
		for i, w := range waiting {
			if err := w.wait(); err != nil {
				t.Errorf("%s: %v", calls[i].name, err)
			}
		}
		if sub == nil {
			t.Fatal("Subscribe returned no subscription")
		}
		fc2.send(&packet.Publish{Topic: "new/x", Payload: []byte("hi")})
		if m := fakeRecv(t, sub.Messages()); string(m.Payload) != "hi" {
			t.Errorf("subscription made while reconnecting received %q", m.Payload)
		}
		fc2.expectNothing()
	})
}

// TestFakeReconnectDisconnect checks Disconnect while the client is
// reconnecting: it returns at once (no fake time passes), Done closes with
// ErrClosed, publishes in flight and queued fail with ErrClosed, and no
// further attempt reaches the broker.
func TestFakeReconnectDisconnect(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "dr", Version: v, KeepAlive: -1}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		inflight := c.PublishAsync(mqtt.Message{Topic: "t", QoS: mqtt.AtLeastOnce})
		fc.expectPublish()
		b.SetDialError(errors.New("unreachable"))
		fakeRcDrop(t, c, fc)
		fakeRcExpectEvent(t, c, mqtt.EventReconnecting)
		queued := c.PublishAsync(mqtt.Message{Topic: "t", QoS: mqtt.ExactlyOnce})
		synctest.Wait()

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		call := fakeAsync(t, func() error { return c.Disconnect(ctx) })
		if !call.returned() {
			t.Fatal("Disconnect did not return at once while reconnecting")
		}
		if err := call.err; err != nil && !errors.Is(err, mqtt.ErrClosed) {
			t.Errorf("Disconnect = %v, want nil or ErrClosed", err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Disconnect took %v", d)
		}
		if err := fakeWaitDone(t, c, fakeTimeout); !errors.Is(err, mqtt.ErrClosed) {
			t.Errorf("Err = %v, want ErrClosed", err)
		}
		for name, p := range map[string]*mqtt.Pending{"in-flight": inflight, "queued": queued} {
			if err := p.Wait(context.Background()); !errors.Is(err, mqtt.ErrClosed) {
				t.Errorf("%s publish: %v, want ErrClosed", name, err)
			}
		}
		b.SetDialError(nil)
		fakeAdvance(time.Minute)
		if n := b.Pending(); n != 0 {
			t.Errorf("%d connection attempts after Disconnect", n)
		}
	})
}

// TestFakeReconnectClose checks Close while the client is reconnecting,
// both while it waits out the backoff and while a new connection waits for
// its CONNACK: Close returns at once, Done closes with ErrClosed, the
// half-open connection is closed, and no goroutine of the client is left
// (the bubble would report it; goleak checks the package).
func TestFakeReconnectClose(t *testing.T) {
	for _, during := range []string{"backoff", "handshake"} {
		t.Run(during, func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) {
				cfg := mqtt.Config{ClientID: "cr", Version: mqtt.Version5, KeepAlive: -1}
				c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
				fakeRcDrop(t, c, fc)
				var bc *fakebroker.Conn
				if during == "handshake" {
					bc = fakeAccept(t, b, fakeTimeout)
					bc.ExpectConnect(t)
				}
				start := time.Now()
				call := fakeAsync(t, c.Close)
				if !call.returned() {
					t.Fatal("Close did not return at once while reconnecting")
				}
				if d := time.Since(start); d != 0 {
					t.Errorf("Close took %v", d)
				}
				if err := fakeWaitDone(t, c, fakeTimeout); !errors.Is(err, mqtt.ErrClosed) {
					t.Errorf("Err = %v, want ErrClosed", err)
				}
				if bc != nil {
					if got := bc.ExpectClosed(t); len(got) != 0 {
						t.Errorf("packets after CONNECT on the abandoned connection: %v", got)
					}
				}
				if err := c.Publish(context.Background(), mqtt.Message{Topic: "t", QoS: 1}); !errors.Is(err, mqtt.ErrClosed) {
					t.Errorf("Publish after Close: %v, want ErrClosed", err)
				}
				fakeAdvance(time.Minute)
				if n := b.Pending(); n != 0 {
					t.Errorf("%d connection attempts after Close", n)
				}
			})
		})
	}
}
