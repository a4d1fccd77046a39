//go:build js

package websocket_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/b4e21b16/mqtt/websocket"
	"go.uber.org/goleak"
)

// The tests in this file run in the browser build (GOOS=js GOARCH=wasm)
// under Node.js, whose WebSocket is the browser's API; TestBrowser starts
// them with the URL of a mosquitto WebSocket listener in MQTT_WS_URL.

const browserTimeout = 15 * time.Second

// TestMain checks that no test leaves a goroutine behind, such as a
// connection's receiving goroutine. The runtime's goroutine that handles
// JavaScript events stays.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("runtime.handleEvent"))
}

// browserURL returns the broker's URL, skipping the test without one.
func browserURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("MQTT_WS_URL")
	if u == "" {
		t.Skip("MQTT_WS_URL is not set: TestBrowser runs this test")
	}
	return u
}

// TestBrowserPublishSubscribe connects two clients through the browser's
// WebSocket and exchanges messages at every QoS.
func TestBrowserPublishSubscribe(t *testing.T) {
	server := browserURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	sub, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{server}, ClientID: "browser-sub"})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer sub.Close()
	pub, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{server}, ClientID: "browser-pub", Version: mqtt.Version311})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer pub.Close()
	s, err := sub.Subscribe(ctx, "browser/#", mqtt.ExactlyOnce)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	for _, qos := range []mqtt.QoS{0, 1, 2} {
		want := mqtt.Message{Topic: "browser/qos", Payload: []byte{byte(qos)}, QoS: qos}
		if err := pub.Publish(ctx, want); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		select {
		case m := <-s.Messages():
			if m.Topic != want.Topic || string(m.Payload) != string(want.Payload) || m.QoS != qos {
				t.Errorf("received %s %q QoS %d, want %s %q QoS %d", m.Topic, m.Payload, m.QoS, want.Topic, want.Payload, qos)
			}
		case <-ctx.Done():
			t.Fatalf("QoS %d: no message", qos)
		}
	}
	if err := pub.Disconnect(ctx); err != nil {
		t.Errorf("Disconnect: %v", err)
	}
	if err := sub.Disconnect(ctx); err != nil {
		t.Errorf("Disconnect: %v", err)
	}
}

// dialTransport opens a WebSocket to server with the transport alone, in
// the browser's WebSocket.
func dialTransport(t *testing.T, server string) net.Conn {
	t.Helper()
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	nc, err := (&websocket.Transport{}).Dial(ctx, u, nil, nil)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return nc
}

// TestBrowserDeadline checks that a read deadline interrupts a blocked
// Read without ending the WebSocket, as the client needs: a connection
// whose Read was interrupted still carries CONNECT and CONNACK.
func TestBrowserDeadline(t *testing.T) {
	nc := dialTransport(t, browserURL(t))
	defer nc.Close()
	read := make(chan error, 1)
	go func() {
		_, err := nc.Read(make([]byte, 1))
		read <- err
	}()
	if err := nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := <-read; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read = %v, want os.ErrDeadlineExceeded", err)
	}
	if err := nc.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	connect, err := (&packet.Connect{Version: packet.V311, CleanStart: true, ClientID: "browser-deadline"}).Append(nil, packet.V311)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(connect); err != nil {
		t.Fatalf("Write CONNECT: %v", err)
	}
	pk, err := packet.Read(nc, packet.V311, packet.MaxPacketSize)
	if err != nil {
		t.Fatalf("reading CONNACK: %v", err)
	}
	if ack, ok := pk.(*packet.Connack); !ok || ack.ReasonCode != 0 {
		t.Fatalf("got %#v, want a successful CONNACK", pk)
	}
}

// TestBrowserNoSockets checks that the transports a browser cannot offer
// are refused when the configuration is checked, with an error that says
// why, and that an application's own Dialer still serves mqtt://.
func TestBrowserNoSockets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	for _, server := range []string{"mqtt://127.0.0.1:1883", "tcp://127.0.0.1", "mqtts://127.0.0.1", "tls://127.0.0.1", "unix:///run/mqtt.sock"} {
		c, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{server}})
		if err == nil {
			c.Close()
			t.Fatalf("Connect(%s) succeeded", server)
		}
		var arg *mqtt.ArgumentError
		if !errors.As(err, &arg) || !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "not available in a browser") {
			t.Errorf("Connect(%s) = %v, want an *mqtt.ArgumentError saying it is not available in a browser", server, err)
		}
	}
	errDial := errors.New("dialed by the application")
	var dialed string
	dial := func(_ context.Context, network, addr string) (net.Conn, error) {
		dialed = network + " " + addr
		return nil, errDial
	}
	cfg := mqtt.Config{Servers: []string{"mqtt://broker.test:1883"}, Dialer: dial, Reconnect: mqtt.ReconnectConfig{Disable: true}}
	if _, err := mqtt.Connect(ctx, cfg); !errors.Is(err, errDial) || dialed != "tcp broker.test:1883" {
		t.Errorf("Connect with a Dialer = %v after dialing %q, want the Dialer's error after dialing tcp broker.test:1883", err, dialed)
	}
	cfg.Servers = []string{"mqtts://broker.test"}
	if _, err := mqtt.Connect(ctx, cfg); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Connect(mqtts://) with a Dialer = %v, want TLS on TCP refused", err)
	}
}

// TestBrowserTextMessage checks that a text message from the server ends
// the connection with an error that says so, and that the browser closes
// the WebSocket (with status 1000: a browser sends no other protocol
// status) at once; TestBrowser checks what the server saw.
func TestBrowserTextMessage(t *testing.T) {
	server := os.Getenv("MQTT_WS_TEXT_URL")
	if server == "" {
		t.Skip("MQTT_WS_TEXT_URL is not set: TestBrowser runs this test")
	}
	nc := dialTransport(t, server)
	start := time.Now()
	if _, err := nc.Read(make([]byte, 16)); err == nil || !strings.Contains(err.Error(), "text message") {
		t.Fatalf("Read = %v, want an error about the text message", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Read took %v to end the connection", d)
	}
	nc.Close()
}
