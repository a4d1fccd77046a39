package sink

import (
	"bufio"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt/packet"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// client is the raw client side of one connection to a sink.
type client struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
	v  packet.Version
}

// dial connects to s with protocol version v and sends CONNECT with the
// given Receive Maximum (0: none), expecting the CONNACK.
func dial(t *testing.T, s *Server, v packet.Version, receiveMax uint16) *client {
	t.Helper()
	nc, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := &client{t: t, nc: nc, br: bufio.NewReader(nc), v: v}
	cp := &packet.Connect{Version: v, CleanStart: true, ClientID: "x"}
	if receiveMax > 0 {
		cp.Props.ReceiveMaximum = receiveMax
		cp.Props.Set(packet.PropReceiveMaximum)
	}
	c.send(cp)
	if p := c.read(); p.Type() != packet.CONNACK {
		t.Fatalf("got %v, want CONNACK", p.Type())
	}
	return c
}

func (c *client) send(ps ...packet.Packet) {
	c.t.Helper()
	var b []byte
	for _, p := range ps {
		var err error
		if b, err = p.Append(b, c.v); err != nil {
			c.t.Fatal(err)
		}
	}
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) readErr() (packet.Packet, error) { return packet.Read(c.br, c.v, 0) }

func (c *client) read() packet.Packet {
	c.t.Helper()
	p, err := c.readErr()
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

// subscribe subscribes to "#" at qos and expects the SUBACK granting it.
func (c *client) subscribe(qos byte) {
	c.t.Helper()
	c.send(&packet.Subscribe{PacketID: 8, Subscriptions: []packet.Subscription{{Filter: "#", QoS: qos}}})
	if a, ok := c.read().(*packet.Suback); !ok || len(a.ReasonCodes) != 1 || a.ReasonCodes[0] != packet.ReasonCode(qos) {
		c.t.Fatalf("got %+v, want SUBACK granting QoS %d", a, qos)
	}
}

func start(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSinkAcksAndFloods(t *testing.T) {
	t.Parallel()
	s := start(t, Options{FloodCount: 10, FloodQoS: 1, FloodPayload: 8, FloodWindow: 2})
	c := dial(t, s, packet.V311, 0)
	c.send(&packet.Publish{Topic: "a", QoS: 1, PacketID: 7})
	if a, ok := c.read().(*packet.Ack); !ok || a.PacketType != packet.PUBACK || a.PacketID != 7 {
		t.Fatalf("got %+v, want PUBACK 7", a)
	}
	c.subscribe(1)
	for i := range 10 {
		p, ok := c.read().(*packet.Publish)
		if !ok || p.QoS != 1 || len(p.Payload) != 8 || p.Topic != "sink/flood" {
			t.Fatalf("flood message %d: %+v", i, p)
		}
		c.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: p.PacketID})
	}
}

// TestSinkCountsPublishes checks Received and the acknowledgements of
// each QoS, with the QoS 2 exchange to its end.
func TestSinkCountsPublishes(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})
	c := dial(t, s, packet.V5, 0)
	c.send(&packet.Publish{Topic: "a"}, &packet.Publish{Topic: "a", QoS: 1, PacketID: 1}, &packet.Publish{Topic: "a", QoS: 2, PacketID: 2})
	if a, ok := c.read().(*packet.Ack); !ok || a.PacketType != packet.PUBACK || a.PacketID != 1 {
		t.Fatalf("got %+v, want PUBACK 1", a)
	}
	if a, ok := c.read().(*packet.Ack); !ok || a.PacketType != packet.PUBREC || a.PacketID != 2 {
		t.Fatalf("got %+v, want PUBREC 2", a)
	}
	c.send(&packet.Ack{PacketType: packet.PUBREL, PacketID: 2})
	if a, ok := c.read().(*packet.Ack); !ok || a.PacketType != packet.PUBCOMP || a.PacketID != 2 {
		t.Fatalf("got %+v, want PUBCOMP 2", a)
	}
	if n := s.Received(); n != 3 {
		t.Errorf("Received() = %d, want 3", n)
	}
}

// TestSinkDisconnectFlushes checks that the answers to packets that came
// with a DISCONNECT are sent before the server closes the connection.
func TestSinkDisconnectFlushes(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})
	c := dial(t, s, packet.V311, 0)
	c.send(&packet.Publish{Topic: "a", QoS: 1, PacketID: 3}, &packet.Pingreq{}, &packet.Disconnect{})
	if a, ok := c.read().(*packet.Ack); !ok || a.PacketType != packet.PUBACK || a.PacketID != 3 {
		t.Fatalf("got %+v, want PUBACK 3", a)
	}
	if p := c.read(); p.Type() != packet.PINGRESP {
		t.Fatalf("got %v, want PINGRESP", p.Type())
	}
	if p, err := c.readErr(); err == nil {
		t.Fatalf("got %v after DISCONNECT, want the connection closed", p.Type())
	}
}

// TestSinkFloodAtGrantedQoS checks that the flood is delivered at the
// lower of FloodQoS and the QoS the subscription was granted, on
// FloodTopic.
func TestSinkFloodAtGrantedQoS(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ flood, sub, want byte }{{1, 0, 0}, {2, 1, 1}, {0, 2, 0}, {2, 2, 2}} {
		s := start(t, Options{FloodCount: 3, FloodQoS: tc.flood, FloodTopic: "bench/topic", FloodPayload: 64})
		c := dial(t, s, packet.V5, 0)
		c.subscribe(tc.sub)
		var ids []uint16
		for i := range 3 {
			p, ok := c.read().(*packet.Publish)
			if !ok || p.QoS != tc.want || p.Topic != "bench/topic" || len(p.Payload) != 64 {
				t.Fatalf("FloodQoS %d, subscribed at %d: message %d is %+v, want QoS %d", tc.flood, tc.sub, i, p, tc.want)
			}
			ids = append(ids, p.PacketID)
		}
		for _, id := range ids {
			switch tc.want {
			case 1:
				c.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: id})
			case 2:
				c.send(&packet.Ack{PacketType: packet.PUBREC, PacketID: id})
				if a, ok := c.read().(*packet.Ack); !ok || a.PacketType != packet.PUBREL || a.PacketID != id {
					t.Fatalf("got %+v, want PUBREL %d", a, id)
				}
				c.send(&packet.Ack{PacketType: packet.PUBCOMP, PacketID: id})
			}
		}
	}
}

// TestSinkFloodLargeMessages checks a flood of messages larger than a
// write batch.
func TestSinkFloodLargeMessages(t *testing.T) {
	t.Parallel()
	s := start(t, Options{FloodCount: 5, FloodQoS: 1, FloodPayload: 3 * floodBatch, FloodWindow: 2})
	c := dial(t, s, packet.V5, 0)
	c.subscribe(1)
	var ids []uint16
	for i := range 5 {
		p, ok := c.read().(*packet.Publish)
		if !ok || len(p.Payload) != 3*floodBatch {
			t.Fatalf("message %d: %v", i, p)
		}
		ids = append(ids, p.PacketID)
		c.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: p.PacketID})
	}
	for i, id := range ids {
		if id != uint16(i+1) {
			t.Errorf("packet identifiers %v, want 1 to 5", ids)
			break
		}
	}
}

// TestSinkFloodKeepsWindow checks that the flooding sink never has more
// QoS 1 messages unacknowledged than the client's Receive Maximum, even
// with a larger FloodWindow, and that it sends exactly FloodCount.
func TestSinkFloodKeepsWindow(t *testing.T) {
	t.Parallel()
	const n, window, receiveMax = 200, 16, 8
	s := start(t, Options{FloodCount: n, FloodQoS: 1, FloodWindow: window, FloodTopic: "bench/topic", FloodPayload: 64})
	c := dial(t, s, packet.V5, receiveMax)
	c.subscribe(1)
	var unacked []uint16
	received, stalls := 0, 0
	for received < n {
		p, err := c.readErr()
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() && len(unacked) == receiveMax {
			// The window is full and nothing more came: acknowledge it.
			stalls++
			c.nc.SetDeadline(time.Now().Add(10 * time.Second))
			c.br.Reset(c.nc)
			for _, id := range unacked {
				c.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: id})
			}
			unacked = unacked[:0]
			continue
		}
		if err != nil {
			t.Fatalf("after %d messages: %v", received, err)
		}
		pub, ok := p.(*packet.Publish)
		if !ok || pub.QoS != 1 {
			t.Fatalf("message %d: %+v, want a QoS 1 PUBLISH", received, p)
		}
		received++
		unacked = append(unacked, pub.PacketID)
		if len(unacked) > receiveMax {
			t.Fatalf("%d messages unacknowledged, Receive Maximum is %d", len(unacked), receiveMax)
		}
		if len(unacked) == receiveMax && c.br.Buffered() == 0 {
			// Give the sink the chance to overrun the window.
			c.nc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		}
	}
	if want := n / receiveMax; stalls < want-1 {
		t.Errorf("window filled %d times, want about %d", stalls, want)
	}
	// Nothing beyond n may follow once the last messages are acknowledged.
	c.nc.SetDeadline(time.Now().Add(50 * time.Millisecond))
	for _, id := range unacked {
		c.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: id})
	}
	if p, err := c.readErr(); err == nil {
		t.Errorf("%v after the last flooded message", p.Type())
	} else if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("after the flood: %v", err)
	}
}
