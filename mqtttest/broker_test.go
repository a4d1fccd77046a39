package mqtttest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	mochi "github.com/mochi-mqtt/server/v2"
)

// testTimeout bounds each test's waits.
const testTimeout = 10 * time.Second

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// roundTrip subscribes with sub, publishes with pub and checks that the
// message arrives.
func roundTrip(t testing.TB, pub, sub *mqtt.Client, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	s, err := sub.Subscribe(ctx, topic, mqtt.AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, mqtt.Message{Topic: topic, Payload: []byte("hello"), QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	m := WaitMessage(t, s.Messages(), testTimeout)
	if m.Topic != topic || string(m.Payload) != "hello" {
		t.Fatalf("received %v %q, want %s hello", &m, m.Payload, topic)
	}
}

func TestBrokerTCP(t *testing.T) {
	t.Parallel()
	b := NewBroker(t)
	if !strings.HasPrefix(b.URL(), "mqtt://127.0.0.1:") || b.URL() != "mqtt://"+b.Addr() {
		t.Fatalf("URL %q, Addr %q", b.URL(), b.Addr())
	}
	if b.WebSocketURL() != "" {
		t.Fatalf("WebSocketURL %q without WithWebSocket", b.WebSocketURL())
	}
	for _, v := range []mqtt.ProtocolVersion{mqtt.Version311, mqtt.Version5} {
		c := Connect(t, b.URL(), mqtt.Config{Version: v})
		if c.Connection().Version != v {
			t.Fatalf("connected with %v, want %v", c.Connection().Version, v)
		}
		roundTrip(t, c, c, "tcp/"+c.ClientID())
	}
}

func TestBrokerWebSocket(t *testing.T) {
	t.Parallel()
	b := NewBroker(t, WithWebSocket())
	if !strings.HasPrefix(b.WebSocketURL(), "ws://127.0.0.1:") {
		t.Fatalf("WebSocketURL %q", b.WebSocketURL())
	}
	ws := Connect(t, b.WebSocketURL())
	tcp := Connect(t, b.URL())
	roundTrip(t, ws, tcp, "ws/to/tcp")
	roundTrip(t, tcp, ws, "tcp/to/ws")
	// A large message spans many reads of the WebSocket stream.
	ctx := testContext(t)
	s, err := ws.Subscribe(ctx, "big", mqtt.AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(strings.Repeat("0123456789", 100_000))
	if err := tcp.Publish(ctx, mqtt.Message{Topic: "big", Payload: payload, QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	if m := WaitMessage(t, s.Messages(), testTimeout); string(m.Payload) != string(payload) {
		t.Fatalf("received %d bytes, want %d", len(m.Payload), len(payload))
	}
}

// connectErr connects with cfg to url and returns the error (nil: it
// connected, and the client was closed).
func connectErr(t *testing.T, url string, cfg mqtt.Config) (mqtt.ProtocolVersion, error) {
	t.Helper()
	cfg.Servers = []string{url}
	cfg.ClientID = "probe"
	c, err := mqtt.Connect(testContext(t), cfg)
	if err != nil {
		return 0, err
	}
	v := c.Connection().Version
	return v, c.Close()
}

func wantRefused(t *testing.T, err error, code mqtt.ReasonCode) {
	t.Helper()
	var ce *mqtt.ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v, want a *mqtt.ConnectError", err)
	}
	if ce.Code != code {
		t.Fatalf("CONNACK code %#x (%v), want %#x", byte(ce.Code), err, byte(code))
	}
}

func TestBrokerVersion311(t *testing.T) {
	t.Parallel()
	b := NewBroker(t, WithVersion(mqtt.Version311))
	_, err := connectErr(t, b.URL(), mqtt.Config{Version: mqtt.Version5})
	wantRefused(t, err, 0x01) // 3.1.1 CONNACK: unacceptable protocol version
	v, err := connectErr(t, b.URL(), mqtt.Config{})
	if err != nil || v != mqtt.Version311 {
		t.Fatalf("VersionAuto: %v, %v; want a 3.1.1 connection", v, err)
	}
}

func TestBrokerVersion5(t *testing.T) {
	t.Parallel()
	b := NewBroker(t, WithVersion(mqtt.Version5))
	_, err := connectErr(t, b.URL(), mqtt.Config{Version: mqtt.Version311})
	wantRefused(t, err, 0x01)
	v, err := connectErr(t, b.URL(), mqtt.Config{})
	if err != nil || v != mqtt.Version5 {
		t.Fatalf("VersionAuto: %v, %v; want a 5.0 connection", v, err)
	}
}

func TestBrokerBadVersion(t *testing.T) {
	t.Parallel()
	if b, err := Start(WithVersion(3)); err == nil {
		b.Close()
		t.Fatal("Start accepted protocol version 3")
	}
	wantFatal(t, func(tb testing.TB) { NewBroker(tb, WithVersion(9)) }, "WithVersion(9)")
}

func TestBrokerUsers(t *testing.T) {
	t.Parallel()
	b := NewBroker(t, WithUser("alice", "secret"), WithUser("bob", "hunter2"))
	for _, tc := range []struct {
		name, user, pass string
		ok               bool
	}{
		{"alice", "alice", "secret", true},
		{"bob", "bob", "hunter2", true},
		{"wrong password", "alice", "hunter2", false},
		{"unknown user", "eve", "secret", false},
		{"anonymous", "", "", false},
	} {
		for _, v := range []mqtt.ProtocolVersion{mqtt.Version311, mqtt.Version5} {
			cfg := mqtt.Config{Version: v, Username: tc.user}
			if tc.pass != "" {
				cfg.Password = []byte(tc.pass)
			}
			_, err := connectErr(t, b.URL(), cfg)
			switch {
			case tc.ok && err != nil:
				t.Errorf("%s, %v: %v", tc.name, v, err)
			case !tc.ok && v == mqtt.Version311:
				wantRefused(t, err, 0x05) // not authorized: the broker's 3.1.1 answer to bad credentials
			case !tc.ok:
				wantRefused(t, err, 0x86) // bad user name or password
			}
		}
	}
}

func TestBrokerCapabilities(t *testing.T) {
	t.Parallel()
	b := NewBroker(t, WithCapabilities(func(c *mochi.Capabilities) { c.MaximumQos = 1 }))
	c := Connect(t, b.URL())
	ctx := testContext(t)
	s, err := c.Subscribe(ctx, "caps", mqtt.ExactlyOnce)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Granted()[0].Code; got != 1 {
		t.Fatalf("granted QoS %d, want 1 (the broker's maximum)", got)
	}
}

// TestBrokerClose checks that closing the broker ends the clients'
// connections, and that Close can be called again.
func TestBrokerClose(t *testing.T) {
	t.Parallel()
	b := NewBroker(t)
	c := Connect(t, b.URL(), mqtt.Config{Reconnect: mqtt.ReconnectConfig{Disable: true}})
	// A connection that never sends CONNECT must not keep Close waiting.
	d := NewDialer()
	idle, err := d.Dial(testContext(t), "tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(testTimeout):
		t.Fatal("the client did not notice the broker stopping")
	}
	if !errors.Is(c.Err(), mqtt.ErrConnectionLost) {
		t.Fatalf("client error %v, want ErrConnectionLost", c.Err())
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestBrokerFromServer publishes from the broker side through the inline
// client.
func TestBrokerFromServer(t *testing.T) {
	t.Parallel()
	b := NewBroker(t)
	c := Connect(t, b.URL())
	s, err := c.Subscribe(testContext(t), "from/broker", mqtt.AtMostOnce)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Server().Publish("from/broker", []byte("hi"), false, 0); err != nil {
		t.Fatal(err)
	}
	if m := WaitMessage(t, s.Messages(), testTimeout); string(m.Payload) != "hi" {
		t.Fatalf("payload %q", m.Payload)
	}
}

func TestConnectHelper(t *testing.T) {
	t.Parallel()
	b := NewBroker(t)
	f := new(fakeTB)
	var c *mqtt.Client
	if !f.run(func(tb testing.TB) { c = Connect(tb, b.URL()) }) {
		t.Fatalf("Connect failed: %q", f.fatals)
	}
	if !strings.HasPrefix(c.ClientID(), "mqtttest-") {
		t.Errorf("client ID %q, want a generated one", c.ClientID())
	}
	f.cleanup()
	select {
	case <-c.Done():
	default:
		t.Fatal("the cleanup did not close the client")
	}
	if !errors.Is(c.Err(), mqtt.ErrClosed) {
		t.Fatalf("Err %v after cleanup, want ErrClosed", c.Err())
	}

	wantFatal(t, func(tb testing.TB) { Connect(tb, b.URL(), mqtt.Config{}, mqtt.Config{}) }, "at most one")
	wantFatal(t, func(tb testing.TB) {
		Connect(tb, b.URL(), mqtt.Config{Username: "x", Version: mqtt.Version5, ClientID: "bad\x00id"})
	}, "connect to "+b.URL())
}
