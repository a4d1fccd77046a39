package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/google/go-cmp/cmp"
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

// TestFakeQueueWaitAdmittedSent checks that a publish that waited for room
// in the offline queue (QueueWait) is sent as soon as the reconnection
// makes room, without waiting for an acknowledgement of another publish.
//
// Bug: drainWaiting (session_publish.go) calls admitOverflow last: the
// publishes it admits land in s.waiting and stay there until something
// else calls drainWaiting (an acknowledgement). With only QoS 0 traffic
// they are never sent, and their Publish calls wait for ever. Fix: drain
// again after admitOverflow admitted anything (loop until neither sends
// nor admits).
func TestFakeQueueWaitAdmittedSent(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "qa", Version: v, KeepAlive: -1, Queue: mqtt.QueueConfig{MaxMessages: 1}}
		c, b := fakeRcOffline(t, cfg)
		c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte("1"), QoS: mqtt.AtLeastOnce})
		c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte("2"), QoS: mqtt.AtLeastOnce})
		synctest.Wait()
		fc := fakeRcOnline(t, c, b)
		if diff := cmp.Diff([]string{"1", "2"}, fakeRcPayloads(fc, 2, false)); diff != "" {
			t.Fatalf("payloads (-want +got):\n%s", diff)
		}
	})
}

// TestFakeQueueOversizedWaits checks a publish whose payload alone exceeds
// Queue.MaxBytes, made while reconnecting under QueueWait: it can never
// fit, so it must either be sent once the client is connected or fail
// (ErrQueueFull) — not stay pending for ever, which also makes Disconnect
// wait for it until its context ends.
//
// Bug: enqueue and admitOverflow (session_publish.go) keep it in
// s.overflow for good; since it heads the overflow list, nothing behind it
// is admitted either. Fix: admit a message into an empty queue whatever
// its size, or refuse it at once.
func TestFakeQueueOversizedWaits(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "qo", Version: mqtt.Version5, KeepAlive: -1, Queue: mqtt.QueueConfig{MaxBytes: 8}}
		c, b := fakeRcOffline(t, cfg)
		p := c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte("0123456789abcdef"), QoS: mqtt.AtLeastOnce})
		synctest.Wait()
		fc := fakeRcOnline(t, c, b)
		for _, pk := range fakeRcDrain(fc) {
			if pub, ok := pk.(*packet.Publish); ok {
				fc.fakeRcAck(packet.PUBACK, pub.PacketID)
			}
		}
		if !fakeRcDone(p) {
			t.Fatal("a publish larger than Queue.MaxBytes is still pending after the reconnection, and nothing was sent")
		}
		if err := p.Err(); err != nil && !errors.Is(err, mqtt.ErrQueueFull) {
			t.Errorf("publish: %v", err)
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

// TestFakeDurableQueueBounds checks that PublishDurable, like every other
// publish made while reconnecting, is bounded by Config.Queue (documented
// as bounding "the publishes that wait to be sent").
//
// Bug: durableReq.handle (durable.go) appends to s.waiting without the
// checks of enqueue: any number of durable publishes queue up in memory
// while offline. Fix: apply Queue.MaxMessages/MaxBytes (fail with
// ErrQueueFull or wait per Queue.Full).
func TestFakeDurableQueueBounds(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "dq", Version: mqtt.Version5, KeepAlive: -1,
			Queue: mqtt.QueueConfig{MaxMessages: 1, Full: mqtt.QueueFail}}
		c, _ := fakeRcOffline(t, cfg)
		if _, err := c.PublishDurable(context.Background(), mqtt.Message{Topic: "d", QoS: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.PublishDurable(context.Background(), mqtt.Message{Topic: "d", QoS: 1}); !errors.Is(err, mqtt.ErrQueueFull) {
			t.Errorf("second durable publish into a full queue: %v, want ErrQueueFull", err)
		}
	})
}
