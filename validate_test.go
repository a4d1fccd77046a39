package mqtt

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt/packet"
)

// validateCase is one message for validatePublish or validateWill: valid
// when what is empty, otherwise refused with an *ArgumentError about what,
// wrapping cause (when set) and saying want in its text.
type validateCase struct {
	name  string
	m     Message
	what  string
	cause error
	want  string
}

// Strings that are too long, not UTF-8 or contain U+0000, shared by cases.
var (
	validateLong    = strings.Repeat("a", 65536)
	validateMax     = strings.Repeat("a", 65535)
	validateBadUTF8 = "a\xffb"
	validateNUL     = "a\x00b"
)

// validateBigProps returns user properties whose encoding, with a PUBLISH
// on topic "t" with a packet identifier and a topic alias, gives a Remaining
// Length of exactly packet.MaxRemainingLength+extra, sharing one string so
// that they cost little memory.
func validateBigProps(extra int) []UserProperty {
	// Remaining Length: 2+1 topic, 2 packet ID, 4 properties length,
	// 3 topic alias, and 5+len(value) per user property with an empty name.
	const fixed = 2 + 1 + 2 + 4 + 3
	rest := packet.MaxRemainingLength + extra - fixed
	var props []UserProperty
	for rest > 5+65535 {
		props = append(props, UserProperty{Value: validateMax})
		rest -= 5 + 65535
	}
	return append(props, UserProperty{Value: validateMax[:rest-5]})
}

// validateCases are the cases for both a published message and the will.
func validateCases() []validateCase {
	return []validateCase{
		{name: "minimal", m: Message{Topic: "t"}},
		{name: "every property", m: Message{Topic: "a/b", QoS: 2, Retain: true, Payload: []byte("héllo"), PayloadUTF8: true,
			ContentType: "text/plain", ResponseTopic: "r/1", CorrelationData: []byte{1, 2}, Expiry: time.Minute,
			UserProperties: []UserProperty{{Key: "k", Value: "v"}, {Key: "k", Value: ""}}}},
		{name: "strings of 65,535 bytes", m: Message{Topic: validateMax, ContentType: validateMax, ResponseTopic: validateMax,
			CorrelationData: []byte(validateMax), UserProperties: []UserProperty{{Key: validateMax, Value: validateMax}}}},
		// Receive-only fields are ignored: a received message can be
		// published again as it is [MQTT-3.3.4-6].
		{name: "subscription IDs ignored", m: Message{Topic: "t", SubscriptionIDs: []uint32{0, 1 << 30}, Duplicate: true}},

		{name: "empty topic", m: Message{}, what: "topic", cause: packet.ErrEmptyTopic, want: "topic is empty"},
		{name: "topic with wildcard", m: Message{Topic: "a/+"}, what: "topic", cause: packet.ErrWildcardInTopic, want: "wildcard"},
		{name: "topic too long", m: Message{Topic: validateLong}, what: "topic", cause: packet.ErrTopicTooLong, want: "longer than 65535 bytes"},
		{name: "topic not UTF-8", m: Message{Topic: validateBadUTF8}, what: "topic", cause: packet.ErrTopicEncoding},
		{name: "QoS 3", m: Message{Topic: "t", QoS: 3}, what: "QoS", want: "want 0, 1 or 2"},
		{name: "payload not UTF-8", m: Message{Topic: "t", PayloadUTF8: true, Payload: []byte{0xff}}, what: "payload", want: "PayloadUTF8 is set"},
		{name: "payload not UTF-8 without PayloadUTF8", m: Message{Topic: "t", Payload: []byte{0xff}}},

		{name: "content type too long", m: Message{Topic: "t", ContentType: validateLong}, what: "content type", want: "longer than 65,535 bytes (65536)"},
		{name: "content type not UTF-8", m: Message{Topic: "t", ContentType: validateBadUTF8}, what: "content type", want: "not valid UTF-8"},
		{name: "content type with U+0000", m: Message{Topic: "t", ContentType: validateNUL}, what: "content type", want: "contains U+0000"},
		{name: "response topic with wildcard", m: Message{Topic: "t", ResponseTopic: "r/#"}, what: "response topic", cause: packet.ErrWildcardInTopic},
		{name: "response topic too long", m: Message{Topic: "t", ResponseTopic: validateLong}, what: "response topic", cause: packet.ErrTopicTooLong},
		{name: "response topic with U+0000", m: Message{Topic: "t", ResponseTopic: validateNUL}, what: "response topic", cause: packet.ErrTopicEncoding},
		{name: "correlation data too long", m: Message{Topic: "t", CorrelationData: []byte(validateLong)}, what: "correlation data", want: "longer than 65,535 bytes"},
		{name: "empty correlation data", m: Message{Topic: "t", CorrelationData: []byte{}}},

		{name: "user property name too long", m: Message{Topic: "t", UserProperties: []UserProperty{{Key: validateLong}}}, what: "user property", want: "name longer than 65,535 bytes"},
		{name: "user property value too long", m: Message{Topic: "t", UserProperties: []UserProperty{{Key: "k", Value: validateLong}}}, what: "user property", want: "value longer than 65,535 bytes"},
		{name: "user property name with U+0000", m: Message{Topic: "t", UserProperties: []UserProperty{{Key: validateNUL}}}, what: "user property", want: "name contains U+0000"},
		{name: "user property value not UTF-8", m: Message{Topic: "t", UserProperties: []UserProperty{{Key: "k", Value: validateBadUTF8}}}, what: "user property", want: "value not valid UTF-8"},
		{name: "user property value surrogate", m: Message{Topic: "t", UserProperties: []UserProperty{{Key: "k", Value: "\xed\xa0\x80"}}}, what: "user property", want: "value not valid UTF-8"},

		// Expiry: 0 or up to 2^32-1 s; fractions round up when sent.
		{name: "expiry 1 ns", m: Message{Topic: "t", Expiry: time.Nanosecond}},
		{name: "expiry maximum", m: Message{Topic: "t", Expiry: maxExpiry}},
		{name: "expiry maximum minus a fraction", m: Message{Topic: "t", Expiry: maxExpiry - time.Millisecond}},
		{name: "expiry over maximum by 1 ns", m: Message{Topic: "t", Expiry: maxExpiry + 1}, what: "expiry", want: "more than 4,294,967,295 s"},
		{name: "expiry 2^32 s", m: Message{Topic: "t", Expiry: 1 << 32 * time.Second}, what: "expiry", want: "more than 4,294,967,295 s"},
		{name: "expiry negative", m: Message{Topic: "t", Expiry: -time.Second}, what: "expiry", want: "negative"},
	}
}

// TestValidatePublish checks that validatePublish accepts valid messages and
// refuses each invalid field with an *ArgumentError saying which and why;
// and that every message it accepts encodes.
func TestValidatePublish(t *testing.T) {
	t.Parallel()
	// A payload that, with topic "t", a packet ID, a topic alias and the
	// properties length, makes the Remaining Length exactly the maximum.
	// The payloads are never written, so they cost address space only.
	maxPayload := packet.MaxRemainingLength - (2 + 1 + 2 + 1 + 3)
	big := make([]byte, maxPayload+1)
	cases := append(validateCases(),
		// The whole PUBLISH, with a packet ID and a topic alias, must fit.
		validateCase{name: "largest payload", m: Message{Topic: "t", Payload: big[:maxPayload]}},
		validateCase{name: "payload too large", m: Message{Topic: "t", Payload: big}, what: "payload", cause: packet.ErrTooLarge, want: "more than the 268435460"},
		validateCase{name: "largest properties", m: Message{Topic: "t", UserProperties: validateBigProps(0)}},
		validateCase{name: "properties too large", m: Message{Topic: "t", UserProperties: validateBigProps(1)}, what: "properties", cause: packet.ErrTooLarge, want: "more than the 268435460"},
		validateCase{name: "correlation data making it too large", m: Message{Topic: "t", Payload: big[:maxPayload-65535], CorrelationData: []byte(validateMax)},
			what: "properties", cause: packet.ErrTooLarge},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := validatePublish(&tc.m)
			checkValidateError(t, err, tc.what, tc.cause, tc.want)
			if err == nil {
				checkEncodes(t, &tc.m)
			}
		})
	}
}

// checkEncodes checks that m, as the writer may send it (a packet ID and a
// topic alias), encodes over MQTT 5.0; for huge messages it checks the size
// against the limit the encoder applies instead of encoding them.
func checkEncodes(t *testing.T, m *Message) {
	t.Helper()
	var p packet.Publish
	m.toPublish(&p)
	p.QoS, p.PacketID = 1, 1
	p.Props.TopicAlias = 1
	p.Props.Set(packet.PropTopicAlias)
	if n := p.Size(packet.V5); n > 1<<20 {
		if n > packet.MaxPacketSize {
			t.Errorf("accepted message of %d bytes, more than %d", n, packet.MaxPacketSize)
		}
		return
	}
	if _, err := p.Append(nil, packet.V5); err != nil {
		t.Errorf("accepted message does not encode: %v", err)
	}
}

// checkValidateError checks err against a case: nil when what is empty,
// otherwise an *ArgumentError about what wrapping ErrInvalidArgument and
// cause, whose text contains want and "mqtt: " once, at the start.
func checkValidateError(t *testing.T, err error, what string, cause error, want string) {
	t.Helper()
	if what == "" {
		if err != nil {
			t.Errorf("refused: %v", err)
		}
		return
	}
	ae, ok := errors.AsType[*ArgumentError](err)
	if !ok {
		t.Fatalf("error %v (%T), want an *ArgumentError about %s", err, err, what)
	}
	if ae.What != what {
		t.Errorf("ArgumentError.What = %q, want %q (%v)", ae.What, what, err)
	}
	if !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("%v does not wrap ErrInvalidArgument", err)
	}
	if cause != nil && !errors.Is(err, cause) {
		t.Errorf("%v does not wrap %v", err, cause)
	}
	s := err.Error()
	if !strings.Contains(s, want) {
		t.Errorf("error %q does not say %q", s, want)
	}
	if !strings.HasPrefix(s, "mqtt: ") || strings.Count(s, "mqtt: ") != 1 {
		t.Errorf("error %q does not start with \"mqtt: \" exactly once", s)
	}
}

// TestValidateWill checks the will as a message, named "will ..." in
// errors, plus its own limits: a payload of at most 65,535 bytes and room
// in the CONNECT for the client's other fields.
func TestValidateWill(t *testing.T) {
	t.Parallel()
	for _, tc := range validateCases() {
		if tc.what != "" {
			tc.what = "will " + tc.what
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkValidateError(t, validateWill(&tc.m), tc.what, tc.cause, tc.want)
		})
	}
	for _, tc := range []validateCase{
		{name: "payload of 65,535 bytes", m: Message{Topic: "t", Payload: make([]byte, 65535)}},
		{name: "payload of 65,536 bytes", m: Message{Topic: "t", Payload: make([]byte, 65536)}, what: "will payload", want: "longer than 65,535 bytes"},
		{name: "properties filling a packet", m: Message{Topic: "t", UserProperties: validateBigProps(0)}, what: "will properties", cause: packet.ErrTooLarge, want: "a CONNECT leaves it"},
		{name: "properties leaving room in the CONNECT", m: Message{Topic: "t", UserProperties: validateBigProps(-willConnectReserve)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkValidateError(t, validateWill(&tc.m), tc.what, tc.cause, tc.want)
		})
	}
}

// TestCheckString checks that each reason a string cannot be an MQTT UTF-8
// Encoded String gets its own text.
func TestCheckString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s, want string
	}{
		{"", ""},
		{"héllo", ""},
		{validateMax, ""},
		{validateLong, "longer than 65,535 bytes (65536)"},
		{validateBadUTF8, "not valid UTF-8"},
		{"\xed\xa0\x80", "not valid UTF-8"}, // an encoded surrogate [MQTT-1.5.4-1]
		{validateNUL, "contains U+0000"},
		{"é\x00", "contains U+0000"},
	} {
		err := checkString(tc.s)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("checkString(%.20q) = %v, want nil", tc.s, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("checkString(%.20q) = %v, want %q", tc.s, err, tc.want)
		}
	}
}

// TestExpiryRoundsUp checks how Message.Expiry is sent: in whole seconds,
// rounded up, so that a message never expires earlier than asked, and
// never wrapped around 32 bits.
func TestExpiryRoundsUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    time.Duration
		want uint32
		sent bool
	}{
		{0, 0, false},
		{time.Nanosecond, 1, true},
		{time.Second, 1, true},
		{1200 * time.Millisecond, 2, true},
		{maxExpiry - time.Millisecond, 0xffffffff, true},
		{maxExpiry, 0xffffffff, true},
		// Out of range, refused by validatePublish: saturated, not wrapped.
		{1 << 32 * time.Second, 0xffffffff, true},
		{math.MaxInt64, 0xffffffff, true},
	} {
		var p packet.Publish
		m := Message{Topic: "t", Expiry: tc.d}
		m.toPublish(&p)
		if got := p.Props.Has(packet.PropMessageExpiry); got != tc.sent {
			t.Errorf("Expiry %v: Message Expiry Interval sent = %t, want %t", tc.d, got, tc.sent)
		}
		if p.Props.MessageExpiry != tc.want {
			t.Errorf("Expiry %v sent as %d s, want %d s", tc.d, p.Props.MessageExpiry, tc.want)
		}
	}
}
