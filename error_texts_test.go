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
