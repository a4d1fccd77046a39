package mqtt_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/packet"
)

// TestFakeDeferredWhileCallWaits checks what happens when received QoS 1
// messages reach MemoryLimit while a call waits for the broker (here a QoS
// 1 publish from the receive loop): the client keeps reading, so the call
// completes; the message that does not fit, and every later one on the
// connection, is left unacknowledged (Stats.Deferred, one EventOverflow
// wrapping ErrOverflow), while the ones before it are acknowledged as the
// application takes them. Once the application has caught up, the client
// sends DISCONNECT and reconnects at once, resuming the session, and the
// broker sends the deferred messages again: every message arrives once, in
// order.
func TestFakeDeferredWhileCallWaits(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "def", Version: v, KeepAlive: -1, SessionExpiry: time.Hour, MemoryLimit: 1}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		sub := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "in/#", QoS: 1})

		reply := c.PublishAsync(mqtt.Message{Topic: "reply", QoS: mqtt.AtLeastOnce})
		rp := fc.expectPublish()
		// MemoryLimit 1 holds one message: 1 is held, 2 and 3 are deferred.
		for id := uint16(1); id <= 3; id++ {
			fc.send(&packet.Publish{Topic: "in/x", QoS: 1, PacketID: id, Payload: []byte{byte(id)}})
		}
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: rp.PacketID})
		if err := reply.Wait(context.Background()); err != nil {
			t.Fatalf("the publish waiting while messages overflowed: %v", err)
		}
		ev := fakeRcExpectEvent(t, c, mqtt.EventOverflow)
		if !errors.Is(ev.Err, mqtt.ErrOverflow) {
			t.Errorf("EventOverflow.Err = %v, want ErrOverflow", ev.Err)
		}
		if st := c.Stats(); st.Deferred != 2 {
			t.Errorf("Stats().Deferred = %d, want 2", st.Deferred)
		}
		fc.expectNothing() // no PUBACK for 2 or 3

		if m := fakeRecv(t, sub.Messages()); m.Payload[0] != 1 {
			t.Fatalf("first message has payload %d", m.Payload[0])
		}
		if a := fc.expectAck(packet.PUBACK); a.PacketID != 1 {
			t.Fatalf("PUBACK for %d, want 1", a.PacketID)
		}
		// Caught up: DISCONNECT (the will stays unpublished), then at once a
		// new connection that resumes the session.
		if got := fc.expectClosed(); len(got) != 1 || got[0].Type() != packet.DISCONNECT {
			t.Fatalf("packets before the connection was replaced: %v, want one DISCONNECT", got)
		}
		lost := fakeRcExpectEvent(t, c, mqtt.EventConnectionLost)
		if !errors.Is(lost.Err, mqtt.ErrOverflow) {
			t.Errorf("EventConnectionLost.Err = %v, want ErrOverflow", lost.Err)
		}
		if e := fakeRcExpectEvent(t, c, mqtt.EventReconnecting); e.Delay != 0 {
			t.Errorf("reconnect after catching up waits %v, want 0", e.Delay)
		}
		fc2, cp := fakeRcAccept(t, b, &packet.Connack{SessionPresent: true})
		if cp.CleanStart {
			t.Error("the new connection does not resume the session")
		}
		fakeRcExpectEvent(t, c, mqtt.EventConnected)
		for id := uint16(2); id <= 3; id++ {
			fc2.send(&packet.Publish{Topic: "in/x", QoS: 1, PacketID: id, Dup: true, Payload: []byte{byte(id)}})
		}
		for id := uint16(2); id <= 3; id++ {
			if m := fakeRecv(t, sub.Messages()); m.Payload[0] != byte(id) {
				t.Fatalf("message %d arrived when %d was expected", m.Payload[0], id)
			}
			if a := fc2.expectAck(packet.PUBACK); a.PacketID != id {
				t.Fatalf("PUBACK for %d, want %d", a.PacketID, id)
			}
		}
		fc2.expectNothing()
		if st := c.Stats(); st.Connects != 2 || st.Dropped != 0 {
			t.Errorf("Stats: %d connects, %d dropped; want 2 and 0", st.Connects, st.Dropped)
		}
	})
}

// TestFakeHeldBackWithoutWaitingCall checks that received QoS 1 messages
// over MemoryLimit, with no call waiting for the broker, hold reading back
// instead (nothing deferred, no reconnection), and that a call made while
// the reading is held back still completes: the client reads on, deferring
// what does not fit.
func TestFakeHeldBackWithoutWaitingCall(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "hb", Version: mqtt.Version311, KeepAlive: -1, MemoryLimit: 1}
		c, _, fc := fakeRcClient(t, cfg, &packet.Connack{})
		sub := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "in/#", QoS: 1})
		var flood []packet.Packet
		for id := uint16(1); id <= 20; id++ {
			flood = append(flood, &packet.Publish{Topic: "in/x", QoS: 1, PacketID: id, Payload: []byte{byte(id)}})
		}
		sent := fc.sendAsync(flood...)
		fakeAdvance(time.Minute)
		select {
		case err := <-sent:
			t.Fatalf("the broker wrote all 20 messages (%v) while the client should hold reading back", err)
		default:
		}
		if st := c.Stats(); st.Deferred != 0 {
			t.Fatalf("Deferred = %d with no call waiting", st.Deferred)
		}
		// A ping now must be answered: reading resumes.
		pinged := make(chan error, 1)
		go func() {
			_, err := c.Ping(context.Background())
			pinged <- err
		}()
		fc.expect(packet.PINGREQ)
		answered := fc.sendAsync(&packet.Pingresp{})
		if err := <-pinged; err != nil {
			t.Fatalf("Ping while reading was held back: %v", err)
		}
		<-answered
		<-sent
		if st := c.Stats(); st.Deferred == 0 {
			t.Error("nothing was deferred, although the messages did not fit while a call waited")
		}
		if m := fakeRecv(t, sub.Messages()); m.Payload[0] != 1 {
			t.Fatalf("first message has payload %d", m.Payload[0])
		}
	})
}
