package sink

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt/packet"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSinkAcksAndFloods(t *testing.T) {
	t.Parallel()
	s, err := Start(Options{FloodCount: 10, FloodQoS: 1, FloodPayload: 8, FloodWindow: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	nc, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(nc)
	send := func(p packet.Packet) {
		b, err := p.Append(nil, packet.V311)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	read := func() packet.Packet {
		p, err := packet.Read(br, packet.V311, 0)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	send(&packet.Connect{Version: packet.V311, CleanStart: true, ClientID: "x"})
	if p := read(); p.Type() != packet.CONNACK {
		t.Fatalf("got %v, want CONNACK", p.Type())
	}
	send(&packet.Publish{Topic: "a", QoS: 1, PacketID: 7})
	if a, ok := read().(*packet.Ack); !ok || a.PacketType != packet.PUBACK || a.PacketID != 7 {
		t.Fatalf("got %+v, want PUBACK 7", a)
	}
	send(&packet.Subscribe{PacketID: 8, Subscriptions: []packet.Subscription{{Filter: "#", QoS: 1}}})
	if p := read(); p.Type() != packet.SUBACK {
		t.Fatalf("got %v, want SUBACK", p.Type())
	}
	for i := range 10 {
		p, ok := read().(*packet.Publish)
		if !ok || p.QoS != 1 || len(p.Payload) != 8 {
			t.Fatalf("flood message %d: %+v", i, p)
		}
		send(&packet.Ack{PacketType: packet.PUBACK, PacketID: p.PacketID})
	}
}
