package mqtt_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestFakeResumeResubscribeOnce checks that after a reconnection where the
// broker lost the session each live subscription is subscribed again with
// exactly one SUBSCRIBE. A second SUBSCRIBE with the packet identifier of
// one still unacknowledged breaks [MQTT-2.2.1-3], and a broker answering
// both makes the client take the second SUBACK for a protocol violation and
// drop the connection.
//
// Bug: session.resume (session_resume.go) collects s.out after calling
// resubscribe, so the internal subscribeReqs it just sent are sent again
// by the loop over outstanding packets.
func TestFakeResumeResubscribeOnce(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "ro", Version: v, KeepAlive: -1}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		if _, _, err := fakeRcSubscribe(t, c, fc, nil, mqtt.Filter{Topic: "a/#", QoS: 1}); err != nil {
			t.Fatal(err)
		}
		fakeRcDrop(t, c, fc)
		fc2, _ := fakeRcAccept(t, b, &packet.Connack{})
		fakeRcExpectEvent(t, c, mqtt.EventConnected)
		got := fakeRcDrain(fc2)
		if len(got) != 1 {
			t.Errorf("packets on the new connection: %d, want one SUBSCRIBE", len(got))
		}
		for _, p := range got {
			t.Logf("client sent %s", fakebroker.Describe(p))
			if sp, ok := p.(*packet.Subscribe); ok {
				fc2.send(&packet.Suback{PacketID: sp.PacketID, ReasonCodes: []packet.ReasonCode{1}})
			}
		}
		fakeRcExpectEvent(t, c, mqtt.EventResubscribed)
		fakeRcNoEvent(t, c)
	})
}

// TestFakeResumeSubscribeInFlightSessionLost checks a Subscribe whose
// SUBACK had not come when the connection dropped, the broker then having
// lost the session: its filter must be subscribed once on the new
// connection, and the call completes with the SUBACK.
//
// Bug: trySubscribe (session_subscribe.go) adds the subscription to s.subs
// before its SUBACK, so resume both resubscribes it (internal request)
// and re-sends the caller's SUBSCRIBE: the broker gets the filter twice
// (and, with Retain Handling 0, sends its retained messages twice).
func TestFakeResumeSubscribeInFlightSessionLost(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "rf", Version: mqtt.Version5, KeepAlive: -1}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		call := fakeAsync(t, func() error { _, err := c.Subscribe(context.Background(), "s/#", 1); return err })
		fc.expectSubscribe()
		fakeRcDrop(t, c, fc)
		fc2, _ := fakeRcAccept(t, b, &packet.Connack{})
		n := 0
		for _, p := range fakeRcDrain(fc2) {
			sp, ok := p.(*packet.Subscribe)
			if !ok {
				t.Errorf("unexpected %s", fakebroker.Describe(p))
				continue
			}
			t.Logf("client sent %s", fakebroker.Describe(sp))
			n++
			fc2.send(&packet.Suback{PacketID: sp.PacketID, ReasonCodes: []packet.ReasonCode{1}})
		}
		if n != 1 {
			t.Errorf("%d SUBSCRIBEs for s/# on the new connection, want 1", n)
		}
		if err := call.wait(); err != nil {
			t.Errorf("Subscribe: %v", err)
		}
	})
}

// TestFakeReconnectQoS0PublishRecycled checks synchronous QoS 0 publishes
// made while the client reconnects, round after round, with a byte bound
// that they fill exactly: each round must be accepted whole and sent.
// Run it with -race.
//
// Bug: drainWaiting (session_publish.go) completes a queued QoS 0 Pending
// (sendQoS0, or an ended context) and then reads r.msg.Payload to update
// queuedBytes. Publish recycles its pooled Pending as soon as it is
// completed (pendingPool.put clears it), so this read races with the
// reset, and when the reset wins queuedBytes is not decremented: the
// queue's byte count drifts up until it refuses everything. Fix: take
// len(r.msg.Payload) before sending or completing.
func TestFakeReconnectQoS0PublishRecycled(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		const perRound, size = 5, 10
		cfg := mqtt.Config{ClientID: "q0", Version: mqtt.Version311, KeepAlive: -1,
			Queue: mqtt.QueueConfig{MaxBytes: perRound * size, Full: mqtt.QueueFail}}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		for round := range 20 {
			b.SetDialError(errors.New("unreachable"))
			fakeRcDrop(t, c, fc)
			var calls []*fakeCall
			for i := range perRound {
				payload := fmt.Appendf(nil, "%0*d", size, round*perRound+i)
				calls = append(calls, fakeAsync(t, func() error {
					return c.Publish(context.Background(), mqtt.Message{Topic: "q", Payload: payload})
				}))
				synctest.Wait()
			}
			for i, call := range calls {
				if call.returned() {
					t.Fatalf("round %d: publish %d returned while offline: %v", round, i, call.err)
				}
			}
			b.SetDialError(nil)
			fc, _ = fakeRcAccept(t, b, &packet.Connack{SessionPresent: true})
			fakeRcExpectEvent(t, c, mqtt.EventConnected)
			fakeRcPayloads(fc, perRound, false)
			for i, call := range calls {
				if err := call.wait(); err != nil {
					t.Fatalf("round %d: publish %d: %v", round, i, err)
				}
			}
		}
	})
}

// TestFakeReconnectPublishAsyncQoS0 checks that PublishAsync returns at once
// for a QoS 0 message made while the client reconnects, as documented.
//
// Bug: PublishAsync (client.go) completes a QoS 0 Pending with the result
// of publishQoS0, which, with no connection, submits the message and waits
// for it to be sent: PublishAsync blocks until the client has reconnected
// (for ever if it never does). Fix: for QoS 0 without a connection, submit
// a Pending through startPublish and return it.
func TestFakeReconnectPublishAsyncQoS0(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "pa", Version: mqtt.Version5, KeepAlive: -1}
		c, b := fakeRcOffline(t, cfg)
		var p *mqtt.Pending
		call := fakeAsync(t, func() error {
			p = c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte("zero")})
			return nil
		})
		if !call.returned() {
			t.Error("PublishAsync of a QoS 0 message blocks while the client reconnects")
		}
		fc := fakeRcOnline(t, c, b)
		fakeRcPayloads(fc, 1, false)
		call.wait()
		if err := p.Wait(context.Background()); err != nil {
			t.Errorf("publish: %v", err)
		}
	})
}

// TestFakeBackoffGaveUpAttempt checks that EventGaveUp reports the number
// of attempts made, as Event.Attempt documents.
//
// Bug: session.run (session.go) emits EventGaveUp without Attempt. Fix:
// carry the attempt count in dialResult.
func TestFakeBackoffGaveUpAttempt(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "ga", Version: mqtt.Version5, KeepAlive: -1,
			Reconnect: mqtt.ReconnectConfig{MinDelay: time.Second, MaxDelay: 4 * time.Second, MaxAttempts: 3}}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		b.SetDialError(errors.New("unreachable"))
		fakeRcDrop(t, c, fc)
		fakeRcExpectEvent(t, c, mqtt.EventReconnecting)
		fakeRcExpectEvent(t, c, mqtt.EventReconnecting)
		if e := fakeRcExpectEvent(t, c, mqtt.EventGaveUp); e.Attempt != 3 {
			t.Errorf("EventGaveUp.Attempt = %d, want 3", e.Attempt)
		}
	})
}

// TestFakeReconnectPingInFlight checks a Ping whose PINGRESP had not come
// when the connection dropped: it must complete after the reconnection
// (answered on the new connection, or failed), not wait for ever.
//
// Bug: connectionEnded (session.go) drops s.pings without answering their
// callers, and Ping waits only for its reply, its context or Done. With
// context.Background it hangs while the client runs. Fix: re-queue the
// pending pings with a reply channel into s.waiting (sent again once
// connected), or fail them.
func TestFakeReconnectPingInFlight(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "pi", Version: mqtt.Version5, KeepAlive: -1}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		call := fakeAsync(t, func() error { _, err := c.Ping(context.Background()); return err })
		fc.expect(packet.PINGREQ)
		fakeRcDrop(t, c, fc)
		fc2, _ := fakeRcAccept(t, b, &packet.Connack{SessionPresent: true})
		for _, p := range fakeRcDrain(fc2) {
			if p.Type() == packet.PINGREQ {
				fc2.send(&packet.Pingresp{})
			}
		}
		if !call.returned() {
			t.Fatal("Ping made before the connection dropped still waits after the reconnection")
		}
	})
}

// TestFakeReconnectSubscribeGaveUp checks that a Subscribe that returned
// context.DeadlineExceeded while the client was reconnecting is not sent
// afterwards: the application believes it is not subscribed, and QoS 1
// messages of a subscription nobody reads would go to Client.Messages and
// hold back every later acknowledgement [MQTT-4.6.0-2].
//
// Bug: drainWaiting (session_publish.go) drops publishes whose context
// ended but sends every waiting subscribeReq (and unsubscribeReq). Fix:
// skip and fail those whose ctx is done.
func TestFakeReconnectSubscribeGaveUp(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "sg", Version: mqtt.Version5, KeepAlive: -1}
		c, b := fakeRcOffline(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := c.Subscribe(ctx, "late/#", 1); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Subscribe: %v, want DeadlineExceeded", err)
		}
		fc := fakeRcOnline(t, c, b)
		fc.expectNothing()
	})
}

// TestFakeResumeReceiveMaximum checks that the re-sending of unacknowledged
// publishes after a reconnection respects the Receive Maximum of the new
// CONNACK [MQTT-4.9.0-2]: with Receive Maximum 1, the second is sent only
// after the first is acknowledged.
//
// Bug: session.resume (session_resume.go) re-sends every outstanding
// PUBLISH whatever s.sendQuota (negative here). Fix: re-send in order only
// while quota remains and leave the rest for publishAcked.
func TestFakeResumeReceiveMaximum(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "rm", Version: mqtt.Version5, KeepAlive: -1, SessionExpiry: time.Hour}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		p1 := c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte("1"), QoS: mqtt.AtLeastOnce})
		p2 := c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte("2"), QoS: mqtt.AtLeastOnce})
		pub1, pub2 := fc.expectPublish(), fc.expectPublish()
		fakeRcDrop(t, c, fc)
		ack := &packet.Connack{SessionPresent: true}
		ack.Props.ReceiveMaximum = 1
		ack.Props.Set(packet.PropReceiveMaximum)
		fc2, _ := fakeRcAccept(t, b, ack)
		if diff := cmp.Diff(fakeRcResent(pub1, true), fc2.expectPublish()); diff != "" {
			t.Errorf("re-sent PUBLISH (-want +got):\n%s", diff)
		}
		fc2.expectNothing()
		fc2.fakeRcAck(packet.PUBACK, pub1.PacketID)
		if diff := cmp.Diff(fakeRcResent(pub2, true), fc2.expectPublish()); diff != "" {
			t.Errorf("re-sent PUBLISH (-want +got):\n%s", diff)
		}
		fc2.fakeRcAck(packet.PUBACK, pub2.PacketID)
		for _, p := range []*mqtt.Pending{p1, p2} {
			if err := p.Wait(context.Background()); err != nil {
				t.Error(err)
			}
		}
	})
}

// TestFakeReconnectAssignedClientID checks that an MQTT 5.0 client whose
// identifier the broker assigned (Config.ClientID empty) reconnects with
// that identifier, so that a persistent session (Clean Start 0, Session
// Expiry set) can be resumed.
//
// Bug: exchange (dial.go) always sends cfg.ClientID; after a reconnection
// an empty identifier makes the broker assign a new one and start a new
// session every time. Fix: send c.ClientID() once one was assigned.
func TestFakeReconnectAssignedClientID(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		ack := &packet.Connack{}
		ack.Props.AssignedClientID = "auto-1"
		ack.Props.Set(packet.PropAssignedClientID)
		cfg := mqtt.Config{Version: mqtt.Version5, KeepAlive: -1, SessionExpiry: time.Hour}
		c, b, fc := fakeRcClient(t, cfg, ack)
		if id := c.ClientID(); id != "auto-1" {
			t.Fatalf("ClientID = %q, want auto-1", id)
		}
		fakeRcDrop(t, c, fc)
		_, cp := fakeRcAccept(t, b, &packet.Connack{SessionPresent: true})
		if cp.ClientID != "auto-1" || cp.CleanStart {
			t.Errorf("CONNECT on reconnect: client %q clean %v, want \"auto-1\" and clean false", cp.ClientID, cp.CleanStart)
		}
	})
}

// TestMosquittoSharedClientIDNoStorm runs two clients with the same Client
// ID against mosquitto for 10 s with the default reconnection settings.
// Each connection takes the session from the other; reconnecting after
// MinDelay every time used to make them do so about 50 times in 10 s.
// mosquitto 2.0.11 closes the connection it takes the session from without
// a DISCONNECT reaching the client, on 3.1.1 and 5.0 alike (the fake-broker
// test TestFakeStormSessionTakenOver covers a DISCONNECT 0x8E): each such
// connection is shorter than HealthyAfter, so the backoff keeps doubling
// and the two make a dozen connections at most.
func TestMosquittoSharedClientIDNoStorm(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			id := uniqueID(t)
			cfg := mqtt.Config{Servers: []string{b.URL()}, ClientID: id, Version: ver.v}
			first := connect(t, cfg)
			second := connect(t, cfg)
			<-time.After(10 * time.Second)
			s1, s2 := first.Stats(), second.Stats()
			total := s1.Connects + s2.Connects
			t.Logf("%d connections in 10 s (%d + %d), %d + %d reconnect attempts",
				total, s1.Connects, s2.Connects, s1.ReconnectAttempts, s2.ReconnectAttempts)
			if total > 14 {
				t.Errorf("%d connections in 10 s by two clients sharing a Client ID; want at most 14", total)
			}
			if s1.ConnectionLosses == 0 || s1.ReconnectAttempts < s1.ConnectionLosses-1 {
				t.Errorf("first client's stats %+v: want its losses and attempts counted", s1)
			}
		})
	}
}

// stormWindow is the interval over which the storm tests count connections.
const stormWindow = 10 * time.Second

// stormCount runs a client against a fake broker that accepts each
// connection with ack and then ends it with hangUp (nil: close at once),
// and returns the connections the client made within stormWindow, the
// client's Stats and its events. Reconnection uses the defaults (MinDelay
// 100 ms, MaxDelay 30 s, HealthyAfter 10 s). It must run inside a bubble.
func stormCount(t *testing.T, v mqtt.ProtocolVersion, ack *packet.Connack, hangUp packet.Packet) (int, mqtt.Stats, []mqtt.Event) {
	t.Helper()
	b := fakebroker.New(t)
	cfg := mqtt.Config{ClientID: "storm", Version: v, KeepAlive: -1, Servers: []string{b.URL()}, Dialer: b.Dial}
	start := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(stormWindow))
	defer cancel()
	connected := make(chan *mqtt.Client, 1)
	go func() {
		c, err := mqtt.Connect(context.Background(), cfg)
		if err != nil {
			t.Error(err)
		}
		connected <- c
	}()
	n := 0
	var c *mqtt.Client
	for {
		bc, err := b.AcceptContext(ctx)
		if err != nil {
			break
		}
		n++
		bc.ExpectConnect(t)
		bc.Send(t, ack)
		if c == nil {
			c = <-connected
			if c == nil {
				t.FailNow()
			}
			t.Cleanup(func() { c.Close() })
		}
		if hangUp != nil {
			bc.Send(t, hangUp)
		}
		bc.Close()
	}
	var events []mqtt.Event
	for len(c.Events()) > 0 {
		events = append(events, <-c.Events())
	}
	return n, c.Stats(), events
}

// TestFakeStormAcceptThenClose: a broker that accepts each connection and
// closes it at once (an authorisation plugin, a quota) used to get a
// connection every ~100 ms (about 90 in 10 s), since any CONNACK reset the
// backoff. The backoff now resets only after a connection lasted
// HealthyAfter, so the waits double: 200 ms, 400 ms, ... (±25 %), at most
// 7 connections in 10 s. Every attempt shows in Stats and as an
// EventReconnecting.
func TestFakeStormAcceptThenClose(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		n, st, events := stormCount(t, v, &packet.Connack{}, nil)
		t.Logf("%d connections in %v", n, stormWindow)
		if n < 4 || n > 7 {
			t.Errorf("%d connections in %v; want 4 to 7 (a doubling backoff)", n, stormWindow)
		}
		if st.ReconnectAttempts < uint64(n-1) || st.ConnectionLosses < uint64(n-1) {
			t.Errorf("Stats: %d reconnect attempts, %d connection losses for %d connections", st.ReconnectAttempts, st.ConnectionLosses, n)
		}
		var prev time.Duration
		for _, e := range events {
			if e.Kind != mqtt.EventReconnecting {
				continue
			}
			if e.Delay < prev {
				t.Errorf("reconnect wait %v after %v: the backoff went back", e.Delay, prev)
			}
			prev = e.Delay
		}
	})
}

// TestFakeStormServerBusy: a broker that ends each connection at once with
// a DISCONNECT saying it is busy, over quota or rate-limited (MQTT 5.0
// reason codes 0x89, 0x97, 0x96, 0x9F) is backed off from: at most 7
// connections in 10 s.
func TestFakeStormServerBusy(t *testing.T) {
	t.Parallel()
	for _, code := range []packet.ReasonCode{packet.ServerBusy, packet.QuotaExceeded, packet.MessageRateTooHigh, packet.ConnectionRateExceeded} {
		t.Run(code.String(), func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) {
				n, _, events := stormCount(t, mqtt.Version5, &packet.Connack{}, &packet.Disconnect{ReasonCode: code})
				if n < 4 || n > 7 {
					t.Errorf("%d connections in %v; want 4 to 7", n, stormWindow)
				}
				for _, e := range events {
					if re, ok := errors.AsType[*mqtt.ReasonError](e.Err); e.Kind == mqtt.EventConnectionLost && (!ok || re.Code != code) {
						t.Errorf("EventConnectionLost with %v, want the DISCONNECT's %v", e.Err, code)
					}
				}
			})
		})
	}
}

// TestFakeStormBusyAfterHealthyConnection: a DISCONNECT saying the server
// is busy does not let even a long connection reset the backoff: the first
// attempt after it waits twice MinDelay, not MinDelay.
func TestFakeStormBusyAfterHealthyConnection(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, b, fc := fakeRcClient(t, mqtt.Config{ClientID: "busy", Version: mqtt.Version5, KeepAlive: -1}, &packet.Connack{})
		fakeAdvance(time.Minute)
		fc.send(&packet.Disconnect{ReasonCode: packet.ServerBusy})
		fakeRcExpectEvent(t, c, mqtt.EventConnectionLost)
		if e := fakeRcExpectEvent(t, c, mqtt.EventReconnecting); !fakeRcWithin(e.Delay, 2*time.Second) {
			t.Errorf("first attempt after Server busy waits %v, want 2 s ±25%% (MinDelay 1 s doubled)", e.Delay)
		}
		fakeRcAccept(t, b, &packet.Connack{})
		fakeRcExpectEvent(t, c, mqtt.EventConnected)
	})
}

// TestFakeStormSessionTakenOver: two clients sharing a Client ID used to
// take the session from each other about 50 times in 10 s. On MQTT 5.0 the
// broker says so (DISCONNECT 0x8E); the client then waits MaxDelay before
// its first attempt, so in 10 s it makes no connection at all, and the
// event says why.
func TestFakeStormSessionTakenOver(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		n, st, events := stormCount(t, mqtt.Version5, &packet.Connack{}, &packet.Disconnect{ReasonCode: packet.SessionTakenOver})
		if n != 1 {
			t.Errorf("%d connections in %v after the session was taken over; want only the first", n, stormWindow)
		}
		if st.ConnectionLosses != 1 || st.ReconnectAttempts != 1 {
			t.Errorf("Stats: %d losses, %d attempts; want 1 and 1 (waiting)", st.ConnectionLosses, st.ReconnectAttempts)
		}
		var sawLost, sawWait bool
		for _, e := range events {
			switch e.Kind {
			case mqtt.EventConnectionLost:
				re, ok := errors.AsType[*mqtt.ReasonError](e.Err)
				sawLost = ok && re.Code == packet.SessionTakenOver
			case mqtt.EventReconnecting:
				sawWait = e.Delay == 30*time.Second
			}
		}
		if !sawLost || !sawWait {
			t.Errorf("events %+v: want EventConnectionLost with Session taken over and EventReconnecting after MaxDelay (30 s)", events)
		}
	})
}

// TestFakeStormShortConnectionsKeepBackingOff: a client whose connections
// end soon after they start (3.1.1 has no DISCONNECT from the server, so a
// session taken over looks like this) keeps growing its backoff across
// them, and starts again from MinDelay only after a connection that lasted
// HealthyAfter.
func TestFakeStormShortConnectionsKeepBackingOff(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "short", Version: mqtt.Version311, KeepAlive: -1}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		want := []time.Duration{2 * time.Second, 4 * time.Second, 4 * time.Second}
		for i, w := range want {
			fakeAdvance(time.Second) // shorter than HealthyAfter
			fc.bc.Close()
			fakeRcExpectEvent(t, c, mqtt.EventConnectionLost)
			if e := fakeRcExpectEvent(t, c, mqtt.EventReconnecting); !fakeRcWithin(e.Delay, w) {
				t.Errorf("connection %d: first attempt waits %v, want %v ±25%%", i+2, e.Delay, w)
			}
			fc, _ = fakeRcAccept(t, b, &packet.Connack{})
			fakeRcExpectEvent(t, c, mqtt.EventConnected)
		}
		if e := fakeRcDrop(t, c, fc); !fakeRcWithin(e.Delay, time.Second) {
			t.Errorf("after a healthy connection the first attempt waits %v, want MinDelay (1 s) ±25%%", e.Delay)
		}
	})
}

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

// fakeConnectRecordingDials connects a client with cfg to b, through a
// Dialer that records each address dialed, and waits for EventConnected.
// dialed returns the addresses so far.
func fakeConnectRecordingDials(t *testing.T, b *fakebroker.Broker, cfg mqtt.Config) (c *mqtt.Client, fc *fakeConn, dialed func() []string) {
	t.Helper()
	var mu sync.Mutex
	var addrs []string
	cfg.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		addrs = append(addrs, addr)
		mu.Unlock()
		return b.Dial(ctx, network, addr)
	}
	res := fakeStartConnect(t, context.Background(), b, cfg)
	bc := fakeAccept(t, b, fakeTimeout)
	bc.Accept(t, false)
	c, err := fakeConnectDone(t, res, fakeTimeout)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	fc = fakeWatch(t, bc, fakeTimeout)
	fakeRcExpectEvent(t, c, mqtt.EventConnected)
	return c, fc, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(addrs)
	}
}

// TestFakeReconnectServerRotation checks that reconnection attempts rotate
// over Config.Servers, starting after the server whose connection was lost,
// and that EventConnected names the server reached.
func TestFakeReconnectServerRotation(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		b := fakebroker.New(t)
		c, fc, dialed := fakeConnectRecordingDials(t, b, mqtt.Config{ClientID: "sr", Version: mqtt.Version5, KeepAlive: -1, Reconnect: fakeRcRetry,
			Servers: []string{"mqtt://one:1883", "mqtt://two:1884"}})
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
		want := []string{"one:1883", "two:1884", "one:1883", "two:1884", "one:1883"}
		if diff := cmp.Diff(want, dialed()); diff != "" {
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

func TestMosquittoPersistentSession(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			id := uniqueID(t)
			// A 3.1.1 session persists only without Clean Session [MQTT-3.1.2-6];
			// a 5.0 one persists after a clean start when it has a Session Expiry.
			cfg := mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-p", Version: ver.v,
				CleanStart: ver.v == mqtt.Version5, SessionExpiry: time.Hour}
			first := connect(t, cfg)
			if first.SessionPresent() {
				t.Fatal("session present on a clean start")
			}
			if _, err := first.Subscribe(ctx, id+"/q", 1); err != nil {
				t.Fatal(err)
			}
			if err := first.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
			pub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-pub", Version: ver.v})
			for i := range 5 {
				if err := pub.Publish(ctx, mqtt.Message{Topic: id + "/q", Payload: []byte(fmt.Sprint(i)), QoS: 1}); err != nil {
					t.Fatal(err)
				}
			}
			cfg.CleanStart = false
			second := connect(t, cfg)
			if !second.SessionPresent() {
				t.Fatal("session not present on resume [MQTT-3.2.2-2]")
			}
			// No Subscribe yet: the queued messages arrive on Client.Messages.
			for i := range 5 {
				got := receive(t, second.Messages())
				if string(got.Payload) != fmt.Sprint(i) {
					t.Fatalf("queued message %d: payload %q", i, got.Payload)
				}
			}
		})
	}
}

// TestFakeFailoverAtOnce: with several servers, losing a healthy
// connection (a cluster node died) sends the first attempt to the next
// server without waiting; an attempt that fails there is followed by the
// backoff, which doubles once per round over the servers: MinDelay before
// the attempts on the other two servers, twice MinDelay once each was
// tried. Paho.mqtt.golang also retries at once, and tries every server
// before it waits.
func TestFakeFailoverAtOnce(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		b := fakebroker.New(t)
		c, fc, dialed := fakeConnectRecordingDials(t, b, mqtt.Config{ClientID: "fo", Version: mqtt.Version311, KeepAlive: -1, Reconnect: fakeRcRetry,
			Servers: []string{"mqtt://one:1883", "mqtt://two:1884", "mqtt://three:1885"}})
		b.SetDialError(errors.New("unreachable"))
		if e := fakeRcDrop(t, c, fc); e.Delay != 0 {
			t.Errorf("first attempt after a healthy connection waits %v, want 0 (another server is configured)", e.Delay)
		}
		for _, w := range []struct {
			attempt int
			delay   time.Duration
		}{{2, time.Second}, {3, time.Second}, {4, 2 * time.Second}} {
			if e := fakeRcExpectEvent(t, c, mqtt.EventReconnecting); e.Attempt != w.attempt || !fakeRcWithin(e.Delay, w.delay) {
				t.Errorf("attempt %d waits %v, want attempt %d after %v ±25%% (the backoff)", e.Attempt, e.Delay, w.attempt, w.delay)
			}
		}
		b.SetDialError(nil)
		fakeRcAccept(t, b, &packet.Connack{SessionPresent: true})
		if e := fakeRcExpectEvent(t, c, mqtt.EventConnected); e.Server != "mqtt://two:1884" {
			t.Errorf("EventConnected.Server = %q, want mqtt://two:1884", e.Server)
		}
		if diff := cmp.Diff([]string{"one:1883", "two:1884", "three:1885", "one:1883", "two:1884"}, dialed()); diff != "" {
			t.Errorf("dialed addresses (-want +got):\n%s", diff)
		}
	})
}

// TestFakeBackoffCountsAttemptTime: the backoff paces the starts of
// attempts, so the time a failed attempt took counts towards the wait
// after it. A cluster node that holds the CONNECT until it gives up (nats-
// server does for js_api_timeout, 5 s, while it elects leaders) is
// followed by the next attempt at once, where waiting the backoff on top
// only delayed the failover; an attempt that failed sooner than the
// backoff waits the rest of it.
func TestFakeBackoffCountsAttemptTime(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "held", Version: mqtt.Version311, KeepAlive: -1}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		fakeRcDrop(t, c, fc)

		bc := fakeAccept(t, b, fakeTimeout)
		bc.ExpectConnect(t)
		fakeAdvance(3 * time.Second) // longer than the next wait, 2 s ±25 %
		bc.Close()
		if e := fakeRcExpectEvent(t, c, mqtt.EventReconnecting); e.Attempt != 2 || e.Delay != 0 {
			t.Errorf("after a CONNECT held 3 s: attempt %d waits %v, want attempt 2 at once", e.Attempt, e.Delay)
		}

		bc = fakeAccept(t, b, fakeTimeout)
		bc.ExpectConnect(t)
		fakeAdvance(time.Second) // shorter than the next wait, 4 s ±25 %
		bc.Close()
		e := fakeRcExpectEvent(t, c, mqtt.EventReconnecting)
		if e.Attempt != 3 || !fakeRcWithin(e.Delay+time.Second, 4*time.Second) {
			t.Errorf("after a CONNECT held 1 s: attempt %d waits %v, want attempt 3 after 4 s ±25%% less the 1 s", e.Attempt, e.Delay)
		}
		fakeRcAccept(t, b, &packet.Connack{SessionPresent: true})
		if waited := time.Since(e.Time); waited != e.Delay {
			t.Errorf("attempt 3 came %v after its EventReconnecting, want its Delay %v", waited, e.Delay)
		}
		fakeRcExpectEvent(t, c, mqtt.EventConnected)
		fakeRcRunning(t, c)
	})
}

// TestFakeBackoffResetsAfterAnsweredConnection: a connection over which
// the broker answered the client, and that lasted a tenth of HealthyAfter
// (1 s), starts the backoff afresh, so that a cluster whose nodes close
// working connections every few seconds while they elect leaders does not
// push the client's waits to MaxDelay. Short connections the broker never
// answered keep growing it (TestFakeStormShortConnectionsKeepBackingOff).
func TestFakeBackoffResetsAfterAnsweredConnection(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "ans", Version: mqtt.Version311, KeepAlive: -1}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		for i, w := range []time.Duration{2 * time.Second, 4 * time.Second} {
			fakeAdvance(time.Second)
			fc.bc.Close()
			fakeRcExpectEvent(t, c, mqtt.EventConnectionLost)
			if e := fakeRcExpectEvent(t, c, mqtt.EventReconnecting); !fakeRcWithin(e.Delay, w) {
				t.Errorf("unanswered connection %d: next wait %v, want %v ±25%%", i+1, e.Delay, w)
			}
			fc, _ = fakeRcAccept(t, b, &packet.Connack{})
			fakeRcExpectEvent(t, c, mqtt.EventConnected)
		}
		fc.send(&packet.Publish{Topic: "t", Payload: []byte("x")}) // the broker answers
		fakeAdvance(time.Second)
		fc.bc.Close()
		fakeRcExpectEvent(t, c, mqtt.EventConnectionLost)
		if e := fakeRcExpectEvent(t, c, mqtt.EventReconnecting); !fakeRcWithin(e.Delay, time.Second) {
			t.Errorf("after a 1 s connection the broker answered on, the wait is %v, want MinDelay (1 s) ±25%%", e.Delay)
		}
	})
}
