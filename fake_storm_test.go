package mqtt_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/packet"
)

// stormWindow is the interval over which the storm tests count connections.
const stormWindow = 10 * time.Second

// stormCount runs a client against a fake broker that accepts each
// connection with ack and then ends it with hangUp (nil: close at once),
// and returns the connections the client made within stormWindow, the
// client's Stats and its events. Reconnection uses the defaults (MinDelay
// 100 ms, MaxDelay 30 s, HealthyAfter 10 s). It must run inside a bubble.
func stormCount(t *testing.T, v mqtt.ProtocolVersion, ack *packet.Connack, hangUp packet.Packet) (int, mqtt.Stats, []mqtt.Event) {
	t.Helper()
	b := fakebroker.New(t)
	cfg := mqtt.Config{ClientID: "storm", Version: v, KeepAlive: -1, Servers: []string{b.URL()}, Dialer: b.Dial}
	start := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(stormWindow))
	defer cancel()
	connected := make(chan *mqtt.Client, 1)
	go func() {
		c, err := mqtt.Connect(context.Background(), cfg)
		if err != nil {
			t.Error(err)
		}
		connected <- c
	}()
	n := 0
	var c *mqtt.Client
	for {
		bc, err := b.AcceptContext(ctx)
		if err != nil {
			break
		}
		n++
		bc.ExpectConnect(t)
		bc.Send(t, ack)
		if c == nil {
			c = <-connected
			if c == nil {
				t.FailNow()
			}
			t.Cleanup(func() { c.Close() })
		}
		if hangUp != nil {
			bc.Send(t, hangUp)
		}
		bc.Close()
	}
	var events []mqtt.Event
	for len(c.Events()) > 0 {
		events = append(events, <-c.Events())
	}
	return n, c.Stats(), events
}

// TestFakeStormAcceptThenClose: a broker that accepts each connection and
// closes it at once (an authorisation plugin, a quota) used to get a
// connection every ~100 ms (about 90 in 10 s), since any CONNACK reset the
// backoff. The backoff now resets only after a connection lasted
// HealthyAfter, so the waits double: 200 ms, 400 ms, ... (±25 %), at most
// 7 connections in 10 s. Every attempt shows in Stats and as an
// EventReconnecting.
func TestFakeStormAcceptThenClose(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		n, st, events := stormCount(t, v, &packet.Connack{}, nil)
		t.Logf("%d connections in %v", n, stormWindow)
		if n < 4 || n > 7 {
			t.Errorf("%d connections in %v; want 4 to 7 (a doubling backoff)", n, stormWindow)
		}
		if st.ReconnectAttempts < uint64(n-1) || st.ConnectionLosses < uint64(n-1) {
			t.Errorf("Stats: %d reconnect attempts, %d connection losses for %d connections", st.ReconnectAttempts, st.ConnectionLosses, n)
		}
		var prev time.Duration
		for _, e := range events {
			if e.Kind != mqtt.EventReconnecting {
				continue
			}
			if e.Delay < prev {
				t.Errorf("reconnect wait %v after %v: the backoff went back", e.Delay, prev)
			}
			prev = e.Delay
		}
	})
}

// TestFakeStormServerBusy: a broker that ends each connection at once with
// a DISCONNECT saying it is busy, over quota or rate-limited (MQTT 5.0
// reason codes 0x89, 0x97, 0x96, 0x9F) is backed off from: at most 7
// connections in 10 s.
func TestFakeStormServerBusy(t *testing.T) {
	t.Parallel()
	for _, code := range []packet.ReasonCode{packet.ServerBusy, packet.QuotaExceeded, packet.MessageRateTooHigh, packet.ConnectionRateExceeded} {
		t.Run(code.String(), func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) {
				n, _, events := stormCount(t, mqtt.Version5, &packet.Connack{}, &packet.Disconnect{ReasonCode: code})
				if n < 4 || n > 7 {
					t.Errorf("%d connections in %v; want 4 to 7", n, stormWindow)
				}
				for _, e := range events {
					if re, ok := errors.AsType[*mqtt.ReasonError](e.Err); e.Kind == mqtt.EventConnectionLost && (!ok || re.Code != code) {
						t.Errorf("EventConnectionLost with %v, want the DISCONNECT's %v", e.Err, code)
					}
				}
			})
		})
	}
}

// TestFakeStormBusyAfterHealthyConnection: a DISCONNECT saying the server
// is busy does not let even a long connection reset the backoff: the first
// attempt after it waits twice MinDelay, not MinDelay.
func TestFakeStormBusyAfterHealthyConnection(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, b, fc := fakeRcClient(t, mqtt.Config{ClientID: "busy", Version: mqtt.Version5, KeepAlive: -1}, &packet.Connack{})
		fakeAdvance(time.Minute)
		fc.send(&packet.Disconnect{ReasonCode: packet.ServerBusy})
		fakeRcExpectEvent(t, c, mqtt.EventConnectionLost)
		if e := fakeRcExpectEvent(t, c, mqtt.EventReconnecting); !fakeRcWithin(e.Delay, 2*time.Second) {
			t.Errorf("first attempt after Server busy waits %v, want 2 s ±25%% (MinDelay 1 s doubled)", e.Delay)
		}
		fakeRcAccept(t, b, &packet.Connack{})
		fakeRcExpectEvent(t, c, mqtt.EventConnected)
	})
}

// TestFakeStormSessionTakenOver: two clients sharing a Client ID used to
// take the session from each other about 50 times in 10 s. On MQTT 5.0 the
// broker says so (DISCONNECT 0x8E); the client then waits MaxDelay before
// its first attempt, so in 10 s it makes no connection at all, and the
// event says why.
func TestFakeStormSessionTakenOver(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		n, st, events := stormCount(t, mqtt.Version5, &packet.Connack{}, &packet.Disconnect{ReasonCode: packet.SessionTakenOver})
		if n != 1 {
			t.Errorf("%d connections in %v after the session was taken over; want only the first", n, stormWindow)
		}
		if st.ConnectionLosses != 1 || st.ReconnectAttempts != 1 {
			t.Errorf("Stats: %d losses, %d attempts; want 1 and 1 (waiting)", st.ConnectionLosses, st.ReconnectAttempts)
		}
		var sawLost, sawWait bool
		for _, e := range events {
			switch e.Kind {
			case mqtt.EventConnectionLost:
				re, ok := errors.AsType[*mqtt.ReasonError](e.Err)
				sawLost = ok && re.Code == packet.SessionTakenOver
			case mqtt.EventReconnecting:
				sawWait = e.Delay == 30*time.Second
			}
		}
		if !sawLost || !sawWait {
			t.Errorf("events %+v: want EventConnectionLost with Session taken over and EventReconnecting after MaxDelay (30 s)", events)
		}
	})
}

// TestFakeStormShortConnectionsKeepBackingOff: a client whose connections
// end soon after they start (3.1.1 has no DISCONNECT from the server, so a
// session taken over looks like this) keeps growing its backoff across
// them, and starts again from MinDelay only after a connection that lasted
// HealthyAfter.
func TestFakeStormShortConnectionsKeepBackingOff(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "short", Version: mqtt.Version311, KeepAlive: -1}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		want := []time.Duration{2 * time.Second, 4 * time.Second, 4 * time.Second}
		for i, w := range want {
			fakeAdvance(time.Second) // shorter than HealthyAfter
			fc.bc.Close()
			fakeRcExpectEvent(t, c, mqtt.EventConnectionLost)
			if e := fakeRcExpectEvent(t, c, mqtt.EventReconnecting); !fakeRcWithin(e.Delay, w) {
				t.Errorf("connection %d: first attempt waits %v, want %v ±25%%", i+2, e.Delay, w)
			}
			fc, _ = fakeRcAccept(t, b, &packet.Connack{})
			fakeRcExpectEvent(t, c, mqtt.EventConnected)
		}
		if e := fakeRcDrop(t, c, fc); !fakeRcWithin(e.Delay, time.Second) {
			t.Errorf("after a healthy connection the first attempt waits %v, want MinDelay (1 s) ±25%%", e.Delay)
		}
	})
}
