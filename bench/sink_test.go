package main

import (
	"bufio"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt/packet"
)

// TestSinkFloodKeepsWindow checks that the flooding sink never has more
// QoS 1 messages unacknowledged than the client's Receive Maximum, and that
// it sends exactly the configured count.
func TestSinkFloodKeepsWindow(t *testing.T) {
	t.Parallel()
	const n, window, receiveMax = 200, 16, 8
	s, err := startSink(floodConfig{n: n, window: window, topic: "bench/topic", payload: make([]byte, 64)})
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
	connect := packet.Connect{Version: packet.V5, CleanStart: true, ClientID: "t"}
	connect.Props.ReceiveMaximum = receiveMax
	connect.Props.Set(packet.PropReceiveMaximum)
	sub := packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "bench/#", QoS: 1}}}
	out := mustAppend(connect.Append(nil, packet.V5))
	out = mustAppend(sub.Append(out, packet.V5))
	if _, err := nc.Write(out); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	var body []byte
	var unacked []uint16
	received, stalls := 0, 0
	for received < n {
		typ, flags, b, err := readPacket(br, body)
		body = b
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && len(unacked) == receiveMax {
			// The window is full and nothing more came: acknowledge it.
			stalls++
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			var acks []byte
			for _, id := range unacked {
				acks = append(acks, encodeAck(5, packet.PUBACK, id)...)
			}
			if _, err := nc.Write(acks); err != nil {
				t.Fatal(err)
			}
			unacked = unacked[:0]
			continue
		}
		if err != nil {
			t.Fatalf("after %d messages: %v", received, err)
		}
		if typ != 3 {
			continue
		}
		if qos := flags >> 1 & 3; qos != 1 {
			t.Fatalf("message %d: QoS %d, want 1", received, qos)
		}
		received++
		tl := int(body[0])<<8 | int(body[1])
		unacked = append(unacked, uint16(body[2+tl])<<8|uint16(body[3+tl]))
		if len(unacked) > receiveMax {
			t.Fatalf("%d messages unacknowledged, Receive Maximum is %d", len(unacked), receiveMax)
		}
		if len(unacked) == receiveMax {
			// Give the sink the chance to overrun the window.
			nc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		}
	}
	if want := n / receiveMax; stalls < want-1 {
		t.Errorf("window filled %d times, want about %d", stalls, want)
	}
	// Nothing beyond n may follow once the last messages are acknowledged.
	var acks []byte
	for _, id := range unacked {
		acks = append(acks, encodeAck(5, packet.PUBACK, id)...)
	}
	nc.SetDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := nc.Write(acks); err != nil {
		t.Fatal(err)
	}
	if typ, _, _, err := readPacket(br, body); err == nil {
		t.Errorf("packet type %d after the last flooded message", typ)
	} else if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("after the flood: %v", err)
	}
}
