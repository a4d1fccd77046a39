package mqtt_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

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
