package mqtt_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var versions = []struct {
	name string
	v    mqtt.ProtocolVersion
}{{"v311", mqtt.Version311}, {"v5", mqtt.Version5}}

func TestMosquittoPublishSubscribeEachQoS(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	for _, ver := range versions {
		for _, qos := range []mqtt.QoS{0, 1, 2} {
			t.Run(fmt.Sprintf("%s/qos%d", ver.name, qos), func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				id := uniqueID(t)
				sub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-sub", Version: ver.v})
				pub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-pub", Version: ver.v})
				if got := sub.Connection().Version; got != ver.v {
					t.Fatalf("ProtocolVersion = %v, want %v", got, ver.v)
				}
				s, err := sub.Subscribe(ctx, id+"/+/temp", qos)
				if err != nil {
					t.Fatalf("Subscribe: %v", err)
				}
				if diff := cmp.Diff([]mqtt.FilterResult{{Filter: id + "/+/temp", Code: mqtt.ReasonCode(qos)}}, s.Granted(), ignoreAck); diff != "" {
					t.Errorf("Granted (-want +got):\n%s", diff)
				}
				const n = 50
				for i := range n {
					m := mqtt.Message{Topic: fmt.Sprintf("%s/%d/temp", id, i), Payload: []byte(fmt.Sprint(i)), QoS: qos}
					if err := pub.Publish(ctx, m); err != nil {
						t.Fatalf("Publish %d: %v", i, err)
					}
				}
				for i := range n {
					got := receive(t, s.Messages())
					want := mqtt.Message{Topic: fmt.Sprintf("%s/%d/temp", id, i), Payload: []byte(fmt.Sprint(i)), QoS: qos}
					if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(mqtt.Message{}, "SubscriptionIDs"), ignoreAck); diff != "" {
						t.Fatalf("message %d (-want +got):\n%s", i, diff)
					}
				}
				if err := pub.Disconnect(ctx); err != nil {
					t.Errorf("Disconnect: %v", err)
				}
				if err := pub.Err(); !errors.Is(err, mqtt.ErrClosed) {
					t.Errorf("Err after Disconnect = %v, want ErrClosed", err)
				}
			})
		}
	}
}

func TestMosquittoPing(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	c := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: uniqueID(t)})
	rtt, err := c.Ping(testContext(t))
	if err != nil || rtt <= 0 || rtt > time.Second {
		t.Fatalf("Ping = %v, %v; want a positive round trip under 1 s", rtt, err)
	}
}

func TestMosquittoBadCredentialsRefused(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Users: map[string]string{"alice": "s3cret"}})
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			c, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{b.URL()}, ClientID: uniqueID(t),
				Username: "alice", Password: []byte("wrong-password"), Version: ver.v})
			var ce *mqtt.ConnectError
			if !errors.As(err, &ce) {
				t.Fatalf("Connect = %v, %v; want *ConnectError", c, err)
			}
			want := mqtt.ReasonCode(0x86) // bad user name or password
			if ver.v == mqtt.Version311 {
				want = 4 // [MQTT-3.2.2.3] return code 4; mosquitto answers 5 (not authorized)
			}
			if ce.Code != want && ce.Code != 5 && ce.Code != 0x87 {
				t.Errorf("Code = %v, want %v (or not authorized)", ce.Code, want)
			}
			if msg := err.Error(); strings.Contains(msg, "wrong-password") {
				t.Errorf("error reveals the password: %s", msg)
			}
			good := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: uniqueID(t),
				Username: "alice", Password: []byte("s3cret"), Version: ver.v})
			if _, err := good.Ping(ctx); err != nil {
				t.Fatalf("Ping with good credentials: %v", err)
			}
		})
	}
}

func TestMosquittoRetained(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			id := uniqueID(t)
			pub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-pub", Version: ver.v})
			if err := pub.Publish(ctx, mqtt.Message{Topic: id + "/state", Payload: []byte("on"), QoS: 1, Retain: true}); err != nil {
				t.Fatal(err)
			}
			sub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-sub", Version: ver.v})
			s, err := sub.Subscribe(ctx, id+"/#", 1)
			if err != nil {
				t.Fatal(err)
			}
			got := receive(t, s.Messages())
			if got.Topic != id+"/state" || string(got.Payload) != "on" || !got.Retain {
				t.Fatalf("got %v retain=%t payload %q; want the retained message", got.Topic, got.Retain, got.Payload)
			}
			// A live publish arrives without the retain flag [MQTT-3.3.1-9].
			if err := pub.Publish(ctx, mqtt.Message{Topic: id + "/state", Payload: []byte("off"), QoS: 1, Retain: true}); err != nil {
				t.Fatal(err)
			}
			if got := receive(t, s.Messages()); got.Retain || string(got.Payload) != "off" {
				t.Fatalf("live message retain=%t payload %q; want retain=false, off", got.Retain, got.Payload)
			}
			// An empty retained payload clears it [MQTT-3.3.1-10].
			if err := pub.Publish(ctx, mqtt.Message{Topic: id + "/state", QoS: 1, Retain: true}); err != nil {
				t.Fatal(err)
			}
			receive(t, s.Messages())
			late := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-late", Version: ver.v})
			ls, err := late.Subscribe(ctx, id+"/#", 1)
			if err != nil {
				t.Fatal(err)
			}
			expectNone(t, ls.Messages(), 200*time.Millisecond)
		})
	}
}

func TestMosquittoWill(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			id := uniqueID(t)
			watcher := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-w", Version: ver.v})
			s, err := watcher.Subscribe(ctx, id+"/status", 1)
			if err != nil {
				t.Fatal(err)
			}
			will := &mqtt.Message{Topic: id + "/status", Payload: []byte("gone"), QoS: 1}

			// Disconnect is graceful: the broker discards the will [MQTT-3.1.2-10].
			graceful := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-g", Version: ver.v, Will: will})
			if err := graceful.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
			expectNone(t, s.Messages(), 300*time.Millisecond)

			// Close drops the connection without DISCONNECT: the will is published [MQTT-3.1.2-8].
			abrupt := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-a", Version: ver.v, Will: will})
			if err := abrupt.Close(); err != nil {
				t.Fatal(err)
			}
			got := receive(t, s.Messages())
			if got.Topic != will.Topic || string(got.Payload) != "gone" {
				t.Fatalf("got %s %q, want the will", got.Topic, got.Payload)
			}
		})
	}
}

func TestMosquittoPersistentSession(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			id := uniqueID(t)
			// A 3.1.1 session persists only without Clean Session [MQTT-3.1.2-6];
			// a 5.0 one persists after a clean start when it has a Session Expiry.
			cfg := mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-p", Version: ver.v,
				CleanStart: ver.v == mqtt.Version5, SessionExpiry: time.Hour}
			first := connect(t, cfg)
			if first.SessionPresent() {
				t.Fatal("session present on a clean start")
			}
			if _, err := first.Subscribe(ctx, id+"/q", 1); err != nil {
				t.Fatal(err)
			}
			if err := first.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
			pub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-pub", Version: ver.v})
			for i := range 5 {
				if err := pub.Publish(ctx, mqtt.Message{Topic: id + "/q", Payload: []byte(fmt.Sprint(i)), QoS: 1}); err != nil {
					t.Fatal(err)
				}
			}
			cfg.CleanStart = false
			second := connect(t, cfg)
			if !second.SessionPresent() {
				t.Fatal("session not present on resume [MQTT-3.2.2-2]")
			}
			// No Subscribe yet: the queued messages arrive on Client.Messages.
			for i := range 5 {
				got := receive(t, second.Messages())
				if string(got.Payload) != fmt.Sprint(i) {
					t.Fatalf("queued message %d: payload %q", i, got.Payload)
				}
			}
		})
	}
}

func TestMosquittoUnsubscribeAndWildcards(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			id := uniqueID(t)
			c := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id, Version: ver.v})
			plus, err := c.Subscribe(ctx, id+"/+/x", 0)
			if err != nil {
				t.Fatal(err)
			}
			hash, err := c.Subscribe(ctx, id+"/#", 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Publish(ctx, mqtt.Message{Topic: id + "/a/x", Payload: []byte("1")}); err != nil {
				t.Fatal(err)
			}
			// Both overlapping subscriptions see it.
			receive(t, plus.Messages())
			receive(t, hash.Messages())
			if err := c.Publish(ctx, mqtt.Message{Topic: id + "/a/y", Payload: []byte("2")}); err != nil {
				t.Fatal(err)
			}
			if got := receive(t, hash.Messages()); string(got.Payload) != "2" {
				t.Fatalf("# got %q", got.Payload)
			}
			if err := c.Unsubscribe(ctx, id+"/+/x"); err != nil {
				t.Fatal(err)
			}
			// The unsubscribed channel is closed.
			select {
			case _, ok := <-plus.Messages():
				if ok {
					t.Fatal("message after Unsubscribe")
				}
			case <-time.After(testTimeout):
				t.Fatal("channel not closed after Unsubscribe")
			}
			if err := c.Publish(ctx, mqtt.Message{Topic: id + "/b/x", Payload: []byte("3")}); err != nil {
				t.Fatal(err)
			}
			if got := receive(t, hash.Messages()); string(got.Payload) != "3" {
				t.Fatalf("# got %q", got.Payload)
			}
		})
	}
}

func TestMosquittoKeepAlive(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			c := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: uniqueID(t), Version: ver.v, KeepAlive: time.Second})
			// An idle client stays connected for several keepalive periods:
			// without PINGREQ the broker would drop it after 1.5 s [MQTT-3.1.2-24].
			select {
			case <-c.Done():
				t.Fatalf("connection ended: %v", c.Err())
			case <-time.After(3500 * time.Millisecond):
			}
			if _, err := c.Ping(testContext(t)); err != nil {
				t.Fatal(err)
			}
		})
	}
}
