package mqtt

import (
	"context"
	"errors"
	"fmt"
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
	// idList is []uint32{id} (nil when id is 0): the SubscriptionIDs of
	// every message tagged with this subscription's identifier alone.
	idList []uint32
}

// Messages returns the channel that receives this subscription's messages.
// A receive takes a message from the client (for QoS 1 and 2, the broker's
// acknowledgement follows); the channel is closed when the subscription ends
// (Unsubscribe, or the client stopped).
func (s *Subscription) Messages() <-chan Message { return s.q.out }

// ID returns the MQTT 5.0 Subscription Identifier the subscription was made
// with: Filter.SubscriptionID, or the one the client chose; 0 when the
// broker does not support them (or on 3.1.1).
func (s *Subscription) ID() uint32 { return s.id }

// Granted returns the broker's answer per topic filter, in the order they
// were requested: the granted QoS, or a refusal code.
func (s *Subscription) Granted() []FilterResult { return slices.Clone(s.granted) }

// Subscribe subscribes to one topic filter and returns the subscription
// whose channel receives the matching messages. It waits for the SUBACK; a
// refusal gives a *SubscribeError.
func (c *Client) Subscribe(ctx context.Context, filter string, qos QoS) (*Subscription, error) {
	return c.SubscribeFilters(ctx, Filter{Topic: filter, QoS: qos})
}

// Filter is one topic filter of a subscription with its options.
type Filter struct {
	Topic string
	QoS   QoS // the maximum QoS the broker may deliver with
	// MQTT 5.0 subscription options.
	NoLocal           bool           // do not receive own publications
	RetainAsPublished bool           // keep the retain flag as published
	RetainHandling    RetainHandling // whether the broker sends retained messages on subscribing
	// SubscriptionID is the MQTT 5.0 Subscription Identifier (1 to
	// 268,435,455) to subscribe with; filters subscribed together share one
	// SUBSCRIBE and one identifier, so they must not name different ones.
	// The broker tags each message with the identifiers of the
	// subscriptions it matches (Message.SubscriptionIDs), and the client
	// routes by them. 0, the default, lets the client choose one.
	SubscriptionID uint32
}

// maxSubscriptionID is the largest Subscription Identifier (a Variable Byte
// Integer of at most four bytes).
const maxSubscriptionID = 1<<28 - 1

// SubscribeFilters subscribes to several topic filters in one SUBSCRIBE and
// returns one subscription that receives messages matching any of them. If
// the broker refuses some filters, the subscription is returned for the
// granted ones together with a *SubscribeError naming the refused; if it
// refuses all, the subscription is nil.
func (c *Client) SubscribeFilters(ctx context.Context, filters ...Filter) (*Subscription, error) {
	if len(filters) == 0 {
		return nil, &ArgumentError{What: "topic filter", Err: errors.New("none given")}
	}
	subs := make([]packet.Subscription, len(filters))
	var id uint32
	for i, f := range filters {
		if f.SubscriptionID > maxSubscriptionID || (id != 0 && f.SubscriptionID != 0 && f.SubscriptionID != id) {
			return nil, &ArgumentError{What: "subscription identifier", Value: fmt.Sprint(f.SubscriptionID),
				Err: errors.New("want 1 to 268,435,455, the same for every filter of one call")}
		}
		id = max(id, f.SubscriptionID)
		if err := packet.ValidFilter(f.Topic); err != nil {
			return nil, &ArgumentError{What: "topic filter", Value: f.Topic, Err: err}
		}
		if f.QoS > ExactlyOnce {
			return nil, &ArgumentError{What: "QoS", Value: fmt.Sprint(byte(f.QoS)), Err: errors.New("want 0, 1 or 2")}
		}
		if group, _ := packet.SharedFilter(f.Topic); group != "" && f.NoLocal {
			return nil, &ArgumentError{What: "topic filter", Value: f.Topic, Err: errors.New("the No Local option cannot be set on a shared subscription [MQTT-3.8.3-4]")}
		}
		if f.RetainHandling > 2 {
			return nil, &ArgumentError{What: "retain handling", Value: fmt.Sprint(f.RetainHandling), Err: errors.New("want 0, 1 or 2")}
		}
		subs[i] = packet.Subscription{Filter: f.Topic, QoS: byte(f.QoS), NoLocal: f.NoLocal,
			RetainAsPublished: f.RetainAsPublished, RetainHandling: byte(f.RetainHandling)}
	}
	req := &subscribeReq{ctx: ctx, filters: subs, id: id, reply: make(chan subscribeResult, 1)}
	if err := c.s.submit(ctx, req); err != nil {
		return nil, err
	}
	select {
	case r := <-req.reply:
		return r.sub, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Unsubscribe removes topic filters, waiting for the UNSUBACK. Subscriptions
// left without filters are closed: their channels close after the messages
// already taken. Messages still queued for them are discarded (and, at QoS 1
// and 2, acknowledged).
func (c *Client) Unsubscribe(ctx context.Context, filters ...string) error {
	if len(filters) == 0 {
		return &ArgumentError{What: "topic filter", Err: errors.New("none given")}
	}
	for _, f := range filters {
		if err := packet.ValidFilter(f); err != nil {
			return &ArgumentError{What: "topic filter", Value: f, Err: err}
		}
	}
	req := &unsubscribeReq{ctx: ctx, filters: filters, reply: make(chan error, 1)}
	if err := c.s.submit(ctx, req); err != nil {
		return err
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
