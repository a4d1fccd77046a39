package mqtt_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/google/go-cmp/cmp"
)

// TestFakeAckUnknownPacketID checks that an acknowledgement for a packet
// identifier the client has not used, or for the wrong step of an exchange,
// ends the connection as a protocol violation whose error names the
// identifier; MQTT 5.0 sends DISCONNECT with Protocol Error (0x82) first.
// A publish in flight fails with the same error.
func TestFakeAckUnknownPacketID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// inFlight is published (QoS 1 or 2) before the ack; 0 for none.
		inFlight mqtt.QoS
		ack      func(inFlightID uint16) packet.Packet
		wantID   string
	}{
		{"PUBACK-never-used", 1, func(uint16) packet.Packet {
			return &packet.Ack{PacketType: packet.PUBACK, PacketID: 777}
		}, "777"},
		{"PUBREC-never-used", 0, func(uint16) packet.Packet {
			return &packet.Ack{PacketType: packet.PUBREC, PacketID: 778}
		}, "778"},
		{"PUBCOMP-never-used", 0, func(uint16) packet.Packet {
			return &packet.Ack{PacketType: packet.PUBCOMP, PacketID: 779}
		}, "779"},
		{"PUBCOMP-for-QoS-1", 1, func(id uint16) packet.Packet {
			return &packet.Ack{PacketType: packet.PUBCOMP, PacketID: id}
		}, ""},
		{"PUBACK-for-QoS-2", 2, func(id uint16) packet.Packet {
			return &packet.Ack{PacketType: packet.PUBACK, PacketID: id}
		}, ""},
		{"SUBACK-never-used", 0, func(uint16) packet.Packet {
			return &packet.Suback{PacketID: 4000, ReasonCodes: []packet.ReasonCode{0}}
		}, "4000"},
		{"UNSUBACK-never-used", 0, func(uint16) packet.Packet {
			return &packet.Unsuback{PacketID: 4001, ReasonCodes: []packet.ReasonCode{0}}
		}, "4001"},
	} {
		for _, ver := range fakeVersions {
			t.Run(tc.name+"/"+ver.name, func(t *testing.T) {
				fakeBubble(t, func(t *testing.T) {
					c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "u", Version: ver.v}, &packet.Connack{})
					var pub *mqtt.Pending
					var id uint16
					if tc.inFlight > 0 {
						pub = c.PublishAsync(mqtt.Message{Topic: "t", QoS: tc.inFlight})
						id = fc.expectPublish().PacketID
					}
					ack := tc.ack(id)
					fc.send(ack)
					err := fakeExpectViolationClose(t, c, fc, ver.wire, packet.ProtocolError)
					wantID := tc.wantID
					if wantID == "" {
						wantID = strconv.Itoa(int(id))
					}
					if !strings.Contains(err.Error(), ack.Type().String()) || !strings.Contains(err.Error(), wantID) {
						t.Errorf("Err = %q; want it to name the %v and packet ID %s", err, ack.Type(), wantID)
					}
					if pub != nil {
						if err := pub.Wait(context.Background()); !errors.Is(err, mqtt.ErrConnectionLost) {
							t.Errorf("in-flight publish completed with %v, want ErrConnectionLost", err)
						}
					}
				})
			})
		}
	}
}

// TestFakePubrelUnknownPacketID checks that a PUBREL for an identifier the
// client holds no QoS 2 message for is answered with PUBCOMP, in MQTT 5.0
// with Packet Identifier not found (0x92), and does not end the connection:
// it is what a broker resends after the client completed the exchange.
func TestFakePubrelUnknownPacketID(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, wire packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "u", Version: v}, &packet.Connack{})
		fc.send(&packet.Ack{PacketType: packet.PUBREL, PacketID: 99})
		got := fc.expectAck(packet.PUBCOMP)
		want := &packet.Ack{PacketType: packet.PUBCOMP, PacketID: 99}
		if wire == packet.V5 {
			want.ReasonCode = packet.PacketIdentifierNotFound
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("PUBCOMP (-want +got):\n%s", diff)
		}
		fc.expectNothing()
		if err := c.Err(); err != nil {
			t.Errorf("Err = %v", err)
		}
	})
}

// TestFakeMalformedFromBroker checks that a packet that breaks the encoding
// rules ends the connection: Err wraps ErrProtocolViolation (and the
// packet package's error), and MQTT 5.0 sends DISCONNECT with the reason code
// the decoder gives first (section 4.13).
func TestFakeMalformedFromBroker(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		raw  func(wire packet.Version) []byte
		code packet.ReasonCode
		is   error
	}{
		{"PUBLISH-QoS-3", func(wire packet.Version) []byte {
			// [MQTT-3.3.1-4]
			if wire == packet.V5 {
				return []byte{0x36, 0x07, 0x00, 0x01, 'a', 0x00, 0x01, 0x00, 'x'}
			}
			return []byte{0x36, 0x06, 0x00, 0x01, 'a', 0x00, 0x01, 'x'}
		}, packet.MalformedPacket, packet.ErrMalformed},
		{"garbage-type-0", func(packet.Version) []byte {
			return []byte{0x00, 0x00}
		}, packet.MalformedPacket, packet.ErrMalformed},
		{"PUBLISH-QoS-0-with-DUP", func(wire packet.Version) []byte {
			// [MQTT-3.3.1-2]
			if wire == packet.V5 {
				return []byte{0x38, 0x05, 0x00, 0x01, 'a', 0x00, 'x'}
			}
			return []byte{0x38, 0x04, 0x00, 0x01, 'a', 'x'}
		}, packet.MalformedPacket, packet.ErrMalformed},
		{"PUBLISH-wildcard-topic", func(wire packet.Version) []byte {
			// [MQTT-3.3.2-2]
			if wire == packet.V5 {
				return []byte{0x30, 0x05, 0x00, 0x01, '#', 0x00, 'x'}
			}
			return []byte{0x30, 0x04, 0x00, 0x01, '#', 'x'}
		}, packet.MalformedPacket, packet.ErrMalformed},
		{"PUBLISH-invalid-UTF-8-topic", func(wire packet.Version) []byte {
			// [MQTT-1.5.4-1]
			if wire == packet.V5 {
				return []byte{0x30, 0x05, 0x00, 0x01, 0xff, 0x00, 'x'}
			}
			return []byte{0x30, 0x04, 0x00, 0x01, 0xff, 'x'}
		}, packet.MalformedPacket, packet.ErrMalformed},
		{"PUBLISH-QoS-1-packet-ID-0", func(wire packet.Version) []byte {
			// [MQTT-2.2.1-3]
			if wire == packet.V5 {
				return []byte{0x32, 0x07, 0x00, 0x01, 'a', 0x00, 0x00, 0x00, 'x'}
			}
			return []byte{0x32, 0x06, 0x00, 0x01, 'a', 0x00, 0x00, 'x'}
		}, packet.ProtocolError, packet.ErrProtocol},
		{"remaining-length-5-bytes", func(packet.Version) []byte {
			return []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f}
		}, packet.MalformedPacket, packet.ErrMalformed},
		{"PUBACK-reserved-flags", func(packet.Version) []byte {
			// [MQTT-2.1.3-1]
			return []byte{0x41, 0x02, 0x00, 0x01}
		}, packet.MalformedPacket, packet.ErrMalformed},
		{"PINGRESP-with-body", func(packet.Version) []byte {
			return []byte{0xd0, 0x01, 0x00}
		}, packet.MalformedPacket, packet.ErrMalformed},
		{"SUBSCRIBE-from-server", func(packet.Version) []byte {
			return []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00}
		}, packet.ProtocolError, packet.ErrProtocol},
		{"PINGREQ-from-server", func(packet.Version) []byte {
			return []byte{0xc0, 0x00}
		}, packet.ProtocolError, packet.ErrProtocol},
	} {
		for _, ver := range fakeVersions {
			t.Run(tc.name+"/"+ver.name, func(t *testing.T) {
				fakeBubble(t, func(t *testing.T) {
					c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "m", Version: ver.v}, &packet.Connack{})
					sent := fakeAsync(t, func() error { return fc.bc.SendRawErr(tc.raw(ver.wire)) })
					err := fakeExpectViolationClose(t, c, fc, ver.wire, tc.code)
					if !errors.Is(err, tc.is) {
						t.Errorf("Err = %v, want it to wrap %v", err, tc.is)
					}
					sent.wait()
				})
			})
		}
	}
}

// TestFakeUnexpectedPacketFromBroker checks that well-formed packets a
// broker must not send once connected end the connection with Protocol
// Error: a second CONNACK, and AUTH without an authentication method.
func TestFakeUnexpectedPacketFromBroker(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		v    mqtt.ProtocolVersion
		wire packet.Version
		p    packet.Packet
	}{
		{"second-CONNACK/v5", mqtt.Version5, packet.V5, &packet.Connack{}},
		{"second-CONNACK/v311", mqtt.Version311, packet.V311, &packet.Connack{}},
		{"AUTH/v5", mqtt.Version5, packet.V5, &packet.Auth{ReasonCode: packet.ContinueAuthentication}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) {
				c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "m", Version: tc.v}, &packet.Connack{})
				fc.send(tc.p)
				err := fakeExpectViolationClose(t, c, fc, tc.wire, packet.ProtocolError)
				if !strings.Contains(err.Error(), tc.p.Type().String()) {
					t.Errorf("Err = %q, want it to name %v", err, tc.p.Type())
				}
			})
		})
	}
}

// TestFakeAuthInV311 checks that an AUTH packet on a 3.1.1 connection, where
// the type does not exist, ends the connection as a protocol violation.
func TestFakeAuthInV311(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "m", Version: mqtt.Version311}, &packet.Connack{})
		fc.sendRaw([]byte{0xf0, 0x00})
		fakeExpectViolationClose(t, c, fc, packet.V311, 0)
	})
}

// TestFakePacketTooLargeFromBroker checks that a packet larger than the
// Maximum Packet Size the client announced, which the broker must not send
// [MQTT-3.1.2-24], ends the connection with Packet too large (0x95, MQTT 5.0
// section 3.1.2.11.4), and that the client announced MaxPacketSize.
func TestFakePacketTooLargeFromBroker(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, wire packet.Version) {
		c, fc, cp := fakeClient(t, mqtt.Config{ClientID: "m", Version: v, MaxPacketSize: 64}, &packet.Connack{})
		if wire == packet.V5 && cp.Props.MaximumPacketSize != 64 {
			t.Errorf("CONNECT Maximum Packet Size = %d, want 64", cp.Props.MaximumPacketSize)
		}
		sent := fc.sendAsync(&packet.Publish{Topic: "big", Payload: make([]byte, 100)})
		err := fakeExpectViolationClose(t, c, fc, wire, packet.PacketTooLarge)
		if !errors.Is(err, packet.ErrTooLarge) {
			t.Errorf("Err = %v, want it to wrap packet.ErrTooLarge", err)
		}
		<-sent
	})
}

// TestFakeReceiveMaximumExceededByBroker checks that an MQTT 5.0 broker
// sending more unacknowledged QoS 1 and 2 messages than the client's Receive
// Maximum [MQTT-3.3.4-9] is tolerated and counted, not answered with a
// DISCONNECT 0x93 that would start a reconnection loop (mosquitto 2.0
// overshoots after a stall): every message is delivered and acknowledged in
// order, and Stats().ReceiveMaximumExceeded counts the excess. A QoS 2
// message counts until the client sent PUBCOMP, so two QoS 2 messages
// awaiting PUBREL fill a Receive Maximum of 2.
func TestFakeReceiveMaximumExceededByBroker(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, cp := fakeClient(t, mqtt.Config{ClientID: "m", Version: mqtt.Version5, ReceiveMaximum: 2}, &packet.Connack{})
		if cp.Props.ReceiveMaximum != 2 {
			t.Fatalf("CONNECT Receive Maximum = %d, want 2", cp.Props.ReceiveMaximum)
		}
		for id := uint16(1); id <= 2; id++ {
			fc.send(&packet.Publish{Topic: "a", QoS: 2, PacketID: id})
			fakeRecv(t, c.Messages())
			if a := fc.expectAck(packet.PUBREC); a.PacketID != id {
				t.Fatalf("PUBREC for ID %d, want %d", a.PacketID, id)
			}
		}
		fc.send(&packet.Ack{PacketType: packet.PUBREL, PacketID: 1})
		fc.expectAck(packet.PUBCOMP)
		fc.send(&packet.Publish{Topic: "a", QoS: 1, PacketID: 3})
		fakeRecv(t, c.Messages())
		fc.expectAck(packet.PUBACK)
		fc.expectNothing()
		if n := c.Stats().ReceiveMaximumExceeded; n != 0 {
			t.Fatalf("ReceiveMaximumExceeded = %d within the limit", n)
		}
		// ID 2 still awaits PUBREL; 4 to 9 are six more unacknowledged
		// messages while the application reads nothing: 4 fills the
		// Receive Maximum, the five others exceed it.
		var flood []packet.Packet
		for id := uint16(4); id <= 9; id++ {
			flood = append(flood, &packet.Publish{Topic: "a", QoS: 1, PacketID: id, Payload: []byte{byte(id)}})
		}
		<-fc.sendAsync(flood...)
		synctest.Wait()
		if n := c.Stats().ReceiveMaximumExceeded; n != 5 {
			t.Errorf("ReceiveMaximumExceeded = %d, want 5", n)
		}
		for id := uint16(4); id <= 9; id++ {
			if m := fakeRecv(t, c.Messages()); m.Payload[0] != byte(id) {
				t.Fatalf("message %d arrived when %d was expected", m.Payload[0], id)
			}
			if a := fc.expectAck(packet.PUBACK); a.PacketID != id {
				t.Fatalf("PUBACK for ID %d, want %d", a.PacketID, id)
			}
		}
		fc.expectNothing()
		if err := c.Err(); err != nil {
			t.Fatalf("Err = %v", err)
		}
	})
}

// TestFakeBrokerClosesMidPacket checks that a broker hanging up in the middle
// of a packet (its fixed header, or its body) or between packets ends the
// client with ErrConnectionLost, not a protocol violation, without a
// DISCONNECT, a panic or a hang, and fails the calls in flight.
func TestFakeBrokerClosesMidPacket(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		raw     []byte
		message string
	}{
		{"in-body", []byte{0x30, 0x0a, 0x00, 0x03, 'a', '/'}, "middle of a packet"},
		{"in-remaining-length", []byte{0x30, 0x80}, "middle of a packet"},
		{"after-first-byte", []byte{0x30}, "middle of a packet"},
		{"between-packets", nil, "closed the connection"},
	} {
		for _, ver := range fakeVersions {
			t.Run(tc.name+"/"+ver.name, func(t *testing.T) {
				fakeBubble(t, func(t *testing.T) {
					c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "m", Version: ver.v}, &packet.Connack{})
					pub := c.PublishAsync(mqtt.Message{Topic: "t", QoS: mqtt.AtLeastOnce})
					fc.expectPublish()
					if tc.raw != nil {
						fc.sendRaw(tc.raw)
					}
					fc.bc.Close()
					err := fakeWaitDone(t, c, fakeTimeout)
					if !errors.Is(err, mqtt.ErrConnectionLost) || errors.Is(err, mqtt.ErrProtocolViolation) {
						t.Errorf("Err = %v, want ErrConnectionLost and no protocol violation", err)
					}
					if !strings.Contains(err.Error(), tc.message) {
						t.Errorf("Err = %q, want it to say %q", err, tc.message)
					}
					if err := pub.Wait(context.Background()); !errors.Is(err, mqtt.ErrConnectionLost) {
						t.Errorf("in-flight publish completed with %v, want ErrConnectionLost", err)
					}
					if err := c.Publish(context.Background(), mqtt.Message{Topic: "t"}); !errors.Is(err, mqtt.ErrConnectionLost) {
						t.Errorf("Publish after the loss = %v, want ErrConnectionLost", err)
					}
				})
			})
		}
	}
}

// TestFakeBrokerClosesMidPacketTCP is TestFakeBrokerClosesMidPacket over a
// real socket, where the end of the connection is a FIN from the kernel.
func TestFakeBrokerClosesMidPacketTCP(t *testing.T) {
	t.Parallel()
	b := fakebroker.NewTCP(t)
	var d net.Dialer
	res := fakeStartConnect(t, context.Background(), b, mqtt.Config{ClientID: "tcp", Version: mqtt.Version5, Dialer: d.DialContext})
	bc := fakeAccept(t, b, fakeTCPTimeout)
	bc.Accept(t, false)
	c, err := fakeConnectDone(t, res, fakeTCPTimeout)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	fc := fakeWatch(t, bc, fakeTCPTimeout)
	pub := c.PublishAsync(mqtt.Message{Topic: "t", QoS: mqtt.AtLeastOnce})
	fc.expectPublish()
	fc.sendRaw([]byte{0x30, 0x0a, 0x00, 0x03, 'a', '/'})
	bc.Close()
	err = fakeWaitDone(t, c, fakeTCPTimeout)
	if !errors.Is(err, mqtt.ErrConnectionLost) || errors.Is(err, mqtt.ErrProtocolViolation) {
		t.Errorf("Err = %v, want ErrConnectionLost and no protocol violation", err)
	}
	select {
	case <-pub.Done():
		if !errors.Is(pub.Err(), mqtt.ErrConnectionLost) {
			t.Errorf("in-flight publish completed with %v, want ErrConnectionLost", pub.Err())
		}
	default:
		t.Error("in-flight publish still pending after Done closed")
	}
}

// TestFakeViolationDrainedAtConnectionEnd: a protocol violation that the
// reader handed to the session before the connection ended is handled
// while connectionEnded drains the session's input. protocolFailCode then
// finds s.conn still set and calls connectionEnded again, which shuts the
// session down; the outer connectionEnded then calls shutdown a second time
// and close(s.stopPumps) panics: "close of closed channel", which takes the
// application down. Here the session has stopped reading (the application
// holds Receive Maximum unacknowledged messages), the broker sends a PUBACK
// for an unknown packet identifier and hangs up.
func TestFakeViolationDrainedAtConnectionEnd(t *testing.T) {
	if !fakeInChildProcess(t) {
		return
	}
	for _, ver := range fakeVersions {
		synctest.Test(t, func(t *testing.T) {
			c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "b", Version: ver.v, ReceiveMaximum: 1, KeepAlive: -1}, &packet.Connack{})
			fc.send(&packet.Publish{Topic: "held", QoS: 1, PacketID: 1})
			fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: 9})
			synctest.Wait()
			fc.bc.Close()
			err := fakeWaitDone(t, c, fakeTimeout)
			if !errors.Is(err, mqtt.ErrConnectionLost) {
				t.Errorf("%s: Err = %v, want ErrConnectionLost", ver.name, err)
			}
		})
	}
}
