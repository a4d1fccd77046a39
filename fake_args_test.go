package mqtt_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/packet"
)

// fakeCheckArgumentError checks that err is an *ArgumentError wrapping
// ErrInvalidArgument and cause, about what.
func fakeCheckArgumentError(t *testing.T, err error, what string, cause error) {
	t.Helper()
	if !errors.Is(err, mqtt.ErrInvalidArgument) {
		t.Errorf("error = %v, want it to wrap ErrInvalidArgument", err)
		return
	}
	var ae *mqtt.ArgumentError
	if !errors.As(err, &ae) {
		t.Errorf("error = %v (%T), want a *mqtt.ArgumentError", err, err)
		return
	}
	if ae.What != what {
		t.Errorf("ArgumentError.What = %q, want %q", ae.What, what)
	}
	if cause != nil && !errors.Is(err, cause) {
		t.Errorf("error = %v, want it to wrap %v", err, cause)
	}
}

// TestFakeInvalidPublish checks that Publish and PublishAsync refuse an
// invalid message with an *ArgumentError before anything is sent: an empty
// topic [MQTT-4.7.3-1], wildcards in a topic name [MQTT-3.3.2-2], invalid
// UTF-8 [MQTT-1.5.4-1], U+0000 [MQTT-1.5.4-2], QoS 3 [MQTT-3.3.1-4].
func TestFakeInvalidPublish(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "a", Version: v}, &packet.Connack{})
		for _, tc := range []struct {
			name  string
			m     mqtt.Message
			what  string
			cause error
		}{
			{"empty topic", mqtt.Message{Topic: ""}, "topic", packet.ErrEmptyTopic},
			{"plus in topic", mqtt.Message{Topic: "a/+/b"}, "topic", packet.ErrWildcardInTopic},
			{"hash in topic", mqtt.Message{Topic: "a/#"}, "topic", packet.ErrWildcardInTopic},
			{"invalid UTF-8", mqtt.Message{Topic: "a/\xff"}, "topic", packet.ErrTopicEncoding},
			{"surrogate", mqtt.Message{Topic: "a/\xed\xa0\x80"}, "topic", packet.ErrTopicEncoding},
			{"U+0000", mqtt.Message{Topic: "a\x00b"}, "topic", packet.ErrTopicEncoding},
			{"QoS 3", mqtt.Message{Topic: "a", QoS: 3}, "QoS", nil},
			{"response topic with wildcard", mqtt.Message{Topic: "a", ResponseTopic: "r/#"}, "response topic", packet.ErrWildcardInTopic},
			{"user property U+0000", mqtt.Message{Topic: "a", UserProperties: []mqtt.UserProperty{{Key: "k\x00", Value: "v"}}}, "user property", nil},
		} {
			for _, qos := range []mqtt.QoS{0, 1, 2} {
				m := tc.m
				if m.QoS == 0 {
					m.QoS = qos
				}
				fakeCheckArgumentError(t, c.Publish(context.Background(), m), tc.what, tc.cause)
				pub := c.PublishAsync(m)
				select {
				case <-pub.Done():
				default:
					t.Errorf("%s: PublishAsync of an invalid message did not complete at once", tc.name)
					continue
				}
				fakeCheckArgumentError(t, pub.Err(), tc.what, tc.cause)
			}
		}
		fc.expectNothing()
		if err := c.Err(); err != nil {
			t.Errorf("Err = %v", err)
		}
	})
}

// TestFakeInvalidSubscribe checks that Subscribe and Unsubscribe refuse
// invalid filters and options with an *ArgumentError before anything is
// sent: '#' not last [MQTT-4.7.1-1], '+' not a whole level [MQTT-4.7.1-2], an
// empty filter [MQTT-4.7.3-1], invalid UTF-8, a malformed shared
// subscription, QoS 3 [MQTT-3.8.3-4] and Retain Handling 3.
func TestFakeInvalidSubscribe(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "a", Version: v}, &packet.Connack{})
		for _, tc := range []struct {
			f     mqtt.Filter
			what  string
			cause error
		}{
			{mqtt.Filter{Topic: "a/#/b"}, "topic filter", packet.ErrMisplacedHash},
			{mqtt.Filter{Topic: "a#"}, "topic filter", packet.ErrMisplacedHash},
			{mqtt.Filter{Topic: "a+"}, "topic filter", packet.ErrMisplacedPlus},
			{mqtt.Filter{Topic: "a/+b"}, "topic filter", packet.ErrMisplacedPlus},
			{mqtt.Filter{Topic: ""}, "topic filter", packet.ErrEmptyTopic},
			{mqtt.Filter{Topic: "a/\xff"}, "topic filter", packet.ErrTopicEncoding},
			{mqtt.Filter{Topic: "a\x00"}, "topic filter", packet.ErrTopicEncoding},
			{mqtt.Filter{Topic: "$share/g"}, "topic filter", packet.ErrBadSharedFilter},
			{mqtt.Filter{Topic: "a", QoS: 3}, "QoS", nil},
			{mqtt.Filter{Topic: "a", RetainHandling: 3}, "retain handling", nil},
		} {
			var sub *mqtt.Subscription
			var err error
			if tc.f.RetainHandling != 0 {
				sub, err = c.SubscribeFilters(context.Background(), tc.f)
			} else {
				sub, err = c.Subscribe(context.Background(), tc.f.Topic, tc.f.QoS)
			}
			if sub != nil {
				t.Errorf("Subscribe(%+v) returned a subscription", tc.f)
			}
			fakeCheckArgumentError(t, err, tc.what, tc.cause)
			// One bad filter among good ones spoils the whole request.
			sub, err = c.SubscribeFilters(context.Background(), mqtt.Filter{Topic: "good"}, tc.f)
			if sub != nil {
				t.Errorf("SubscribeFilters(good, %+v) returned a subscription", tc.f)
			}
			fakeCheckArgumentError(t, err, tc.what, tc.cause)
			if tc.what == "topic filter" {
				fakeCheckArgumentError(t, c.Unsubscribe(context.Background(), "good", tc.f.Topic), tc.what, tc.cause)
			}
		}
		_, err := c.SubscribeFilters(context.Background())
		fakeCheckArgumentError(t, err, "topic filter", nil)
		fakeCheckArgumentError(t, c.Unsubscribe(context.Background()), "topic filter", nil)
		fc.expectNothing()
	})
}

// TestFakeBrokerLimitsCheckedBeforeSending checks that the limits an MQTT 5.0
// broker announces in CONNACK are applied before sending: a publish larger
// than its Maximum Packet Size [MQTT-3.2.2-15], above its Maximum QoS
// [MQTT-3.2.2-11] or retained where Retain Available is 0 [MQTT-3.2.2-14]
// fails with an *ArgumentError and nothing is written; one that fits
// exactly goes out.
func TestFakeBrokerLimitsCheckedBeforeSending(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		ack := &packet.Connack{}
		ack.Props.MaximumPacketSize = 100
		ack.Props.Set(packet.PropMaximumPacketSize)
		ack.Props.MaximumQoS = 1
		ack.Props.Set(packet.PropMaximumQoS)
		ack.Props.RetainAvailable = 0
		ack.Props.Set(packet.PropRetainAvailable)
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "lim", Version: mqtt.Version5}, ack)
		// QoS 1 PUBLISH of topic "t": 1 + 1 + (2+1 topic, 2 ID, 1 properties)
		// + payload bytes.
		fits := make([]byte, 100-8)
		for _, tc := range []struct {
			qos  mqtt.QoS
			size int
		}{{0, 200}, {1, 200}, {0, 100 - 6 + 1}, {1, 100 - 8 + 1}} {
			big := make([]byte, tc.size)
			err := c.Publish(context.Background(), mqtt.Message{Topic: "t", Payload: big, QoS: tc.qos})
			fakeCheckArgumentError(t, err, "payload", packet.ErrTooLarge)
			pub := c.PublishAsync(mqtt.Message{Topic: "t", Payload: big, QoS: tc.qos})
			fakeCheckArgumentError(t, pub.Wait(context.Background()), "payload", packet.ErrTooLarge)
		}
		fakeCheckArgumentError(t, c.Publish(context.Background(), mqtt.Message{Topic: "t", QoS: 2}), "QoS", nil)
		fakeCheckArgumentError(t, c.Publish(context.Background(), mqtt.Message{Topic: "t", Retain: true}), "retain flag", nil)
		fc.expectNothing()

		pub := c.PublishAsync(mqtt.Message{Topic: "t", Payload: fits, QoS: 1})
		p := fc.expectPublish()
		if n := p.Size(packet.V5); n != 100 {
			t.Errorf("PUBLISH size %d, want exactly 100", n)
		}
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: p.PacketID})
		if err := pub.Wait(context.Background()); err != nil {
			t.Errorf("Publish of exactly Maximum Packet Size: %v", err)
		}
	})
}

// TestFakeCallsOnClosedClient checks that after Close and after Disconnect
// every call fails with an error matching ErrClosed and sends nothing.
func TestFakeCallsOnClosedClient(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"Close", "Disconnect"} {
		t.Run(how, func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) {
				c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "closed", Version: mqtt.Version5}, &packet.Connack{})
				if how == "Close" {
					if err := c.Close(); err != nil {
						t.Fatalf("Close: %v", err)
					}
				} else if err := c.Disconnect(context.Background()); err != nil {
					t.Fatalf("Disconnect: %v", err)
				}
				fc.expectClosed()
				ctx := context.Background()
				checks := map[string]error{}
				checks["Publish QoS 0"] = c.Publish(ctx, mqtt.Message{Topic: "t"})
				checks["Publish QoS 1"] = c.Publish(ctx, mqtt.Message{Topic: "t", QoS: 1})
				checks["PublishAsync QoS 2"] = c.PublishAsync(mqtt.Message{Topic: "t", QoS: 2}).Wait(ctx)
				_, checks["Subscribe"] = c.Subscribe(ctx, "t", 1)
				checks["Unsubscribe"] = c.Unsubscribe(ctx, "t")
				_, checks["Ping"] = c.Ping(ctx)
				checks["Disconnect"] = c.Disconnect(ctx)
				for name, err := range checks {
					if !errors.Is(err, mqtt.ErrClosed) {
						t.Errorf("%s after %s = %v, want ErrClosed", name, how, err)
					}
				}
				if err := c.Close(); err != nil {
					t.Errorf("second Close = %v, want nil", err)
				}
				if err := c.Err(); !errors.Is(err, mqtt.ErrClosed) {
					t.Errorf("Err = %v, want ErrClosed", err)
				}
				if !strings.Contains(c.Err().Error(), "closed") {
					t.Errorf("Err = %q", c.Err())
				}
			})
		})
	}
}

// TestFakeConfigRejected checks that an invalid Config is refused before
// anything is dialed.
func TestFakeConfigRejected(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  mqtt.Config
		what string
	}{
		{"will topic with wildcard", mqtt.Config{Will: &mqtt.Message{Topic: "w/#"}}, "will topic"},
		{"will QoS 3", mqtt.Config{Will: &mqtt.Message{Topic: "w", QoS: 3}}, "will QoS"},
		{"client ID with U+0000", mqtt.Config{ClientID: "a\x00"}, "ClientID"},
		{"version 3", mqtt.Config{Version: 3}, "Version"},
		{"keepalive over 65535 s", mqtt.Config{KeepAlive: 65536 * time.Second}, "KeepAlive"},
		{"server without scheme", mqtt.Config{Servers: []string{"localhost:1883"}}, "server URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) {
				b := fakebroker.New(t)
				res := fakeStartConnect(t, context.Background(), b, tc.cfg)
				c, err := fakeConnectDone(t, res, fakeTimeout)
				if c != nil {
					t.Fatal("Connect returned a client")
				}
				fakeCheckArgumentError(t, err, tc.what, nil)
				if n := b.Pending(); n != 0 {
					t.Errorf("Connect dialed %d times", n)
				}
			})
		})
	}
}
