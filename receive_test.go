package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestFakeInboundQoS0 checks that a QoS 0 message reaches the subscription
// with its topic, payload, retain flag and MQTT 5.0 properties, and that the
// client sends nothing back: QoS 0 has no acknowledgement.
func TestFakeInboundQoS0(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, wire packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "r", Version: v}, &packet.Connack{})
		sub := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "in/#"})
		p := &packet.Publish{Topic: "in/a", Payload: []byte("hello"), Retain: true}
		want := mqtt.Message{Topic: "in/a", Payload: []byte("hello"), Retain: true}
		if wire == packet.V5 {
			p.Props.ContentType = "text/plain"
			p.Props.Set(packet.PropContentType)
			p.Props.User = []packet.UserProperty{{Key: "k", Value: "v"}}
			want.ContentType = "text/plain"
			want.UserProperties = []mqtt.UserProperty{{Key: "k", Value: "v"}}
		}
		fc.send(p)
		got := fakeRecv(t, sub.Messages())
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), ignoreAck); diff != "" {
			t.Errorf("message (-want +got):\n%s", diff)
		}
		fc.expectNothing()
	})
}

// TestFakeInboundQoS1AckAfterTake checks that the client sends PUBACK
// [MQTT-4.3.2-2] only once the application has received the message from
// its channel, not when the message arrives: until then the broker keeps
// ownership and flow control holds the stream back.
func TestFakeInboundQoS1AckAfterTake(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "r", Version: v, KeepAlive: -1}, &packet.Connack{})
		sub := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "in/#", QoS: 1})
		fc.send(&packet.Publish{Topic: "in/a", Payload: []byte("one"), QoS: 1, PacketID: 10})
		fakeAdvance(time.Hour)
		fc.expectNothing()
		got := fakeRecv(t, sub.Messages())
		want := mqtt.Message{Topic: "in/a", Payload: []byte("one"), QoS: mqtt.AtLeastOnce}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), ignoreAck); diff != "" {
			t.Errorf("message (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(&packet.Ack{PacketType: packet.PUBACK, PacketID: 10}, fc.expectAck(packet.PUBACK)); diff != "" {
			t.Errorf("PUBACK (-want +got):\n%s", diff)
		}
		fc.expectNothing()
	})
}

// TestFakeInboundQoS2 checks the receiving side of QoS 2 [MQTT-4.3.3-*]:
// PUBREC only after the application took the message; a re-sent PUBLISH with
// DUP before PUBREL is answered with PUBREC again and not delivered twice;
// PUBREL is answered with PUBCOMP; after PUBCOMP the same packet identifier
// starts a new message.
func TestFakeInboundQoS2(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "r", Version: v, KeepAlive: -1}, &packet.Connack{})
		sub := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "in/#", QoS: 2})
		first := &packet.Publish{Topic: "in/a", Payload: []byte("once"), QoS: 2, PacketID: 20}
		fc.send(first)
		fc.expectNothing()
		got := fakeRecv(t, sub.Messages())
		if diff := cmp.Diff(mqtt.Message{Topic: "in/a", Payload: []byte("once"), QoS: mqtt.ExactlyOnce}, got, cmpopts.EquateEmpty(), ignoreAck); diff != "" {
			t.Errorf("message (-want +got):\n%s", diff)
		}
		if a := fc.expectAck(packet.PUBREC); a.PacketID != 20 {
			t.Fatalf("PUBREC for ID %d, want 20", a.PacketID)
		}
		dup := *first
		dup.Dup = true
		fc.send(&dup)
		if a := fc.expectAck(packet.PUBREC); a.PacketID != 20 {
			t.Fatalf("PUBREC for the re-sent PUBLISH has ID %d, want 20", a.PacketID)
		}
		fakeNoMsg(t, sub.Messages())
		fc.send(&packet.Ack{PacketType: packet.PUBREL, PacketID: 20})
		if diff := cmp.Diff(&packet.Ack{PacketType: packet.PUBCOMP, PacketID: 20}, fc.expectAck(packet.PUBCOMP)); diff != "" {
			t.Errorf("PUBCOMP (-want +got):\n%s", diff)
		}
		fc.expectNothing()

		fc.send(&packet.Publish{Topic: "in/b", Payload: []byte("new"), QoS: 2, PacketID: 20})
		if got := fakeRecv(t, sub.Messages()); string(got.Payload) != "new" {
			t.Errorf("after PUBCOMP, a PUBLISH reusing ID 20 delivered %q, want the new message", got.Payload)
		}
		fc.expectAck(packet.PUBREC)
	})
}

// TestFakeInboundQoS2DupBeforeTake checks that a re-sent QoS 2 PUBLISH that
// arrives while the application has not yet taken the first copy is not
// delivered twice, and that one PUBREC follows the take.
func TestFakeInboundQoS2DupBeforeTake(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "r", Version: v, KeepAlive: -1}, &packet.Connack{})
		sub := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "in/#", QoS: 2})
		p := &packet.Publish{Topic: "in/a", Payload: []byte("x"), QoS: 2, PacketID: 30}
		fc.send(p)
		dup := *p
		dup.Dup = true
		fc.send(&dup)
		fc.expectNothing()
		fakeRecv(t, sub.Messages())
		if a := fc.expectAck(packet.PUBREC); a.PacketID != 30 {
			t.Fatalf("PUBREC for ID %d, want 30", a.PacketID)
		}
		fakeNoMsg(t, sub.Messages())
		fc.expectNothing()
	})
}

// TestFakeInboundReusedPacketID checks what the client does when a broker
// sends a different message under a packet ID the client still holds: a
// cluster node that took a session over without the latest state of its
// exchanges does (nats-server 2.15 after a node is killed). A re-send of
// the held message is still delivered once; a different message is
// delivered too, counted in Stats, and acknowledged in its turn, while the
// held one is not acknowledged again.
func TestFakeInboundReusedPacketID(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "r", Version: v, KeepAlive: -1}, &packet.Connack{})
		sub := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "in/#", QoS: 2})

		// QoS 2: PUBREC sent, PUBREL never comes; the ID comes back with
		// another message.
		fc.send(&packet.Publish{Topic: "in/a", Payload: []byte("first"), QoS: 2, PacketID: 7})
		fakeRecv(t, sub.Messages())
		fc.expectAck(packet.PUBREC)
		fc.send(&packet.Publish{Topic: "in/a", Payload: []byte("first"), QoS: 2, PacketID: 7, Dup: true})
		if a := fc.expectAck(packet.PUBREC); a.PacketID != 7 {
			t.Fatalf("PUBREC for the re-send has ID %d, want 7", a.PacketID)
		}
		fakeNoMsg(t, sub.Messages())
		fc.send(&packet.Publish{Topic: "in/a", Payload: []byte("second"), QoS: 2, PacketID: 7})
		if got := fakeRecv(t, sub.Messages()); string(got.Payload) != "second" {
			t.Fatalf("got %q, want the second message under the reused ID", got.Payload)
		}
		if a := fc.expectAck(packet.PUBREC); a.PacketID != 7 {
			t.Fatalf("PUBREC has ID %d, want 7", a.PacketID)
		}
		fc.send(&packet.Ack{PacketType: packet.PUBREL, PacketID: 7})
		fc.expectAck(packet.PUBCOMP)

		if n := c.Stats().ReusedPacketIDs; n != 1 {
			t.Errorf("Stats().ReusedPacketIDs = %d, want 1", n)
		}

		// QoS 1: the held message is taken but not acknowledged yet
		// (ManualAck) when its ID comes back with another; each is
		// delivered, and one PUBACK follows.
		c, fc, _ = fakeClient(t, mqtt.Config{ClientID: "m", Version: v, KeepAlive: -1, ManualAck: true}, &packet.Connack{})
		sub = fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "in/#", QoS: 1})
		fc.send(&packet.Publish{Topic: "in/b", Payload: []byte("x"), QoS: 1, PacketID: 9})
		x := fakeRecv(t, sub.Messages())
		fc.send(&packet.Publish{Topic: "in/b", Payload: []byte("y"), QoS: 1, PacketID: 9})
		y := fakeRecv(t, sub.Messages())
		if string(x.Payload) != "x" || string(y.Payload) != "y" {
			t.Fatalf("got %q and %q, want x and y", x.Payload, y.Payload)
		}
		x.Ack()
		y.Ack()
		if a := fc.expectAck(packet.PUBACK); a.PacketID != 9 {
			t.Fatalf("PUBACK has ID %d, want 9", a.PacketID)
		}
		fc.expectNothing()
		if n := c.Stats().ReusedPacketIDs; n != 1 {
			t.Errorf("Stats().ReusedPacketIDs = %d, want 1", n)
		}
	})
}

// TestFakeInboundAckOrder checks that acknowledgements go out in the order
// the PUBLISH packets arrived, PUBACK for QoS 1 [MQTT-4.6.0-2] and PUBREC for
// QoS 2 [MQTT-4.6.0-3], even when the application takes the messages from
// two subscriptions in the opposite order.
func TestFakeInboundAckOrder(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "r", Version: v, KeepAlive: -1}, &packet.Connack{})
		subA := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "a/#", QoS: 2})
		subB := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "b/#", QoS: 2})
		fc.send(&packet.Publish{Topic: "a/1", QoS: 1, PacketID: 1})
		fc.send(&packet.Publish{Topic: "b/1", QoS: 2, PacketID: 2})
		fc.send(&packet.Publish{Topic: "b/2", QoS: 1, PacketID: 3})
		fakeRecv(t, subB.Messages())
		fakeRecv(t, subB.Messages())
		// Messages 2 and 3 are taken, but 1 arrived first.
		fc.expectNothing()
		fakeRecv(t, subA.Messages())
		var got []*packet.Ack
		for range 3 {
			got = append(got, fc.next().(*packet.Ack))
		}
		want := []*packet.Ack{
			{PacketType: packet.PUBACK, PacketID: 1},
			{PacketType: packet.PUBREC, PacketID: 2},
			{PacketType: packet.PUBACK, PacketID: 3},
		}
		if diff := cmp.Diff(want, got, ignoreAck); diff != "" {
			t.Errorf("acknowledgements (-want +got):\n%s", diff)
		}
	})
}

// TestFakeInboundOverlappingQoS1 checks that a QoS 1 message matching two
// subscriptions reaches both and is acknowledged once, after both took it.
func TestFakeInboundOverlappingQoS1(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "r", Version: v, KeepAlive: -1}, &packet.Connack{})
		subA := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "x/#", QoS: 1})
		subB := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "x/+", QoS: 1})
		fc.send(&packet.Publish{Topic: "x/y", Payload: []byte("both"), QoS: 1, PacketID: 7})
		if m := fakeRecv(t, subA.Messages()); string(m.Payload) != "both" {
			t.Errorf("subscription x/# got %q", m.Payload)
		}
		fc.expectNothing()
		if m := fakeRecv(t, subB.Messages()); string(m.Payload) != "both" {
			t.Errorf("subscription x/+ got %q", m.Payload)
		}
		if a := fc.expectAck(packet.PUBACK); a.PacketID != 7 {
			t.Errorf("PUBACK for ID %d, want 7", a.PacketID)
		}
		fc.expectNothing()
		fakeNoMsg(t, subA.Messages())
	})
}

// TestFakeInboundUnmatchedToMessages checks that a message matching no
// subscription, such as one a resumed session delivers before Subscribe,
// arrives on Client.Messages and is acknowledged when taken there.
func TestFakeInboundUnmatchedToMessages(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "r", Version: v, KeepAlive: -1}, &packet.Connack{SessionPresent: true})
		sub := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "mine/#", QoS: 1})
		fc.send(&packet.Publish{Topic: "old/stuff", Payload: []byte("stored"), QoS: 1, PacketID: 3})
		fc.expectNothing()
		if m := fakeRecv(t, c.Messages()); m.Topic != "old/stuff" {
			t.Errorf("Client.Messages got %q, want old/stuff", m.Topic)
		}
		fc.expectAck(packet.PUBACK)
		fakeNoMsg(t, sub.Messages())
	})
}

// TestFakeUnsubscribeReleasesQueued checks that QoS 1 messages still queued
// for a subscription when it ends are acknowledged (they were discarded by
// the application's choice) and that its channel closes.
func TestFakeUnsubscribeReleasesQueued(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "r", Version: v, KeepAlive: -1}, &packet.Connack{})
		sub := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "q/#", QoS: 1})
		fc.send(&packet.Publish{Topic: "q/1", QoS: 1, PacketID: 1})
		fc.send(&packet.Publish{Topic: "q/2", QoS: 1, PacketID: 2})
		fc.expectNothing()
		call := fakeAsync(t, func() error { return c.Unsubscribe(context.Background(), "q/#") })
		up := fc.expect(packet.UNSUBSCRIBE).(*packet.Unsubscribe)
		fc.send(&packet.Unsuback{PacketID: up.PacketID, ReasonCodes: []packet.ReasonCode{0}})
		if err := call.wait(); err != nil {
			t.Fatalf("Unsubscribe: %v", err)
		}
		for _, id := range []uint16{1, 2} {
			if a := fc.expectAck(packet.PUBACK); a.PacketID != id {
				t.Errorf("PUBACK for ID %d, want %d", a.PacketID, id)
			}
		}
		if !fakeChanClosed(sub.Messages()) {
			t.Error("subscription channel open after Unsubscribe")
		}
	})
}

// TestFakeSlowConsumerDropNewest checks OverflowPolicy DropNewest: with
// MessageBuffer 4 and an application that does not read, 16 of 20 QoS 0
// messages are dropped and counted, the first 4 are kept in order, and the
// client goes on reading: keepalive is answered and the connection stays up.
func TestFakeSlowConsumerDropNewest(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "slow", Version: v, KeepAlive: 10 * time.Second,
			MessageBuffer: 4, QoS0Overflow: mqtt.DropNewest}, &packet.Connack{})
		start := time.Now()
		sub := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "f/#"})
		for i := range 20 {
			fc.send(&packet.Publish{Topic: fmt.Sprintf("f/%d", i)})
		}
		synctest.Wait()
		if got := c.Stats().Dropped; got != 16 {
			t.Errorf("Dropped = %d, want 16", got)
		}
		for _, at := range []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second} {
			fakeExpectPingAt(t, fc, start, at)
			fc.send(&packet.Pingresp{})
		}
		if err := c.Err(); err != nil {
			t.Fatalf("Err = %v", err)
		}
		for i := range 4 {
			if m := fakeRecv(t, sub.Messages()); m.Topic != fmt.Sprintf("f/%d", i) {
				t.Errorf("message %d is %s, want f/%d", i, m.Topic, i)
			}
		}
		fakeNoMsg(t, sub.Messages())
		// Room again: new messages are kept.
		fc.send(&packet.Publish{Topic: "f/new"})
		if m := fakeRecv(t, sub.Messages()); m.Topic != "f/new" {
			t.Errorf("message after the drops is %s, want f/new", m.Topic)
		}
		if got := c.Stats().Dropped; got != 16 {
			t.Errorf("Dropped = %d, want 16", got)
		}
	})
}

// TestFakeSlowConsumerBlock checks OverflowPolicy Block: with a memory
// limit that holds one message, nothing is dropped; the client stops
// reading, which pushes back on the broker (its writes wait); it does not
// declare the connection dead while it holds reading back itself; and every
// message arrives in order once the application reads.
func TestFakeSlowConsumerBlock(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "slow", Version: v, KeepAlive: 10 * time.Second,
			MemoryLimit: 1, QoS0Overflow: mqtt.Block}, &packet.Connack{})
		sub := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "f/#"})
		const n = 60
		var pkts []packet.Packet
		for i := range n {
			pkts = append(pkts, &packet.Publish{Topic: fmt.Sprintf("f/%d", i)})
		}
		sent := fc.sendAsync(pkts...)
		fakeAdvance(25 * time.Second)
		select {
		case err := <-sent:
			t.Fatalf("the broker wrote all %d messages (err %v) while the application read nothing", n, err)
		default:
		}
		if err := c.Err(); err != nil {
			t.Fatalf("Err = %v while the client held reading back", err)
		}
		if got := c.Stats().Dropped; got != 0 {
			t.Errorf("Dropped = %d, want 0", got)
		}
		for i := range n {
			if m := fakeRecv(t, sub.Messages()); m.Topic != fmt.Sprintf("f/%d", i) {
				t.Fatalf("message %d is %s, want f/%d", i, m.Topic, i)
			}
		}
		if err := <-sent; err != nil {
			t.Fatalf("broker send: %v", err)
		}
		fakeNoMsg(t, sub.Messages())
		// Keepalive resumes: the outstanding PINGREQ is answered now.
		for {
			p := fc.next()
			if p.Type() == packet.PINGREQ {
				break
			}
		}
		fc.send(&packet.Pingresp{})
		fakeAdvance(time.Second)
		if err := c.Err(); err != nil {
			t.Fatalf("Err = %v", err)
		}
		if got := c.Stats().Dropped; got != 0 {
			t.Errorf("Dropped = %d, want 0", got)
		}
	})
}

// fakeRcAckMsg acknowledges m, which must succeed.
func fakeRcAckMsg(t *testing.T, m *mqtt.Message) {
	t.Helper()
	if err := m.Ack(); err != nil {
		t.Fatalf("Ack of %q: %v", m.Payload, err)
	}
}

// fakeRcExpectAcks checks that the next packets the client sends are the
// acknowledgements want, and then nothing.
func fakeRcExpectAcks(t *testing.T, fc *fakeConn, want ...*packet.Ack) {
	t.Helper()
	for _, w := range want {
		if diff := cmp.Diff(w, fc.next()); diff != "" {
			t.Errorf("acknowledgement (-want +got):\n%s", diff)
		}
	}
	fc.expectNothing()
}

func fakeRcPuback(id uint16) *packet.Ack { return &packet.Ack{PacketType: packet.PUBACK, PacketID: id} }

// TestFakeManualAckOrder checks Config.ManualAck: taking a QoS 1 message
// from its channel acknowledges nothing; Message.Ack does, but PUBACKs go
// out in the order the messages arrived [MQTT-4.6.0-2]. Acks made in the
// order 3, 1, 2 send nothing after 3, PUBACK 1 after 1, and PUBACK 2 then 3
// after 2. Acking a message again is a harmless no-op.
func TestFakeManualAckOrder(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "ma", Version: v, KeepAlive: -1, ManualAck: true}
		c, _, fc := fakeRcClient(t, cfg, &packet.Connack{})
		sub, _, err := fakeRcSubscribe(t, c, fc, nil, mqtt.Filter{Topic: "m/#", QoS: mqtt.AtLeastOnce})
		if err != nil {
			t.Fatal(err)
		}
		var ms []mqtt.Message
		for id := range uint16(3) {
			payload := []byte{'1' + byte(id)}
			fc.send(&packet.Publish{Topic: "m/x", Payload: payload, QoS: 1, PacketID: id + 1})
			m := fakeRecv(t, sub.Messages())
			if diff := cmp.Diff(mqtt.Message{Topic: "m/x", Payload: payload, QoS: mqtt.AtLeastOnce}, m, cmpopts.EquateEmpty(), ignoreAck); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
			ms = append(ms, m)
		}
		fakeAdvance(time.Minute)
		fc.expectNothing()

		fakeRcAckMsg(t, &ms[2])
		fc.expectNothing()
		fakeRcAckMsg(t, &ms[0])
		fakeRcExpectAcks(t, fc, fakeRcPuback(1))
		fakeRcAckMsg(t, &ms[1])
		fakeRcExpectAcks(t, fc, fakeRcPuback(2), fakeRcPuback(3))
		for i := range ms {
			fakeRcAckMsg(t, &ms[i])
		}
		fc.expectNothing()
	})
}

// TestFakeManualAckQoS2 checks Message.Ack for a QoS 2 message: PUBREC
// goes out only after the Ack, PUBREL is answered with PUBCOMP, and a
// second Ack sends nothing.
func TestFakeManualAckQoS2(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "m2", Version: v, KeepAlive: -1, ManualAck: true}
		c, _, fc := fakeRcClient(t, cfg, &packet.Connack{})
		fc.send(&packet.Publish{Topic: "m", Payload: []byte("two"), QoS: 2, PacketID: 8})
		m := fakeRecv(t, c.Messages())
		fc.expectNothing()
		fakeRcAckMsg(t, &m)
		fakeRcExpectAcks(t, fc, &packet.Ack{PacketType: packet.PUBREC, PacketID: 8})
		fc.fakeRcAck(packet.PUBREL, 8)
		fakeRcExpectAcks(t, fc, &packet.Ack{PacketType: packet.PUBCOMP, PacketID: 8})
		fakeRcAckMsg(t, &m)
		fc.expectNothing()
	})
}

// TestFakeManualAckAcrossReconnect checks ManualAck across a reconnection
// where the broker kept the session: an Ack made while the client is
// reconnecting is sent on the new connection; a message taken but not yet
// acknowledged that the broker sends again with DUP is not delivered twice,
// and its Ack sends its PUBACK on the new connection.
func TestFakeManualAckAcrossReconnect(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "mr", Version: v, KeepAlive: -1, SessionExpiry: time.Hour, ManualAck: true}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		in4 := &packet.Publish{Topic: "m", Payload: []byte("four"), QoS: 1, PacketID: 4}
		in5 := &packet.Publish{Topic: "m", Payload: []byte("five"), QoS: 1, PacketID: 5}
		fc.send(in4)
		fc.send(in5)
		m4, m5 := fakeRecv(t, c.Messages()), fakeRecv(t, c.Messages())
		fc.expectNothing()
		fakeRcDrop(t, c, fc)
		fakeRcAckMsg(t, &m4)

		fc2, _ := fakeRcAccept(t, b, &packet.Connack{SessionPresent: true})
		fakeRcExpectAcks(t, fc2, fakeRcPuback(4))
		fc2.send(fakeRcResent(in5, true))
		fakeNoMsg(t, c.Messages())
		fc2.expectNothing()
		fakeRcAckMsg(t, &m5)
		fakeRcExpectAcks(t, fc2, fakeRcPuback(5))
	})
}

// TestFakeManualAckSessionLost checks a message taken before a
// reconnection where the broker lost the session: its Ack afterwards sends
// nothing, since its packet identifier means nothing to the new session,
// and it does not acknowledge a new message that reuses the identifier.
func TestFakeManualAckSessionLost(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "ml", Version: v, KeepAlive: -1, SessionExpiry: time.Hour, ManualAck: true}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		fc.send(&packet.Publish{Topic: "m", Payload: []byte("old"), QoS: 1, PacketID: 5})
		old := fakeRecv(t, c.Messages())
		fakeRcDrop(t, c, fc)
		fc2, _ := fakeRcAccept(t, b, &packet.Connack{SessionPresent: false})
		fc2.expectNothing()
		fakeRcAckMsg(t, &old)
		fc2.expectNothing()

		fc2.send(&packet.Publish{Topic: "m", Payload: []byte("new"), QoS: 1, PacketID: 5})
		m := fakeRecv(t, c.Messages())
		if string(m.Payload) != "new" {
			t.Fatalf("received %q, want \"new\"", m.Payload)
		}
		fakeRcAckMsg(t, &old)
		fc2.expectNothing()
		fakeRcAckMsg(t, &m)
		fakeRcExpectAcks(t, fc2, fakeRcPuback(5))
	})
}

// TestFakeManualAckBeforeDisconnect checks that Acks made before Disconnect
// are sent before the DISCONNECT, and that Ack on a stopped client reports
// ErrClosed.
func TestFakeManualAckBeforeDisconnect(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "md", Version: v, KeepAlive: -1, ManualAck: true}
		c, _, fc := fakeRcClient(t, cfg, &packet.Connack{})
		fc.send(&packet.Publish{Topic: "m", Payload: []byte("6"), QoS: 1, PacketID: 6})
		fc.send(&packet.Publish{Topic: "m", Payload: []byte("7"), QoS: 1, PacketID: 7})
		fc.send(&packet.Publish{Topic: "m", Payload: []byte("8"), QoS: 1, PacketID: 8})
		m6, m7, m8 := fakeRecv(t, c.Messages()), fakeRecv(t, c.Messages()), fakeRecv(t, c.Messages())
		fc.expectNothing()
		fakeRcAckMsg(t, &m7)
		fakeRcAckMsg(t, &m6)
		if err := c.Disconnect(context.Background()); err != nil {
			t.Fatalf("Disconnect: %v", err)
		}
		want := []packet.Packet{fakeRcPuback(6), fakeRcPuback(7), &packet.Disconnect{}}
		if diff := cmp.Diff(want, fc.expectClosed()); diff != "" {
			t.Errorf("packets before the client closed (-want +got):\n%s", diff)
		}
		if err := m8.Ack(); !errors.Is(err, mqtt.ErrClosed) {
			t.Errorf("Ack after Disconnect: %v, want ErrClosed", err)
		}
	})
}
