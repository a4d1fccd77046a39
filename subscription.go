package mqtt

import (
	"context"
	"slices"

	"github.com/b4e21b16/mqtt/packet"
)

// Subscription is a live subscription to one or more topic filters. Messages
// matching any of its filters arrive on Messages in the order the broker sent
// them. A message matching several subscriptions of the client is delivered
// to each of them; at QoS 1 and 2 it is acknowledged once all of them have
// taken it.
type Subscription struct {
	c *Client
	q *deliveryQueue

	// filters is owned by the session goroutine; granted is written once
	// before Subscribe returns.
	filters []string
	options []packet.Subscription // as requested, to subscribe again after a session loss
	granted []FilterResult
	// id is the MQTT 5.0 Subscription Identifier sent with the SUBSCRIBE
	// (0 when the connection does not use them). The broker tags each
	// delivery with the identifiers of the subscriptions it matched, which
	// routes a message to exactly those subscriptions.
	id uint32
}

// Messages returns the channel that receives this subscription's messages.
// A receive takes a message from the client (for QoS 1 and 2, the broker's
// acknowledgement follows); the channel is closed when the subscription ends
// (Unsubscribe, or the client stopped).
func (s *Subscription) Messages() <-chan Message { return s.q.out }

// Granted returns the broker's answer per topic filter, in the order they
// were requested: the granted QoS, or a refusal code.
func (s *Subscription) Granted() []FilterResult { return slices.Clone(s.granted) }

// Unsubscribe removes every filter this subscription was granted.
func (s *Subscription) Unsubscribe(ctx context.Context) error {
	var filters []string
	for _, g := range s.granted {
		if !g.Code.IsError() {
			filters = append(filters, g.Filter)
		}
	}
	return s.c.Unsubscribe(ctx, filters...)
}
