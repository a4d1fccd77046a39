package mqtt

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/b4e21b16/mqtt/packet"
)

// Validation of what the application asks to send. A message is checked
// field by field before the client accepts it, so that nothing it accepts
// fails to encode later, inside the session, where the failure could only
// surface as a publish that never completes. Each refusal is an
// *ArgumentError saying which field is wrong and why.

// maxExpiry is the longest Message.Expiry: the Message Expiry Interval is a
// four-byte number of seconds.
const maxExpiry = 0xffffffff * time.Second

// willConnectReserve is the room a will leaves in its CONNECT for the
// client's other fields: the client ID, user name and password (at most
// 65,537 bytes each), the authentication method and data, the other
// properties and the fixed parts.
const willConnectReserve = 256 << 10

var (
	errStringNUL  = errors.New("contains U+0000, not allowed in MQTT strings [MQTT-1.5.4-2]")
	errStringUTF8 = errors.New("not valid UTF-8 [MQTT-1.5.4-1]")
)

// checkString says why s cannot be sent as an MQTT UTF-8 Encoded String: too
// long, not UTF-8 (an encoded surrogate included), or containing U+0000.
func checkString(s string) error {
	switch {
	case packet.ValidString(s):
		return nil
	case len(s) > 65535:
		return fmt.Errorf("longer than 65,535 bytes (%d)", len(s))
	case !utf8.ValidString(s):
		return errStringUTF8
	}
	return errStringNUL
}

// validatePublish checks an outbound message before the client accepts it:
// the topic, the QoS, every MQTT 5.0 property, and that the whole PUBLISH,
// with a packet identifier and a topic alias, fits in one MQTT packet. The
// properties are checked over MQTT 3.1.1 too, which does not send them: a
// message is valid or not whatever the connection it goes out on.
func validatePublish(m *Message) error {
	return validateMessage(m, "", packet.MaxRemainingLength)
}

// validateWill checks Config.Will as validatePublish checks a message, and
// the limits of a will: a payload of at most 65,535 bytes (it has a
// two-byte length in CONNECT) and room in the CONNECT for the rest.
func validateWill(w *Message) error {
	if err := validateMessage(w, "will ", packet.MaxRemainingLength-willConnectReserve); err != nil {
		return err
	}
	if len(w.Payload) > 65535 {
		return &ArgumentError{What: "will payload", Value: fmt.Sprintf("%d bytes", len(w.Payload)), Err: errors.New("longer than 65,535 bytes")}
	}
	return nil
}

// validateMessage checks the fields of m, naming them with prefix in
// errors; the encoded message must have a Remaining Length of at most limit.
func validateMessage(m *Message, prefix string, limit int) error {
	if err := packet.ValidTopicName(m.Topic); err != nil {
		return &ArgumentError{What: prefix + "topic", Value: m.Topic, Err: err}
	}
	if m.QoS > ExactlyOnce {
		return &ArgumentError{What: prefix + "QoS", Value: fmt.Sprint(byte(m.QoS)), Err: errors.New("want 0, 1 or 2")}
	}
	if m.PayloadUTF8 && !utf8.Valid(m.Payload) {
		return &ArgumentError{What: prefix + "payload", Value: fmt.Sprintf("%d bytes", len(m.Payload)),
			Err: errors.New("PayloadUTF8 is set but the payload is not valid UTF-8 (MQTT 5.0 section 3.3.2.3.2)")}
	}
	if err := checkString(m.ContentType); err != nil {
		return &ArgumentError{What: prefix + "content type", Value: m.ContentType, Err: err}
	}
	if m.ResponseTopic != "" {
		if err := packet.ValidTopicName(m.ResponseTopic); err != nil {
			return &ArgumentError{What: prefix + "response topic", Value: m.ResponseTopic, Err: err}
		}
	}
	if n := len(m.CorrelationData); n > 65535 {
		return &ArgumentError{What: prefix + "correlation data", Value: fmt.Sprintf("%d bytes", n), Err: errors.New("longer than 65,535 bytes")}
	}
	if err := checkExpiry(m.Expiry); err != nil {
		return &ArgumentError{What: prefix + "expiry", Value: m.Expiry.String(), Err: err}
	}
	// size bounds the Remaining Length from above, cheaply, so that the
	// exact computation below runs only for messages near the limit.
	size := 64 + len(m.Topic) + len(m.Payload) + len(m.ContentType) + len(m.ResponseTopic) + len(m.CorrelationData)
	for _, u := range m.UserProperties {
		if err := checkString(u.Key); err != nil {
			return &ArgumentError{What: prefix + "user property", Value: u.Key, Err: fmt.Errorf("name %w", err)}
		}
		if err := checkString(u.Value); err != nil {
			return &ArgumentError{What: prefix + "user property", Value: u.Key, Err: fmt.Errorf("value %w", err)}
		}
		size += 5 + len(u.Key) + len(u.Value)
	}
	if size > limit {
		return checkSize(m, prefix, limit)
	}
	return nil
}

// checkExpiry checks a Message Expiry Interval: zero (no expiry) or up to
// 4,294,967,295 s. Fractions of a second are rounded up when sent.
func checkExpiry(d time.Duration) error {
	switch {
	case d < 0:
		return errors.New("negative: want 0 (no expiry) or up to 4,294,967,295 s")
	case d > maxExpiry:
		return errors.New("more than 4,294,967,295 s, the largest Message Expiry Interval")
	}
	return nil
}

// checkSize checks that m encodes, over MQTT 5.0 with a packet identifier
// and a topic alias (which the writer may add), to a PUBLISH whose Remaining
// Length is at most limit, using the encoder's own arithmetic. A prefix
// marks the will, whose limit leaves room for the rest of the CONNECT.
func checkSize(m *Message, prefix string, limit int) error {
	var p packet.Publish
	m.toPublish(&p)
	p.QoS = 1
	p.Props.TopicAlias = 1
	p.Props.Set(packet.PropTopicAlias)
	bare := p // without the message's properties
	bare.Props = packet.Properties{TopicAlias: 1}
	bare.Props.Set(packet.PropTopicAlias)
	// Size is 1 + len(Remaining Length) + Remaining Length, and limit is
	// above 2^21, where the Remaining Length takes four bytes: comparing
	// Size with 5 + limit compares the Remaining Length with limit.
	nBare, n := bare.Size(packet.V5), p.Size(packet.V5)
	what, value := prefix+"payload", fmt.Sprintf("%d bytes", len(m.Payload))
	switch {
	case nBare > 5+limit:
		n = nBare
	case n > 5+limit:
		what, value = prefix+"properties", fmt.Sprintf("%d bytes", n-nBare)
	default:
		return nil
	}
	why := fmt.Errorf("%w: the PUBLISH would be up to %d bytes, more than the %d an MQTT packet can hold", packet.ErrTooLarge, n, 5+limit)
	if prefix != "" {
		why = fmt.Errorf("%w: the will would take up to %d bytes, more than the %d a CONNECT leaves it beside the other fields", packet.ErrTooLarge, n, 5+limit)
	}
	return &ArgumentError{What: what, Value: value, Err: why}
}
