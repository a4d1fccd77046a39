//go:build !js

package websocket_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/packet"
	cws "github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
)

// TestFraming runs a client against a server that frames its packets
// awkwardly: CONNACK split over two frames, two PUBLISH packets in one
// message, one PUBLISH spread over three frames with a ping among them
// [MQTT-6.0.0-2]. The client's own packets must decode from the stream of
// its binary messages, up to the DISCONNECT, after which it ends the
// WebSocket with status 1000.
func TestFraming(t *testing.T) {
	t.Parallel()
	s := startWSServer(t)
	ctx := testContext(t)
	res := connectAsync(t, mqtt.Config{Servers: []string{s.url("/mqtt")}, ClientID: "ws-client", Version: mqtt.Version311})
	p := <-s.peers
	if cp, ok := p.readPacket(packet.V311).(*packet.Connect); !ok || cp.ClientID != "ws-client" {
		t.Fatalf("first packet %#v, want CONNECT from ws-client", cp)
	}
	p.writeMessage([]byte{0x20}, []byte{0x02, 0x00, 0x00})
	r := <-res
	if r.err != nil {
		t.Fatalf("Connect: %v", r.err)
	}
	c := r.c

	// The server reads the client's packets in the background, as it
	// must for the ping's answer to arrive.
	packets := make(chan packet.Packet, 256)
	readErr := make(chan error, 1)
	go func() {
		for {
			pk, err := packet.Read(p, packet.V311, packet.MaxPacketSize)
			if err != nil {
				readErr <- err
				close(packets)
				return
			}
			packets <- pk
		}
	}()

	publish := func(topic, payload string) []byte {
		return encode(t, &packet.Publish{Topic: topic, Payload: []byte(payload)}, packet.V311)
	}
	p.writeMessage(append(publish("a", "one"), publish("b", "two")...))
	third := publish("c", strings.Repeat("three", 100))
	w, err := p.ws.Writer(ctx, cws.MessageBinary)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range [][]byte{third[:1], third[1:200]} {
		if _, err := w.Write(part); err != nil {
			t.Fatal(err)
		}
	}
	// The client answers a ping in the middle of a message.
	if err := p.ws.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if _, err := w.Write(third[200:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		m := receive(t, c.Messages())
		got = append(got, m.Topic+" "+string(m.Payload))
	}
	if diff := cmp.Diff([]string{"a one", "b two", "c " + strings.Repeat("three", 100)}, got); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}

	const n = 200
	for i := range n {
		if err := c.Publish(ctx, mqtt.Message{Topic: "out", Payload: fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
	discErr := make(chan error, 1)
	go func() { discErr <- c.Disconnect(ctx) }()
	for i := range n {
		pk := <-packets
		if pub, ok := pk.(*packet.Publish); !ok || pub.Topic != "out" || string(pub.Payload) != fmt.Sprint(i) {
			t.Fatalf("packet %d: %#v", i, pk)
		}
	}
	if pk := <-packets; pk == nil || pk.Type() != packet.DISCONNECT {
		t.Fatalf("after the publishes: %v, want DISCONNECT", pk)
	}
	if code := cws.CloseStatus(<-readErr); code != cws.StatusNormalClosure {
		t.Errorf("after DISCONNECT: close status %d, want 1000", code)
	}
	if err := <-discErr; err != nil {
		t.Errorf("Disconnect: %v", err)
	}
}

// TestClose checks how connections end: the client ends the WebSocket with
// status 1000 whether it closes or disconnects, takes a close frame with
// status 1000 for the end of the stream, reports another status as the
// cause, and closes with status 1003 on a text message [MQTT-6.0.0-1].
func TestClose(t *testing.T) {
	t.Parallel()
	// start connects a client, without reconnection, to a new server.
	start := func(t *testing.T) (*mqtt.Client, *peer) {
		t.Helper()
		s := startWSServer(t)
		res := connectAsync(t, mqtt.Config{Servers: []string{s.url("/mqtt")}, Version: mqtt.Version311,
			Reconnect: mqtt.ReconnectConfig{Disable: true}})
		p := <-s.peers
		p.accept(packet.V311)
		r := <-res
		if r.err != nil {
			t.Fatalf("Connect: %v", r.err)
		}
		return r.c, p
	}
	t.Run("Close", func(t *testing.T) {
		t.Parallel()
		c, p := start(t)
		closed := make(chan error, 1)
		go func() { closed <- c.Close() }()
		if code := p.readClose(); code != cws.StatusNormalClosure {
			t.Errorf("close status %d, want 1000", code)
		}
		if err := <-closed; err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	t.Run("Disconnect", func(t *testing.T) {
		t.Parallel()
		c, p := start(t)
		done := make(chan error, 1)
		go func() { done <- c.Disconnect(testContext(t)) }()
		if pk := p.readPacket(packet.V311); pk.Type() != packet.DISCONNECT {
			t.Errorf("packet %v, want DISCONNECT", pk.Type())
		}
		if code := p.readClose(); code != cws.StatusNormalClosure {
			t.Errorf("close status %d, want 1000", code)
		}
		if err := <-done; err != nil {
			t.Errorf("Disconnect: %v", err)
		}
	})
	for _, tc := range []struct {
		name   string
		end    func(p *peer)
		want   string         // in the client's error
		status cws.StatusCode // of the client's close frame, if it sends one
	}{
		{"server closes normally", func(p *peer) { p.ws.Close(cws.StatusNormalClosure, "bye") }, "broker closed the connection", 0},
		{"server closes with an error", func(p *peer) { p.ws.Close(cws.StatusInternalError, "overload") },
			`the server closed the WebSocket with status 1011 "overload"`, 0},
		{"text message", func(p *peer) {
			if err := p.ws.Write(context.Background(), cws.MessageText, []byte{0xd0, 0}); err != nil {
				p.t.Errorf("server: %v", err)
			}
		}, "[MQTT-6.0.0-1]", cws.StatusUnsupportedData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, p := start(t)
			tc.end(p)
			if tc.status != 0 {
				if code := p.readClose(); code != tc.status {
					t.Errorf("close status %d, want %d", code, tc.status)
				}
			}
			select {
			case <-c.Done():
			case <-testContext(t).Done():
				t.Fatal("the client did not stop")
			}
			if err := c.Err(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Err() = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
