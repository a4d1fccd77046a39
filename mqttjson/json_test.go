package mqttjson_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/mqttjson"
)

type reading struct {
	Sensor string  `json:"sensor"`
	Value  float64 `json:"value"`
}

// connect connects to the shared broker with the protocol version v, and
// disconnects at the end of the test.
func connect(t *testing.T, v mqtt.ProtocolVersion) *mqtt.Client {
	t.Helper()
	if server == "" {
		t.Skip("no mosquitto")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{server}, ClientID: strings.ReplaceAll(t.Name(), "/", "-"), Version: v})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestDecode(t *testing.T) {
	t.Parallel()
	got, err := mqttjson.Decode[reading](mqtt.Message{Topic: "a/b", Payload: []byte(`{"sensor":"s1","value":2.5}`)})
	if err != nil || got != (reading{"s1", 2.5}) {
		t.Errorf("Decode = %+v, %v", got, err)
	}
	got, err = mqttjson.Decode[reading](mqtt.Message{Topic: "a/b", Payload: []byte(`{"sensor":`)})
	if se, ok := errors.AsType[*json.SyntaxError](err); !ok {
		t.Errorf("Decode of a truncated payload: %v (%T), want a *json.SyntaxError", err, se)
	}
	if got != (reading{}) {
		t.Errorf("Decode of a truncated payload gave %+v, want zero", got)
	}
	if text := err.Error(); !strings.HasPrefix(text, "mqttjson: ") || strings.Count(text, "mqttjson: ") != 1 || !strings.Contains(text, `"a/b"`) {
		t.Errorf("Error() = %q, want one mqttjson: prefix and the topic", text)
	}
}

// TestPublishUnencodable checks that a value encoding/json refuses is an
// *mqtt.ArgumentError before the client is used.
func TestPublishUnencodable(t *testing.T) {
	t.Parallel()
	err := mqttjson.Publish(context.Background(), nil, mqtt.Message{Topic: "a"}, make(chan int))
	if _, ok := errors.AsType[*mqtt.ArgumentError](err); !ok || !errors.Is(err, mqtt.ErrInvalidArgument) {
		t.Fatalf("Publish(chan int) = %v, want an *mqtt.ArgumentError", err)
	}
	if _, ok := errors.AsType[*json.UnsupportedTypeError](err); !ok {
		t.Errorf("%v does not wrap the *json.UnsupportedTypeError", err)
	}
	if want := `mqtt: invalid JSON payload "chan int": json: unsupported type: chan int`; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}

// TestPublishAndAll publishes values at QoS 0 and 1, one with a content
// type of its own, and a payload that is not JSON, and ranges over them
// with All on a real broker: each value comes back decoded with its
// properties, the bad payload with an error, and breaking out ends the
// loop.
func TestPublishAndAll(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c := connect(t, mqtt.Version5)
	topic := t.Name() + "/r"
	sub, err := c.Subscribe(ctx, topic, mqtt.AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m := mqtt.Message{Topic: topic, QoS: mqtt.QoS(i % 2)}
		if i == 2 {
			m.ContentType = "application/vnd.reading+json"
		}
		if err := mqttjson.Publish(ctx, c, m, reading{"s1", float64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Publish(ctx, mqtt.Message{Topic: topic, Payload: []byte("{"), QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	var got []reading
	var types []string
	var bad int
	for d, err := range mqttjson.All[reading](ctx, sub) {
		if err != nil {
			bad++
			if string(d.Message.Payload) != "{" || d.Value != (reading{}) {
				t.Errorf("undecodable message %+v", d)
			}
		} else {
			got = append(got, d.Value)
			types = append(types, d.Message.ContentType)
			if !d.Message.PayloadUTF8 {
				t.Errorf("message %d not marked as UTF-8", len(got))
			}
		}
		if len(got)+bad == 4 {
			break
		}
	}
	if diff := cmp.Diff([]reading{{"s1", 0}, {"s1", 1}, {"s1", 2}}, got); diff != "" || bad != 1 {
		t.Errorf("decoded (-want +got):\n%s\nundecodable: %d, want 1", diff, bad)
	}
	if diff := cmp.Diff([]string{"application/json", "application/json", "application/vnd.reading+json"}, types); diff != "" {
		t.Errorf("content types (-want +got):\n%s", diff)
	}
}

// TestPublishV311 checks that over MQTT 3.1.1, which has no properties,
// the value still travels.
func TestPublishV311(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c := connect(t, mqtt.Version311)
	topic := t.Name() + "/r"
	sub, err := c.Subscribe(ctx, topic, mqtt.AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}
	if err := mqttjson.Publish(ctx, c, mqtt.Message{Topic: topic, QoS: mqtt.AtLeastOnce}, reading{"s2", 7}); err != nil {
		t.Fatal(err)
	}
	for d, err := range mqttjson.All[reading](ctx, sub) {
		if err != nil || d.Value != (reading{"s2", 7}) || string(d.Message.Payload) != `{"sensor":"s2","value":7}` {
			t.Errorf("received %+v, %v", d, err)
		}
		break
	}
	if ctx.Err() != nil {
		t.Fatal("nothing received")
	}
}

// TestAllEndsWithContext checks that the loop ends when ctx is done.
func TestAllEndsWithContext(t *testing.T) {
	t.Parallel()
	c := connect(t, mqtt.Version5)
	sub, err := c.Subscribe(testContext(t), t.Name()+"/none", mqtt.AtMostOnce)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	for d, err := range mqttjson.All[reading](ctx, sub) {
		t.Errorf("received %+v, %v", d, err)
	}
	if ctx.Err() == nil {
		t.Error("the loop ended before ctx")
	}
}
