package mqtttest

import (
	"errors"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
)

// TestCutReconnects cuts the connection under a client with reconnection
// enabled: the client must report the loss, dial again through the same
// Dialer, and keep its subscription.
func TestCutReconnects(t *testing.T) {
	t.Parallel()
	b := NewBroker(t)
	d := NewDialer()
	c := Connect(t, b.URL(), mqtt.Config{
		Dialer:    d.Dial,
		Reconnect: mqtt.ReconnectConfig{MinDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond},
	})
	ctx := testContext(t)
	sub, err := c.Subscribe(ctx, "cut/#", mqtt.AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}
	WaitEvent(t, c.Events(), mqtt.EventConnected, testTimeout)

	d.Last().Cut()
	lost := WaitEvent(t, c.Events(), mqtt.EventConnectionLost, testTimeout)
	if !errors.Is(lost.Err, ErrCut) {
		t.Errorf("connection lost because of %v, want ErrCut", lost.Err)
	}
	if e := WaitEvent(t, c.Events(), mqtt.EventConnected, testTimeout); e.SessionPresent {
		t.Fatal("the broker kept a session that expires with the connection")
	}
	// The broker lost the session with the connection: the client
	// subscribes again before messages can flow.
	if e := WaitEvent(t, c.Events(), mqtt.EventResubscribed, testTimeout); e.Err != nil {
		t.Fatal(e.Err)
	}
	if n := d.Dials(); n != 2 {
		t.Fatalf("%d dials, want 2", n)
	}

	pub := Connect(t, b.URL())
	if err := pub.Publish(ctx, mqtt.Message{Topic: "cut/after", Payload: []byte("x"), QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	if m := WaitMessage(t, sub.Messages(), testTimeout); m.Topic != "cut/after" {
		t.Fatalf("received %v", &m)
	}
	if d.Last().BytesRead() == 0 || d.Last().BytesWritten() == 0 {
		t.Fatal("no bytes counted on the new connection")
	}
}

// TestRefuseThenAllow keeps the broker unreachable for a few attempts.
func TestRefuseThenAllow(t *testing.T) {
	t.Parallel()
	b := NewBroker(t)
	d := NewDialer()
	c := Connect(t, b.URL(), mqtt.Config{
		Dialer:    d.Dial,
		Reconnect: mqtt.ReconnectConfig{MinDelay: 5 * time.Millisecond, MaxDelay: 20 * time.Millisecond},
	})
	d.Refuse(errors.New("unreachable"))
	d.Cut()
	WaitEvent(t, c.Events(), mqtt.EventConnectionLost, testTimeout)
	for range 3 {
		WaitEvent(t, c.Events(), mqtt.EventReconnecting, testTimeout)
	}
	if d.Dials() != 1 {
		t.Fatalf("%d connections while refusing, want 1", d.Dials())
	}
	d.Refuse(nil)
	WaitEvent(t, c.Events(), mqtt.EventConnected, testTimeout)
	if _, err := c.Ping(testContext(t)); err != nil {
		t.Fatal(err)
	}
}

// TestStallKeepAliveTimeout stalls the connection: the client gets no
// PINGRESP and must give the connection up with ErrKeepAliveTimeout.
func TestStallKeepAliveTimeout(t *testing.T) {
	t.Parallel()
	b := NewBroker(t)
	d := NewDialer()
	c := Connect(t, b.URL(), mqtt.Config{
		Dialer:      d.Dial,
		KeepAlive:   time.Second,
		PingTimeout: 200 * time.Millisecond,
		Reconnect:   mqtt.ReconnectConfig{Disable: true},
	})
	start := time.Now()
	d.Last().Stall()
	select {
	case <-c.Done():
	case <-time.After(testTimeout):
		t.Fatal("the client did not notice the stalled connection")
	}
	if !errors.Is(c.Err(), mqtt.ErrKeepAliveTimeout) {
		t.Fatalf("client stopped with %v, want ErrKeepAliveTimeout", c.Err())
	}
	if took := time.Since(start); took < time.Second {
		t.Fatalf("gave up after %v, before a keepalive period passed", took)
	}
}

// TestDelayShowsInPing checks that the per-write delay reaches the client.
func TestDelayShowsInPing(t *testing.T) {
	t.Parallel()
	b := NewBroker(t)
	d := NewDialer()
	c := Connect(t, b.URL(), mqtt.Config{Dialer: d.Dial})
	const delay = 100 * time.Millisecond
	d.SetDelay(delay)
	rtt, err := c.Ping(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if rtt < delay {
		t.Fatalf("ping round trip %v, want at least the %v delay", rtt, delay)
	}
}

// TestFaultWebSocket cuts a WebSocket connection: the Dialer wraps the TCP
// connection under the WebSocket.
func TestFaultWebSocket(t *testing.T) {
	t.Parallel()
	b := NewBroker(t, WithWebSocket())
	d := NewDialer()
	c := Connect(t, b.WebSocketURL(), mqtt.Config{
		Dialer:    d.Dial,
		Reconnect: mqtt.ReconnectConfig{MinDelay: 10 * time.Millisecond},
	})
	d.WaitDials(t, 1, testTimeout).Cut()
	WaitEvent(t, c.Events(), mqtt.EventConnectionLost, testTimeout)
	WaitEvent(t, c.Events(), mqtt.EventConnected, testTimeout)
	if _, err := c.Ping(testContext(t)); err != nil {
		t.Fatal(err)
	}
}
