package interop

import (
	"time"

	"github.com/b4e21b16/mqtt"
)

// qos2Answer is what a broker does with a QoS 2 PUBLISH.
type qos2Answer byte

const (
	qos2Supported  qos2Answer = iota // PUBREC, PUBREL, PUBCOMP
	qos2Disconnect                   // closes the network connection
	qos2Puback                       // downgrades to QoS 1 and answers PUBACK
)

// oversize is what a broker does with a PUBLISH over its size limit.
type oversize byte

const (
	// oversizeAnnounced: the broker announces Maximum Packet Size in
	// CONNACK (5.0), so the client refuses the publish before sending it.
	oversizeAnnounced oversize = iota
	// oversizeDisconnect: the broker closes the connection.
	oversizeDisconnect
	// oversizeDropped: the broker drops the message without a PUBACK and
	// keeps the connection open, so the publish waits until its context
	// ends.
	oversizeDropped
	// oversizeNoLimit: the broker applies no limit at this size.
	oversizeNoLimit
)

// target is one broker spoken to with one protocol version, together with
// what that broker does where brokers differ. Every difference is the
// broker's documented (or, where undocumented, observed and noted)
// behaviour, and the scenarios assert exactly it.
type target struct {
	name    string // subtest name
	broker  *lazyBroker
	version mqtt.ProtocolVersion

	// autoVersion is the version mqtt.VersionAuto ends up with.
	autoVersion mqtt.ProtocolVersion
	// refuses5 is the CONNACK code a 3.1.1-only broker answers a pinned
	// 5.0 CONNECT with; zero when it closes the connection instead.
	refuses5 mqtt.ReasonCode
	// badAuth is the CONNACK code for a wrong password; badAuthReason the
	// 5.0 Reason String that comes with it.
	badAuth       mqtt.ReasonCode
	badAuthReason string
	maxQoS        mqtt.QoS   // highest QoS the broker grants a subscription
	qos2          qos2Answer // what it does with a QoS 2 PUBLISH
	// overlapCopies is how many copies of a message the broker sends to a
	// client whose subscriptions overlap: 1, or one per matching
	// subscription (MQTT 3.1.1 section 3.3.5 allows either).
	overlapCopies int
	// retainedWildcard: retained messages are also delivered to wildcard
	// subscriptions (and not only to exact topic filters).
	retainedWildcard bool
	// size describes the large payload scenario: maxPayload(topicLen) is
	// the largest payload the broker accepts with a topic of that length
	// at QoS 1, and over what it does with a larger one.
	maxPayload func(topicLen int) int
	over       oversize
	// sessionUnordered: the broker sends the messages queued for a
	// resumed session in no particular order.
	sessionUnordered bool
	// addedExpiry is the Message Expiry Interval the broker gives messages
	// published without one (zero: none, as MQTT 5.0 section 3.3.2.3.3
	// says).
	addedExpiry time.Duration
	// v5 reports whether the target speaks MQTT 5.0.
	v5 bool
}

// packetLimit returns the largest payload of a QoS 1 PUBLISH whose whole
// packet, as MQTT 5.0 section 3.2.2.3.6 defines Maximum Packet Size, fits in
// max bytes: fixed header (1 + 3-byte Remaining Length at these sizes),
// topic, packet identifier and, in 5.0, the property length byte.
func packetLimit(max int, v5 bool) func(int) int {
	return func(topicLen int) int {
		n := max - 1 - 3 - 2 - topicLen - 2
		if v5 {
			n--
		}
		return n
	}
}

// remainingLimit is packetLimit for brokers that count a packet as one
// byte of fixed header plus Remaining Length, leaving out the length's own
// bytes: mosquitto 2.0 and mochi-mqtt 2.7 accept three bytes more than the
// specification's definition at these sizes.
func remainingLimit(max int, v5 bool) func(int) int {
	return func(topicLen int) int { return packetLimit(max, v5)(topicLen) + 3 }
}

// payloadLimit is for brokers whose limit is on the payload alone.
func payloadLimit(max int) func(int) int { return func(int) int { return max } }

var targets = []*target{
	{
		name: "mosquitto-3.1.1", broker: mosquittoBroker, version: mqtt.Version311,
		autoVersion: mqtt.Version5,
		badAuth:     5, // not authorized
		maxQoS:      2, qos2: qos2Supported, overlapCopies: 1, retainedWildcard: true,
		// No Maximum Packet Size in 3.1.1: over max_packet_size the
		// broker closes the connection.
		maxPayload: remainingLimit(mosquittoMaxPacket, false), over: oversizeDisconnect,
	},
	{
		name: "mosquitto-5.0", broker: mosquittoBroker, version: mqtt.Version5, v5: true,
		autoVersion: mqtt.Version5,
		badAuth:     0x87, // not authorized
		maxQoS:      2, qos2: qos2Supported, overlapCopies: 1, retainedWildcard: true,
		// max_packet_size is announced in CONNACK; the client holds
		// publishes to the specification's definition of it.
		maxPayload: packetLimit(mosquittoMaxPacket, true), over: oversizeAnnounced,
	},
	{
		// NATS 2.9 implements MQTT 3.1.1 with QoS 0 and 1 only. It answers
		// a 5.0 CONNECT with CONNACK 0x01, grants QoS 1 for QoS 2, closes
		// the connection on a QoS 2 PUBLISH, sends one copy per matching
		// subscription, and does not apply max_payload to MQTT.
		name: "nats-3.1.1", broker: natsBroker, version: mqtt.Version311,
		autoVersion: mqtt.Version311, refuses5: 0x01,
		badAuth: 5, // not authorized
		maxQoS:  1, qos2: qos2Disconnect, overlapCopies: 2, retainedWildcard: true,
		maxPayload: payloadLimit(natsMaxPayload), over: oversizeNoLimit,
	},
	{
		// RabbitMQ 3.10's MQTT plugin speaks 3.1 and 3.1.1 and closes the
		// connection on a 5.0 CONNECT. It grants at most QoS 1, answers a
		// QoS 2 PUBLISH with PUBACK, keeps no retained messages for
		// wildcard filters, and drops a message over max_message_size
		// without PUBACK.
		name: "rabbitmq-3.1.1", broker: rabbitBroker, version: mqtt.Version311,
		autoVersion: mqtt.Version311, // falls back when the broker closes on a 5.0 CONNECT
		badAuth:     4,               // bad user name or password
		maxQoS:      1, qos2: qos2Puback, overlapCopies: 1, retainedWildcard: false,
		maxPayload: payloadLimit(rabbitMaxMessage), over: oversizeDropped,
	},
	{
		// mochi-mqtt 2.7 does not announce its Maximum Packet Size in
		// CONNACK, resends queued session messages in map order and gives
		// messages without an expiry its maximum (24 h).
		name: "mochi-5.0", broker: mochiBroker, version: mqtt.Version5, v5: true,
		autoVersion: mqtt.Version5,
		badAuth:     0x86, badAuthReason: "bad username or password",
		maxQoS: 2, qos2: qos2Supported, overlapCopies: 1, retainedWildcard: true,
		maxPayload: remainingLimit(mochiMaxPacket, true), over: oversizeDisconnect,
		sessionUnordered: true, addedExpiry: 24 * time.Hour,
	},
	{
		name: "mochi-3.1.1", broker: mochiBroker, version: mqtt.Version311,
		autoVersion: mqtt.Version5,
		badAuth:     5, // not authorized
		maxQoS:      2, qos2: qos2Supported, overlapCopies: 1, retainedWildcard: true,
		maxPayload: remainingLimit(mochiMaxPacket, false), over: oversizeDisconnect,
		sessionUnordered: true,
	},
}
