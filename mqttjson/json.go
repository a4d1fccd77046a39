// Package mqttjson publishes and receives JSON payloads with an mqtt.Client:
// Publish encodes a value as a message's payload, Decode decodes one
// message, and All ranges over a subscription, decoding each message:
//
//	err := mqttjson.Publish(ctx, c, mqtt.Message{Topic: "sensors/kitchen", QoS: mqtt.AtLeastOnce}, reading)
//
//	for d, err := range mqttjson.All[Reading](ctx, sub) {
//		if err != nil {
//			log.Print(err) // a payload that is not a Reading; the loop goes on
//			continue
//		}
//		handle(d.Value)
//	}
//
// The client itself knows nothing of payload encodings; this package is
// one, built on encoding/json and the client's public API.
package mqttjson

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"

	"github.com/b4e21b16/mqtt"
)

// ContentType is the MQTT 5.0 Content Type Publish gives a message that
// has none.
const ContentType = "application/json"

// Publish publishes v encoded as JSON: it sets m.Payload to the encoding
// (replacing what it held), marks the payload as UTF-8 and, when
// m.ContentType is empty, sets it to ContentType (both MQTT 5.0
// properties, left out over MQTT 3.1.1), then publishes m as c.Publish
// does, waiting as it does. A value that does not encode is an
// *mqtt.ArgumentError, and nothing is sent.
func Publish(ctx context.Context, c *mqtt.Client, m mqtt.Message, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return &mqtt.ArgumentError{What: "JSON payload", Value: fmt.Sprintf("%T", v), Err: err}
	}
	m.Payload = b
	m.PayloadUTF8 = true
	if m.ContentType == "" {
		m.ContentType = ContentType
	}
	return c.Publish(ctx, m)
}

// Decode decodes m's payload as JSON into a new T.
func Decode[T any](m mqtt.Message) (T, error) {
	var v T
	if err := json.Unmarshal(m.Payload, &v); err != nil {
		return v, fmt.Errorf("mqttjson: decode the payload of a message on %q: %w", m.Topic, err)
	}
	return v, nil
}

// Decoded is a received message together with its decoded payload.
type Decoded[T any] struct {
	Message mqtt.Message
	Value   T
}

// All iterates over a subscription's messages as s.All does, decoding
// each payload as JSON into a T. A payload that does not decode is yielded
// with Decode's error (and Value zero); the loop may go on past it. The
// loop ends when ctx is done or the subscription ends.
func All[T any](ctx context.Context, s *mqtt.Subscription) iter.Seq2[Decoded[T], error] {
	return func(yield func(Decoded[T], error) bool) {
		for m := range s.All(ctx) {
			v, err := Decode[T](m)
			if !yield(Decoded[T]{Message: m, Value: v}, err) {
				return
			}
		}
	}
}
