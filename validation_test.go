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

// TestErrorTexts provokes the main error paths (invalid Config fields and
// will, invalid publish fields, store failures, a refused and a failed
// connection, protocol violations, a lost connection, giving up
// reconnecting) and checks that each error says what is wrong, and starts
// with "mqtt: " once: an error of this package wrapped by another never
// repeats the prefix ("mqtt: connection lost: mqtt: keepalive timeout").
func TestErrorTexts(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 65536)
	for _, tc := range []struct {
		name string
		want []string // what the text must say
		err  func(t *testing.T) error
	}{
		// Config.
		{"client ID too long", []string{"ClientID", "longer than 65,535 bytes"},
			configError(mqtt.Config{ClientID: long})},
		{"client ID with U+0000", []string{"ClientID", "contains U+0000"},
			configError(mqtt.Config{ClientID: "a\x00b"})},
		{"client ID not UTF-8", []string{"ClientID", "not valid UTF-8"},
			configError(mqtt.Config{ClientID: "a\xffb"})},
		{"user name too long", []string{"Username", "(hidden)", "longer than 65,535 bytes"},
			configError(mqtt.Config{Username: long})},
		{"password too long", []string{"Password", "(hidden)", "longer than 65,535 bytes"},
			configError(mqtt.Config{Password: []byte(long)})},
		{"keepalive too long", []string{"KeepAlive", "more than 65535 s"},
			configError(mqtt.Config{KeepAlive: 70000 * time.Second})},
		{"no servers", []string{"no servers"},
			func(t *testing.T) error { _, err := mqtt.Connect(context.Background(), mqtt.Config{}); return err }},
		{"server URL", []string{"server URL", "localhost:1883"},
			configError(mqtt.Config{Servers: []string{"localhost:1883"}})},
		{"will topic", []string{"will topic", "wildcard"},
			configError(mqtt.Config{Will: &mqtt.Message{Topic: "w/#"}})},
		{"will payload", []string{"will payload", "longer than 65,535 bytes"},
			configError(mqtt.Config{Will: &mqtt.Message{Topic: "w", Payload: []byte(long)}})},
		{"will correlation data", []string{"will correlation data", "longer than 65,535 bytes"},
			configError(mqtt.Config{Will: &mqtt.Message{Topic: "w", CorrelationData: []byte(long)}})},
		{"will expiry", []string{"will expiry", "negative"},
			configError(mqtt.Config{Will: &mqtt.Message{Topic: "w", Expiry: -time.Second}})},

		// Publish.
		{"topic", []string{"topic", "wildcard"}, publishError(mqtt.Message{Topic: "a/+", QoS: 1})},
		{"correlation data", []string{"correlation data", "65536 bytes", "longer than 65,535 bytes"},
			publishError(mqtt.Message{Topic: "t", QoS: 1, CorrelationData: []byte(long)})},
		{"expiry", []string{"expiry", "more than 4,294,967,295 s"},
			publishError(mqtt.Message{Topic: "t", QoS: 2, Expiry: 1 << 32 * time.Second})},
		{"content type", []string{"content type", "contains U+0000"},
			publishError(mqtt.Message{Topic: "t", ContentType: "a\x00"})},
		{"user property", []string{"user property", "value longer than 65,535 bytes"},
			publishError(mqtt.Message{Topic: "t", QoS: 1, UserProperties: []mqtt.UserProperty{{Key: "k", Value: long}}})},

		// Store.
		{"store load", []string{"store", "disk on fire"}, func(t *testing.T) error {
			return connectError(t, mqtt.Config{Store: &failingStore{Store: mqtt.NewMemoryStore(), load: errors.New("disk on fire")}})
		}},
		{"closed store", []string{"store", "closed"}, func(t *testing.T) error {
			st := mqtt.NewMemoryStore()
			st.Close()
			return connectError(t, mqtt.Config{Store: st})
		}},
		{"store save", []string{"store", "disk full"}, func(t *testing.T) error {
			st := &failingStore{Store: mqtt.NewMemoryStore(), save: errors.New("disk full")}
			c, _, _ := fakeClient(t, mqtt.Config{ClientID: "s", Store: st, KeepAlive: -1}, &packet.Connack{})
			return c.Publish(context.Background(), mqtt.Message{Topic: "t", QoS: 1})
		}},

		// Connecting.
		{"connect refused", []string{"refused", "not authorized"}, func(t *testing.T) error {
			return connectError(t, mqtt.Config{Version: mqtt.Version5}, &packet.Connack{ReasonCode: packet.NotAuthorized})
		}},
		{"dial failure", []string{"dial mqtt://fake", "no route"}, func(t *testing.T) error {
			b := fakebroker.New(t)
			b.SetDialError(errors.New("no route"))
			_, err := fakeConnectDone(t, fakeStartConnect(t, context.Background(), b, mqtt.Config{}), fakeTimeout)
			return err
		}},
		{"connect timeout", []string{"connect to mqtt://fake", "deadline exceeded", "send CONNECT"}, func(t *testing.T) error {
			b := fakebroker.New(t) // never accepts: the CONNECT cannot be written
			_, err := fakeConnectDone(t, fakeStartConnect(t, context.Background(), b, mqtt.Config{ConnectTimeout: time.Second}), fakeTimeout)
			return err
		}},
		{"packet before CONNACK", []string{"protocol violation by the broker", "PUBLISH before CONNACK"}, func(t *testing.T) error {
			return connectError(t, mqtt.Config{}, &packet.Publish{Topic: "t"})
		}},

		// Losing the connection.
		{"keepalive timeout", []string{"connection lost", "keepalive timeout"}, func(t *testing.T) error {
			c, _, _ := fakeClient(t, mqtt.Config{ClientID: "k", KeepAlive: time.Second}, &packet.Connack{})
			return fakeWaitDone(t, c, fakeTimeout)
		}},
		{"server disconnect", []string{"connection lost", "DISCONNECT", "administrative action"}, func(t *testing.T) error {
			c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "d", Version: mqtt.Version5, KeepAlive: -1}, &packet.Connack{})
			fc.send(&packet.Disconnect{ReasonCode: packet.AdministrativeAction})
			return fakeWaitDone(t, c, fakeTimeout)
		}},
		{"gave up reconnecting", []string{"connection lost", "gave up after 1 reconnect attempts", "dial mqtt://fake", "no route"}, func(t *testing.T) error {
			b := fakebroker.New(t)
			res := fakeStartConnect(t, context.Background(), b, mqtt.Config{ClientID: "r", KeepAlive: -1,
				Reconnect: mqtt.ReconnectConfig{MaxAttempts: 1}})
			bc := fakeAccept(t, b, fakeTimeout)
			bc.ExpectConnect(t)
			bc.Send(t, &packet.Connack{})
			c, err := fakeConnectDone(t, res, fakeTimeout)
			if err != nil {
				t.Fatal(err)
			}
			b.SetDialError(errors.New("no route"))
			bc.Close()
			return fakeWaitDone(t, c, fakeTimeout)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) {
				err := tc.err(t)
				if err == nil {
					t.Fatal("no error")
				}
				t.Log(err)
				checkErrorText(t, err, tc.want...)
			})
		})
	}
}

// checkErrorText checks that err's text says each of want, and that each of
// its lines (errors.Join puts one error a line) starts with "mqtt: " once.
func checkErrorText(t *testing.T, err error, want ...string) {
	t.Helper()
	s := err.Error()
	if strings.Contains(s, "mqtt: mqtt:") {
		t.Errorf("doubled prefix: %q", s)
	}
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(line, "mqtt: ") || strings.Count(line, "mqtt: ") != 1 {
			t.Errorf("error %q: want \"mqtt: \" once, at the start", line)
		}
	}
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("error %q does not say %q", s, w)
		}
	}
}

// configError returns a function that connects with cfg to a fake broker,
// which must fail before dialing.
func configError(cfg mqtt.Config) func(t *testing.T) error {
	return func(t *testing.T) error {
		b := fakebroker.New(t)
		c, err := fakeConnectDone(t, fakeStartConnect(t, context.Background(), b, cfg), fakeTimeout)
		if c != nil {
			t.Fatal("Connect succeeded")
		}
		if n := b.Pending(); n != 0 {
			t.Errorf("Connect dialed %d times", n)
		}
		return err
	}
}

// connectError connects with cfg to a fake broker that answers the CONNECT
// with replies (nothing: the client's store fails first) and returns
// Connect's error.
func connectError(t *testing.T, cfg mqtt.Config, replies ...packet.Packet) error {
	t.Helper()
	b := fakebroker.New(t)
	res := fakeStartConnect(t, context.Background(), b, cfg)
	if len(replies) > 0 {
		bc := fakeAccept(t, b, fakeTimeout)
		bc.ExpectConnect(t)
		for _, p := range replies {
			bc.Send(t, p)
		}
		t.Cleanup(bc.Close)
	}
	c, err := fakeConnectDone(t, res, fakeTimeout)
	if c != nil {
		t.Fatal("Connect succeeded")
	}
	return err
}

// publishError returns a function that publishes m on a client connected
// to a fake broker and returns the error, which must come at once.
func publishError(m mqtt.Message) func(t *testing.T) error {
	return func(t *testing.T) error {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "p", Version: mqtt.Version5, KeepAlive: -1}, &packet.Connack{})
		ctx, cancel := context.WithTimeout(context.Background(), fakeTimeout)
		defer cancel()
		err := c.Publish(ctx, m)
		fc.expectNothing()
		return err
	}
}

// failingStore is a Store whose Load or SavePublish fails with a given
// error.
type failingStore struct {
	mqtt.Store
	load, save error
}

func (s *failingStore) Load() ([]mqtt.StoredPublish, []uint16, error) {
	if s.load != nil {
		return nil, nil, s.load
	}
	return s.Store.Load()
}

func (s *failingStore) SavePublish(r mqtt.StoredPublish) error {
	if s.save != nil {
		return s.save
	}
	return s.Store.SavePublish(r)
}
