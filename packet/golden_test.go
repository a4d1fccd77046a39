package packet

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Remaining Length encodings from MQTT 3.1.1 Table 2.4 and MQTT 5.0
// Table 1-1 (Size of Variable Byte Integer): the smallest and largest value
// of each size.
var remainingLengthTable = []struct {
	n   int
	enc []byte
}{
	{0, by(0x00)},
	{127, by(0x7F)},
	{128, by(0x80, 0x01)},
	{16383, by(0xFF, 0x7F)},
	{16384, by(0x80, 0x80, 0x01)},
	{2097151, by(0xFF, 0xFF, 0x7F)},
	{2097152, by(0x80, 0x80, 0x80, 0x01)},
	{268435455, by(0xFF, 0xFF, 0xFF, 0x7F)},
}

func TestGoldenRemainingLength(t *testing.T) {
	t.Parallel()
	for _, c := range remainingLengthTable {
		if got := appendVarint(nil, c.n); !bytes.Equal(got, c.enc) {
			t.Errorf("appendVarint(%d) = % x, want % x", c.n, got, c.enc)
		}
		if got := varintLen(c.n); got != len(c.enc) {
			t.Errorf("varintLen(%d) = %d, want %d", c.n, got, len(c.enc))
		}
		// The fixed header decoder reads the same bytes back. A PUBLISH
		// header is used because its flags are not checked here.
		h, err := ReadHeader(bytes.NewReader(append(by(0x30), c.enc...)), 0)
		if err != nil {
			t.Errorf("ReadHeader(% x): %v", c.enc, err)
			continue
		}
		if h.Remaining != c.n || h.Size() != 1+len(c.enc)+c.n {
			t.Errorf("ReadHeader(% x) = %+v (size %d), want remaining %d", c.enc, h, h.Size(), c.n)
		}
		// And so does the property decoder (section 1.5.5 of MQTT 5.0).
		d := decoder{b: c.enc}
		if got := d.varint("test"); got != c.n || d.end() != nil {
			t.Errorf("decoder.varint(% x) = %d, %v", c.enc, got, d.err)
		}
	}
	if MaxRemainingLength != 268435455 || MaxPacketSize != 268435455+5 {
		t.Errorf("MaxRemainingLength = %d, MaxPacketSize = %d", MaxRemainingLength, MaxPacketSize)
	}
}

// TestGoldenRemainingLengthPublish encodes PUBLISH packets whose Remaining
// Length sits at each size boundary the encoder can reach in a test.
func TestGoldenRemainingLengthPublish(t *testing.T) {
	t.Parallel()
	for _, c := range remainingLengthTable[1:7] {
		// Topic "t" (3 bytes) and the payload make up the Remaining Length.
		p := &Publish{Topic: "t", Payload: make([]byte, c.n-3)}
		b := encode(t, p, V311)
		want := append(append(by(0x30), c.enc...), 0x00, 0x01, 't')
		if !bytes.Equal(b[:len(want)], want) || len(b) != len(want)+c.n-3 {
			t.Errorf("Remaining Length %d: packet starts % x (len %d), want % x", c.n, head(b), len(b), want)
		}
	}
}

// The string "A𪛔" (U+0041, U+2A6D4) from the non-normative example of MQTT
// 3.1.1 section 1.5.3 (Figure 1.1) and MQTT 5.0 section 1.5.4 (Figure 1-2).
var goldenUTF8 = by(0x00, 0x05, 0x41, 0xF0, 0xAA, 0x9B, 0x94)

func TestGoldenUTF8String(t *testing.T) {
	t.Parallel()
	const s = "A\U0002A6D4"
	if got := appendString(nil, s); !bytes.Equal(got, goldenUTF8) {
		t.Errorf("appendString(%q) = % x, want % x", s, got, goldenUTF8)
	}
	d := decoder{b: goldenUTF8}
	if got := d.string("test"); got != s || d.end() != nil {
		t.Errorf("decoder.string(% x) = %q, %v", goldenUTF8, got, d.err)
	}
	// As a PUBLISH topic.
	pkt := cat(by(0x30, 0x07), goldenUTF8)
	if got := encode(t, &Publish{Topic: s}, V311); !bytes.Equal(got, pkt) {
		t.Errorf("PUBLISH with topic %q = % x, want % x", s, got, pkt)
	}
	if got := read(t, pkt, V311).(*Publish); got.Topic != s {
		t.Errorf("decoded topic %q, want %q", got.Topic, s)
	}
}

type golden struct {
	name string
	v    Version
	p    Packet
	b    []byte
}

func goldenCases() []golden {
	connect311 := &Connect{Version: V311, CleanStart: true, KeepAlive: 10, ClientID: "c",
		Will:         &Will{Topic: "w", Payload: []byte("p"), QoS: 1},
		UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("pw")}
	connect5 := &Connect{Version: V5, CleanStart: true, KeepAlive: 10, ClientID: "c",
		Will:         &Will{Topic: "w", Payload: []byte("p"), QoS: 1},
		UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("pw")}
	connect5.Props.SessionExpiry = 10
	connect5.Props.Set(PropSessionExpiry)
	pubackReason := &Ack{PacketType: PUBACK, PacketID: 10, ReasonCode: NoMatchingSubscribers}
	pubackString := &Ack{PacketType: PUBACK, PacketID: 10, ReasonCode: NoMatchingSubscribers}
	pubackString.Props.ReasonString = "none"
	pubackString.Props.Set(PropReasonString)
	pub5 := &Publish{Topic: "a/b", QoS: 1, PacketID: 10, Payload: []byte("hi")}
	pub5.Props.User = []UserProperty{{"k", "v"}}
	sub5 := &Subscribe{PacketID: 10, Props: Properties{SubscriptionIDs: []uint32{128}},
		Subscriptions: []Subscription{{Filter: "a/b", QoS: 1, NoLocal: true}, {Filter: "c/d", QoS: 2, RetainHandling: 2}}}

	return []golden{
		// MQTT 3.1.1 Figure 3.6: protocol name "MQTT", level 4, flags 0xCE
		// (user name, password, will QoS 1, will flag, clean session),
		// Keep Alive 10; the payload follows in the order of [MQTT-3.1.3-1].
		{"connect-3.1.1-figure-3.6", V311, connect311, cat(by(0x10, 26),
			by(0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xCE, 0x00, 0x0A),
			str("c"), str("w"), str("p"), str("u"), str("pw"))},
		// MQTT 5.0 Figure 3-6: as above with level 5 and properties
		// (length 5: Session Expiry Interval 17 = 10); the Will Properties
		// are empty, [MQTT-2.2.2-1].
		{"connect-5.0-figure-3-6", V5, connect5, cat(by(0x10, 33),
			by(0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0xCE, 0x00, 0x0A, 0x05, 0x11, 0x00, 0x00, 0x00, 0x0A),
			str("c"), by(0x00), str("w"), str("p"), str("u"), str("pw"))},
		{"connect-3.1.1-minimal", V311, &Connect{Version: V311, CleanStart: true, ClientID: "id"},
			by(0x10, 0x0E, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x02, 'i', 'd')},

		// MQTT 3.1.1 section 3.2: CONNACK is 0x20 0x02, flags, return code.
		{"connack-3.1.1-accepted", V311, &Connack{}, by(0x20, 0x02, 0x00, 0x00)},
		{"connack-3.1.1-session-present", V311, &Connack{SessionPresent: true}, by(0x20, 0x02, 0x01, 0x00)},
		{"connack-3.1.1-not-authorized", V311, &Connack{ReasonCode: RefusedNotAuthorized}, by(0x20, 0x02, 0x00, 0x05)},
		{"connack-5.0", V5, &Connack{}, by(0x20, 0x03, 0x00, 0x00, 0x00)},

		// MQTT 3.1.1 sections 3.12-3.14 and 5.0 sections 3.12, 3.13.
		{"pingreq", V311, &Pingreq{}, by(0xC0, 0x00)},
		{"pingresp", V311, &Pingresp{}, by(0xD0, 0x00)},
		{"pingreq-5.0", V5, &Pingreq{}, by(0xC0, 0x00)},
		{"pingresp-5.0", V5, &Pingresp{}, by(0xD0, 0x00)},
		{"disconnect-3.1.1", V311, &Disconnect{}, by(0xE0, 0x00)},
		// 5.0 section 3.14.2.1: Reason Code and properties omitted when
		// Normal disconnection without properties (Remaining Length 0).
		{"disconnect-5.0-normal", V5, &Disconnect{}, by(0xE0, 0x00)},
		{"disconnect-5.0-with-will", V5, &Disconnect{ReasonCode: DisconnectWithWill}, by(0xE0, 0x01, 0x04)},
		{"auth-5.0-success", V5, &Auth{}, by(0xF0, 0x00)},
		{"auth-5.0-continue", V5, &Auth{ReasonCode: ContinueAuthentication}, by(0xF0, 0x01, 0x18)},

		// MQTT 3.1.1 section 3.4 PUBACK, and PUBREL's reserved flags 0010
		// [MQTT-3.6.1-1].
		{"puback-3.1.1", V311, &Ack{PacketType: PUBACK, PacketID: 10}, by(0x40, 0x02, 0x00, 0x0A)},
		{"pubrec-3.1.1", V311, &Ack{PacketType: PUBREC, PacketID: 0x1234}, by(0x50, 0x02, 0x12, 0x34)},
		{"pubrel-3.1.1", V311, &Ack{PacketType: PUBREL, PacketID: 10}, by(0x62, 0x02, 0x00, 0x0A)},
		{"pubcomp-3.1.1", V311, &Ack{PacketType: PUBCOMP, PacketID: 10}, by(0x70, 0x02, 0x00, 0x0A)},
		// MQTT 5.0 section 3.4.2.1: Reason Code and Property Length omitted
		// for Success without properties, Remaining Length 2.
		{"puback-5.0-short", V5, &Ack{PacketType: PUBACK, PacketID: 10}, by(0x40, 0x02, 0x00, 0x0A)},
		// 3.4.2.2.1: Remaining Length 3 means no Property Length.
		{"puback-5.0-reason", V5, pubackReason, by(0x40, 0x03, 0x00, 0x0A, 0x10)},
		{"puback-5.0-reason-string", V5, pubackString, cat(by(0x40, 0x0B, 0x00, 0x0A, 0x10, 0x07, 0x1F), str("none"))},
		{"pubrel-5.0-short", V5, &Ack{PacketType: PUBREL, PacketID: 10}, by(0x62, 0x02, 0x00, 0x0A)},

		// MQTT 3.1.1 Figure 3.11: Topic Name "a/b", Packet Identifier 10,
		// here at QoS 1 (fixed header 0x32) with payload "hi".
		{"publish-3.1.1-qos1-figure-3.11", V311, &Publish{Topic: "a/b", QoS: 1, PacketID: 10, Payload: []byte("hi")},
			by(0x32, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 'h', 'i')},
		{"publish-3.1.1-qos0-retain", V311, &Publish{Topic: "a/b", Retain: true, Payload: []byte("hi")},
			by(0x31, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i')},
		{"publish-3.1.1-qos2-dup", V311, &Publish{Topic: "a/b", QoS: 2, Dup: true, PacketID: 10},
			by(0x3C, 0x07, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A)},
		// MQTT 5.0 Figure 3-9: as above with a Property Length of 0.
		{"publish-5.0-figure-3-9", V5, &Publish{Topic: "a/b", QoS: 1, PacketID: 10},
			by(0x32, 0x08, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 0x00)},
		{"publish-5.0-user-property", V5, pub5,
			cat(by(0x32, 0x11, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 0x07, 0x26), str("k"), str("v"), by('h', 'i'))},

		// MQTT 3.1.1 Figures 3.21/3.22 and 5.0 Figures 3-19/3-21: Packet
		// Identifier 10, "a/b" at QoS 1 and "c/d" at QoS 2, fixed header
		// flags 0010 [MQTT-3.8.1-1].
		{"subscribe-3.1.1-figure-3.22", V311, &Subscribe{PacketID: 10,
			Subscriptions: []Subscription{{Filter: "a/b", QoS: 1}, {Filter: "c/d", QoS: 2}}},
			by(0x82, 0x0E, 0x00, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x01, 0x00, 0x03, 'c', '/', 'd', 0x02)},
		{"subscribe-5.0-figure-3-21", V5, &Subscribe{PacketID: 10,
			Subscriptions: []Subscription{{Filter: "a/b", QoS: 1}, {Filter: "c/d", QoS: 2}}},
			by(0x82, 0x0F, 0x00, 0x0A, 0x00, 0x00, 0x03, 'a', '/', 'b', 0x01, 0x00, 0x03, 'c', '/', 'd', 0x02)},
		// 5.0 Figure 3-20: No Local is bit 2, Retain Handling bits 4-5.
		{"subscribe-5.0-options", V5, sub5,
			by(0x82, 0x12, 0x00, 0x0A, 0x03, 0x0B, 0x80, 0x01, 0x00, 0x03, 'a', '/', 'b', 0x05, 0x00, 0x03, 'c', '/', 'd', 0x22)},
		// MQTT 3.1.1 Figure 3.26: return codes 0, 2 and 0x80 (failure).
		{"suback-3.1.1-figure-3.26", V311, &Suback{PacketID: 10, ReasonCodes: []ReasonCode{0x00, 0x02, 0x80}},
			by(0x90, 0x05, 0x00, 0x0A, 0x00, 0x02, 0x80)},
		{"suback-5.0", V5, &Suback{PacketID: 10, ReasonCodes: []ReasonCode{0x01, 0x87}},
			by(0x90, 0x05, 0x00, 0x0A, 0x00, 0x01, 0x87)},
		// MQTT 3.1.1 Figure 3.30 and 5.0 Figure 3.30: "a/b" and "c/d",
		// flags 0010 [MQTT-3.10.1-1].
		{"unsubscribe-3.1.1-figure-3.30", V311, &Unsubscribe{PacketID: 10, Filters: []string{"a/b", "c/d"}},
			by(0xA2, 0x0C, 0x00, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x03, 'c', '/', 'd')},
		{"unsubscribe-5.0", V5, &Unsubscribe{PacketID: 10, Filters: []string{"a/b", "c/d"}},
			by(0xA2, 0x0D, 0x00, 0x0A, 0x00, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x03, 'c', '/', 'd')},
		{"unsuback-3.1.1", V311, &Unsuback{PacketID: 10}, by(0xB0, 0x02, 0x00, 0x0A)},
		{"unsuback-5.0", V5, &Unsuback{PacketID: 10, ReasonCodes: []ReasonCode{0x00, 0x11}},
			by(0xB0, 0x05, 0x00, 0x0A, 0x00, 0x00, 0x11)},
	}
}

func TestGoldenEncode(t *testing.T) {
	t.Parallel()
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := encode(t, c.p, c.v); !bytes.Equal(got, c.b) {
				t.Errorf("Append:\n got % x\nwant % x", got, c.b)
			}
		})
	}
}

func TestGoldenDecode(t *testing.T) {
	t.Parallel()
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := read(t, c.b, c.v)
			if diff := cmp.Diff(c.p, got, cmpOpts...); diff != "" {
				t.Errorf("Read(% x) (-want +got):\n%s", c.b, diff)
			}
		})
	}
}

// TestGoldenDecodeOnly covers encodings a conforming sender may use that this
// encoder never produces.
func TestGoldenDecodeOnly(t *testing.T) {
	t.Parallel()
	cases := []golden{
		// 5.0 PUBACK with Reason Code 0 and an empty property block
		// (Remaining Length 4) equals the short form.
		{"puback-5.0-explicit-success", V5, &Ack{PacketType: PUBACK, PacketID: 10}, by(0x40, 0x04, 0x00, 0x0A, 0x00, 0x00)},
		// 5.0 DISCONNECT with a Reason Code and Property Length 0.
		{"disconnect-5.0-explicit", V5, &Disconnect{ReasonCode: 0x8E}, by(0xE0, 0x02, 0x8E, 0x00)},
		// A two-byte CONNACK answering a 5.0 CONNECT (a 3.1.1 server's
		// refusal with return code 1, unacceptable protocol version).
		{"connack-5.0-from-3.1.1-server", V5, &Connack{ReasonCode: 0x01}, by(0x20, 0x02, 0x00, 0x01)},
		// 5.0 allows a password without a user name (section 3.1.2.9).
		{"connect-5.0-password-only", V5, &Connect{Version: V5, ClientID: "c", PasswordFlag: true, Password: []byte("x")},
			cat(by(0x10, 0x11, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x40, 0x00, 0x00, 0x00), str("c"), str("x"))},
		// CONNECT carries its own level: a 3.1.1 CONNECT decodes the same
		// whatever version the caller expects.
		{"connect-3.1.1-read-as-5.0", V5, &Connect{Version: V311, ClientID: "c"},
			cat(by(0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x00, 0x00, 0x00), str("c"))},
		// U+FEFF must not be stripped [MQTT-1.5.4-3] (3.1.1: [MQTT-1.5.3-3]).
		{"publish-bom-kept", V311, &Publish{Topic: "\uFEFFa"}, by(0x30, 0x06, 0x00, 0x04, 0xEF, 0xBB, 0xBF, 'a')},
	}
	for _, c := range cases {
		got := read(t, c.b, c.v)
		if diff := cmp.Diff(c.p, got, cmpOpts...); diff != "" {
			t.Errorf("%s: Read(% x) (-want +got):\n%s", c.name, c.b, diff)
		}
	}
}
