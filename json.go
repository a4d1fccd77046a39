package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
)

// PublishJSON publishes v encoded as JSON: it sets m.Payload to the encoding
// (replacing what it held), marks it as UTF-8 and, when m.ContentType is
// empty, sets it to "application/json" (both MQTT 5.0 properties), then
// publishes m as Publish does.
func PublishJSON(ctx context.Context, c *Client, m Message, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return &ArgumentError{What: "JSON payload", Value: fmt.Sprintf("%T", v), Err: err}
	}
	m.Payload = b
	m.PayloadUTF8 = true
	if m.ContentType == "" {
		m.ContentType = "application/json"
	}
	return c.Publish(ctx, m)
}

// DecodeJSON decodes m's payload as JSON into a new T.
func DecodeJSON[T any](m Message) (T, error) {
	var v T
	if err := json.Unmarshal(m.Payload, &v); err != nil {
		return v, fmt.Errorf("mqtt: decode JSON payload of a message on %q: %w", m.Topic, err)
	}
	return v, nil
}

// Decoded is a received message together with its decoded payload.
type Decoded[T any] struct {
	Message Message
	Value   T
}

// AllJSON iterates over a subscription's messages like Subscription.All,
// decoding each payload as JSON into a T. A payload that does not decode is
// yielded with the error (and Value zero); the loop may go on past it.
func AllJSON[T any](ctx context.Context, s *Subscription) iter.Seq2[Decoded[T], error] {
	return func(yield func(Decoded[T], error) bool) {
		for m := range s.All(ctx) {
			v, err := DecodeJSON[T](m)
			if !yield(Decoded[T]{Message: m, Value: v}, err) {
				return
			}
		}
	}
}
