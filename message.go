package mqtt

import (
	"context"
	"fmt"
	"time"

	"github.com/b4e21b16/mqtt/packet"
)

// QoS is an MQTT quality-of-service level.
type QoS byte

// Quality-of-service levels.
const (
	AtMostOnce  QoS = 0 // QoS 0: fire and forget
	AtLeastOnce QoS = 1 // QoS 1: acknowledged with PUBACK, may be duplicated
	ExactlyOnce QoS = 2 // QoS 2: four-step handshake, delivered once
)

// String returns "QoS 0", "QoS 1" or "QoS 2".
func (q QoS) String() string { return fmt.Sprintf("QoS %d", byte(q)) }

// UserProperty is an MQTT 5.0 user property: a name/value pair. A message
// keeps the order of its user properties and may repeat a name.
type UserProperty = packet.UserProperty

// Message is an application message, published or received.
//
// A received Message owns its Topic and Payload: they share one buffer that
// the client never reuses, so the receiver may keep them. The fields below
// the MQTT 5.0 line are carried only when the connection speaks MQTT 5.0;
// over 3.1.1 they are ignored when publishing and empty when receiving.
//
// Publishing checks every field before the client accepts the message, the
// MQTT 5.0 ones too whatever the connection, and refuses an invalid one
// with an *ArgumentError naming the field: a topic that is not a valid
// topic name, a QoS above 2, strings (ContentType, user property names and
// values) over 65,535 bytes, not UTF-8 or containing U+0000, a
// ResponseTopic that is not a valid topic name, CorrelationData over
// 65,535 bytes, an Expiry out of range, a payload that is not UTF-8 while
// PayloadUTF8 is set, or a message too large for one MQTT packet.
type Message struct {
	Topic   string
	Payload []byte
	QoS     QoS
	Retain  bool
	// Duplicate is set on a received message that the broker marked as a
	// possible re-delivery (the DUP flag). It is ignored when publishing.
	Duplicate bool

	// MQTT 5.0 message properties.
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	// PayloadUTF8 marks the payload as UTF-8 text (Payload Format Indicator 1).
	PayloadUTF8 bool
	// Expiry is the Message Expiry Interval; zero means the message does not
	// expire. It is sent in whole seconds, rounded up, so that the message
	// never expires earlier than asked: 1.2 s is sent as 2 s, and any
	// positive Expiry below one second as 1 s. Publishing refuses a negative
	// Expiry or one above 4,294,967,295 s (the interval is 32 bits).
	Expiry         time.Duration
	UserProperties []UserProperty
	// SubscriptionIDs are the MQTT 5.0 Subscription Identifiers the broker
	// attached to a received message: those of the matching subscriptions.
	// The client assigns one to each Subscription (when the broker allows
	// them) and uses them to route the message, so they are mainly of use
	// for logging. They are ignored when publishing: a client never sends
	// them [MQTT-3.3.4-6], so a received message can be published again
	// as it is. The messages of one subscription may share one slice:
	// read it, do not modify it.
	SubscriptionIDs []uint32

	ack ackHandle // Config.ManualAck: acknowledges a received QoS 1/2 message
}

// Ack acknowledges a received QoS 1 or 2 message when Config.ManualAck is
// set: the client sends its PUBACK (QoS 1) or PUBREC (QoS 2) once this and
// every earlier message has been acknowledged, as the specification
// requires that order [MQTT-4.6.0-2]. Acks may be called in any order and
// from any goroutine. Acking a message twice, a copy of a message delivered
// to several subscriptions, or a message from a broker session that has
// since been lost is a harmless no-op. Without ManualAck, and for QoS 0,
// Ack does nothing. It returns an error only if the client has stopped.
func (m *Message) Ack() error {
	if m.ack.s == nil {
		return nil
	}
	return m.ack.s.submit(context.Background(), &ackReq{h: m.ack})
}

// String summarises the message for logs without its payload.
func (m *Message) String() string {
	return fmt.Sprintf("%s %q (%d bytes, retain=%t)", m.QoS, m.Topic, len(m.Payload), m.Retain)
}

// toPublish converts an outbound message to its wire form. This and
// messageFrom are the only conversions between the public and wire types.
func (m *Message) toPublish(p *packet.Publish) {
	*p = packet.Publish{QoS: byte(m.QoS), Retain: m.Retain, Topic: m.Topic, Payload: m.Payload}
	m.appendProps(&p.Props)
}

func (m *Message) appendProps(pr *packet.Properties) {
	if m.ContentType != "" {
		pr.ContentType = m.ContentType
		pr.Set(packet.PropContentType)
	}
	if m.ResponseTopic != "" {
		pr.ResponseTopic = m.ResponseTopic
		pr.Set(packet.PropResponseTopic)
	}
	if m.CorrelationData != nil {
		pr.CorrelationData = m.CorrelationData
		pr.Set(packet.PropCorrelationData)
	}
	if m.PayloadUTF8 {
		pr.PayloadFormat = 1
		pr.Set(packet.PropPayloadFormat)
	}
	if m.Expiry > 0 {
		// Rounded up; saturated for a message that skipped validation (one
		// from a Store written by an earlier version) rather than wrapped.
		secs := m.Expiry / time.Second
		if m.Expiry%time.Second != 0 {
			secs++
		}
		pr.MessageExpiry = uint32(min(secs, 0xffffffff))
		pr.Set(packet.PropMessageExpiry)
	}
	pr.User = m.UserProperties
}

// messageFrom converts a received PUBLISH to a Message, sharing its buffers.
func messageFrom(p *packet.Publish) Message {
	m := Message{
		Topic:     p.Topic,
		Payload:   p.Payload,
		QoS:       QoS(p.QoS),
		Retain:    p.Retain,
		Duplicate: p.Dup,
	}
	if pr := &p.Props; !pr.IsZero() {
		m.ContentType = pr.ContentType
		m.ResponseTopic = pr.ResponseTopic
		m.CorrelationData = pr.CorrelationData
		m.PayloadUTF8 = pr.Has(packet.PropPayloadFormat) && pr.PayloadFormat == 1
		if pr.Has(packet.PropMessageExpiry) {
			m.Expiry = time.Duration(pr.MessageExpiry) * time.Second
		}
		m.UserProperties = pr.User
		m.SubscriptionIDs = pr.SubscriptionIDs
	}
	return m
}
