package packet

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type invalidCase struct {
	name string
	v    Version
	b    []byte
	want error // ErrMalformed, ErrProtocol or ErrTooLarge
}

// Variable headers reused below.
var (
	connectHead311 = by(0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04)
	connectHead5   = by(0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05)
)

// connect5 builds a 5.0 CONNECT with the given flags, CONNECT properties and
// payload after the client identifier "c".
func connect5(flags byte, p []byte, rest ...[]byte) []byte {
	return raw(0x10, connectHead5, by(flags, 0x00, 0x3C), p, str("c"), cat(rest...))
}

// publish5 builds a 5.0 QoS 0 PUBLISH to "t" with the given encoded properties.
func publish5(p []byte) []byte { return raw(0x30, str("t"), p, str("x")) }

func invalidCases() []invalidCase {
	return []invalidCase{
		// Fixed header [MQTT-2.1.3-1] (3.1.1: [MQTT-2.2.2-1], [MQTT-2.2.2-2]).
		{"reserved-type-0", V311, by(0x00, 0x00), ErrMalformed},
		{"reserved-type-0-flags", V5, by(0x0F, 0x00), ErrMalformed},
		{"connect-flags", V311, cat(by(0x11), vbi(12), connectHead311, by(0x02, 0, 0), str("c")), ErrMalformed},
		{"connack-flags", V5, by(0x21, 0x03, 0x00, 0x00, 0x00), ErrMalformed},
		{"puback-flags", V311, by(0x42, 0x02, 0x00, 0x01), ErrMalformed},
		{"pubrel-flags-0 [MQTT-3.6.1-1]", V311, by(0x60, 0x02, 0x00, 0x01), ErrMalformed},
		{"pubrel-flags-3", V5, by(0x63, 0x02, 0x00, 0x01), ErrMalformed},
		{"subscribe-flags-0 [MQTT-3.8.1-1]", V311, raw(0x80, u16(1), str("a"), by(0)), ErrMalformed},
		{"subscribe-flags-a", V5, raw(0x8A, u16(1), by(0), str("a"), by(0)), ErrMalformed},
		{"unsubscribe-flags-0 [MQTT-3.10.1-1]", V311, raw(0xA0, u16(1), str("a")), ErrMalformed},
		{"pingreq-flags", V311, by(0xC1, 0x00), ErrMalformed},
		{"disconnect-flags", V5, by(0xE8, 0x00), ErrMalformed},
		{"auth-flags", V5, by(0xF1, 0x00), ErrMalformed},

		// Remaining Length: at most four bytes, minimally encoded
		// [MQTT-1.5.5-1] (3.1.1 section 2.2.3).
		{"remaining-length-5-bytes", V311, by(0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F), ErrMalformed},
		{"remaining-length-5-bytes-zero", V5, by(0xC0, 0x80, 0x80, 0x80, 0x80, 0x00), ErrMalformed},
		{"remaining-length-non-minimal-0", V311, by(0xC0, 0x80, 0x00), ErrMalformed},
		{"remaining-length-non-minimal-127", V311, by(0x30, 0xFF, 0x80, 0x00), ErrMalformed},
		{"remaining-length-non-minimal-4-bytes", V5, by(0xD0, 0x80, 0x80, 0x80, 0x00), ErrMalformed},

		// PUBLISH.
		{"publish-qos3 [MQTT-3.3.1-4]", V311, raw(0x36, str("t"), u16(1)), ErrMalformed},
		{"publish-qos3-retain-dup", V5, raw(0x3F, str("t"), u16(1), by(0)), ErrMalformed},
		{"publish-dup-qos0 [MQTT-3.3.1-2]", V311, raw(0x38, str("t")), ErrMalformed},
		{"publish-wildcard-plus [MQTT-3.3.2-2]", V311, raw(0x30, str("a/+")), ErrMalformed},
		{"publish-wildcard-hash [MQTT-3.3.2-2]", V5, raw(0x30, str("#"), by(0)), ErrMalformed},
		{"publish-wildcard-inside", V311, raw(0x30, str("a/b#c")), ErrMalformed},
		{"publish-topic-nul [MQTT-1.5.4-2]", V311, raw(0x30, str("a\x00b")), ErrMalformed},
		{"publish-topic-nul-after-non-ascii", V5, raw(0x30, str("é\x00"), by(0)), ErrMalformed},
		{"publish-topic-surrogate [MQTT-1.5.4-1]", V311, raw(0x30, by(0x00, 0x03, 0xED, 0xA0, 0x80)), ErrMalformed},
		{"publish-topic-surrogate-low", V5, raw(0x30, by(0x00, 0x04, 'a', 0xED, 0xBF, 0xBF), by(0)), ErrMalformed},
		{"publish-topic-bad-continuation", V311, raw(0x30, by(0x00, 0x02, 0xC3, 0x28)), ErrMalformed},
		{"publish-topic-overlong-nul", V311, raw(0x30, by(0x00, 0x02, 0xC0, 0x80)), ErrMalformed},
		{"publish-topic-truncated-sequence", V311, raw(0x30, by(0x00, 0x02, 'a', 0xE2)), ErrMalformed},
		{"publish-topic-ff", V311, raw(0x30, by(0x00, 0x01, 0xFF)), ErrMalformed},
		{"publish-topic-above-u10ffff", V311, raw(0x30, by(0x00, 0x04, 0xF4, 0x90, 0x80, 0x80)), ErrMalformed},
		{"publish-topic-overruns", V311, raw(0x30, by(0x00, 0x09, 'a')), ErrMalformed},
		{"publish-packet-id-0 [MQTT-2.2.1-3]", V311, raw(0x32, str("t"), u16(0)), ErrProtocol},
		{"publish-packet-id-0-qos2", V5, raw(0x34, str("t"), u16(0), by(0)), ErrProtocol},
		{"publish-empty-topic-3.1.1 [MQTT-4.7.3-1]", V311, raw(0x30, str(""), by('x')), ErrProtocol},
		{"publish-empty-topic-no-alias", V5, raw(0x30, str(""), by(0), by('x')), ErrProtocol},
		{"publish-packet-id-truncated", V311, raw(0x32, str("t"), by(0x01)), ErrMalformed},

		// Properties (MQTT 5.0 section 2.2.2).
		{"property-not-allowed-topic-alias-in-connack", V5,
			raw(0x20, by(0x00, 0x00), props(by(0x23), u16(1))), ErrMalformed},
		{"property-not-allowed-will-delay-in-connect", V5,
			connect5(0x02, props(by(0x18), u32(1))), ErrMalformed},
		{"property-not-allowed-session-expiry-in-will", V5,
			connect5(0x06, by(0), props(by(0x11), u32(1)), str("w"), str("p")), ErrMalformed},
		{"property-not-allowed-reason-string-in-publish", V5, publish5(props(by(0x1F), str("r"))), ErrMalformed},
		{"property-not-allowed-subscription-id-in-puback", V5,
			raw(0x40, u16(1), by(0x00), props(by(0x0B, 0x01))), ErrMalformed},
		{"property-twice-content-type", V5,
			publish5(props(by(0x03), str("a"), by(0x03), str("b"))), ErrProtocol},
		{"property-twice-topic-alias", V5,
			publish5(props(by(0x23), u16(1), by(0x23), u16(1))), ErrProtocol},
		{"property-twice-reason-string", V5,
			raw(0x40, u16(1), by(0x10), props(by(0x1F), str("a"), by(0x1F), str("a"))), ErrProtocol},
		{"property-twice-session-expiry", V5,
			connect5(0x02, props(by(0x11), u32(1), by(0x11), u32(1))), ErrProtocol},
		{"property-length-overruns-packet", V5, raw(0x30, str("t"), by(0x0A, 0x01, 0x01)), ErrMalformed},
		{"property-length-overruns-by-one", V5, raw(0x30, str("t"), by(0x06, 0x02, 0x00, 0x00, 0x00, 0x01)), ErrMalformed},
		{"property-value-overruns-property-length", V5, raw(0x30, str("t"), by(0x02, 0x02, 0x00, 0x00, 0x00, 0x01)), ErrMalformed},
		{"property-string-overruns", V5, raw(0x30, str("t"), by(0x04, 0x03, 0x00, 0x05, 'a')), ErrMalformed},
		{"property-length-non-minimal [MQTT-1.5.5-1]", V5, raw(0x30, str("t"), by(0x80, 0x00)), ErrMalformed},
		{"property-length-5-bytes", V5, raw(0x30, str("t"), by(0x80, 0x80, 0x80, 0x80, 0x00)), ErrMalformed},
		{"property-id-unknown-0", V5, publish5(props(by(0x00))), ErrMalformed},
		{"property-id-unknown-4", V5, publish5(props(by(0x04, 0x00))), ErrMalformed},
		{"property-id-unknown-2b", V5, publish5(props(by(0x2B, 0x00))), ErrMalformed},
		{"property-id-257-does-not-wrap-to-1", V5, publish5(props(by(0x81, 0x02, 0x01))), ErrMalformed},
		{"property-id-non-minimal [MQTT-1.5.5-1]", V5, publish5(props(by(0x81, 0x00, 0x01))), ErrMalformed},
		{"property-payload-format-2", V5, publish5(props(by(0x01, 0x02))), ErrProtocol},
		{"property-request-problem-info-2", V5, connect5(0x02, props(by(0x17, 0x02))), ErrProtocol},
		{"property-request-response-info-ff", V5, connect5(0x02, props(by(0x19, 0xFF))), ErrProtocol},
		{"property-maximum-qos-2", V5, raw(0x20, by(0, 0), props(by(0x24, 0x02))), ErrProtocol},
		{"property-retain-available-2", V5, raw(0x20, by(0, 0), props(by(0x25, 0x02))), ErrProtocol},
		{"property-wildcard-available-2", V5, raw(0x20, by(0, 0), props(by(0x28, 0x02))), ErrProtocol},
		{"property-receive-maximum-0-connect", V5, connect5(0x02, props(by(0x21), u16(0))), ErrProtocol},
		{"property-receive-maximum-0-connack", V5, raw(0x20, by(0, 0), props(by(0x21), u16(0))), ErrProtocol},
		{"property-maximum-packet-size-0", V5, connect5(0x02, props(by(0x27), u32(0))), ErrProtocol},
		{"property-topic-alias-0 [MQTT-3.3.2-8]", V5, publish5(props(by(0x23), u16(0))), ErrProtocol},
		{"property-subscription-id-0", V5, publish5(props(by(0x0B, 0x00))), ErrProtocol},
		{"property-subscription-id-twice-in-subscribe", V5,
			raw(0x82, u16(1), props(by(0x0B, 0x01, 0x0B, 0x02)), str("a"), by(0)), ErrProtocol},
		{"property-subscription-id-5-bytes", V5, publish5(props(by(0x0B, 0x80, 0x80, 0x80, 0x80, 0x01))), ErrMalformed},
		{"property-user-key-bad-utf8 [MQTT-1.5.7-1]", V5, publish5(props(by(0x26), by(0x00, 0x01, 0xFF), str("v"))), ErrMalformed},
		{"property-user-value-nul", V5, publish5(props(by(0x26), str("k"), str("\x00"))), ErrMalformed},
		{"property-user-value-missing", V5, publish5(props(by(0x26), str("k"))), ErrMalformed},
		{"property-auth-data-without-method", V5, connect5(0x02, props(by(0x16), str("d"))), ErrProtocol},

		// CONNECT.
		{"connect-reserved-flag [MQTT-3.1.2-3]", V311, raw(0x10, connectHead311, by(0x03, 0, 0), str("c")), ErrMalformed},
		{"connect-reserved-flag-5.0 [MQTT-3.1.2-3]", V5, connect5(0x01, by(0)), ErrMalformed},
		{"connect-will-qos3 [MQTT-3.1.2-14]", V311, raw(0x10, connectHead311, by(0x1E, 0, 0), str("c"), str("w"), str("p")), ErrMalformed},
		{"connect-will-qos3-5.0 [MQTT-3.1.2-12]", V5, connect5(0x1E, by(0), by(0), str("w"), str("p")), ErrMalformed},
		{"connect-will-qos-without-will-flag [MQTT-3.1.2-13]", V311, raw(0x10, connectHead311, by(0x0A, 0, 0), str("c")), ErrMalformed},
		{"connect-will-qos2-without-will-flag-5.0 [MQTT-3.1.2-11]", V5, connect5(0x12, by(0)), ErrMalformed},
		{"connect-will-retain-without-will-flag [MQTT-3.1.2-15]", V311, raw(0x10, connectHead311, by(0x22, 0, 0), str("c")), ErrMalformed},
		{"connect-will-retain-without-will-flag-5.0 [MQTT-3.1.2-13]", V5, connect5(0x22, by(0)), ErrMalformed},
		{"connect-password-without-user-name-3.1.1 [MQTT-3.1.2-22]", V311, raw(0x10, connectHead311, by(0x42, 0, 0), str("c"), str("p")), ErrMalformed},
		{"connect-protocol-name", V311, raw(0x10, str("MQIsdp"), by(0x03, 0x02, 0, 0), str("c")), ErrProtocol},
		{"connect-protocol-name-case", V5, raw(0x10, str("mqtt"), by(0x05, 0x02, 0, 0, 0), str("c")), ErrProtocol},
		{"connect-will-topic-wildcard", V311, raw(0x10, connectHead311, by(0x06, 0, 0), str("c"), str("w/#"), str("p")), ErrMalformed},
		{"connect-will-topic-empty", V311, raw(0x10, connectHead311, by(0x06, 0, 0), str("c"), str(""), str("p")), ErrMalformed},
		{"connect-will-missing", V311, raw(0x10, connectHead311, by(0x06, 0, 0), str("c")), ErrMalformed},
		{"connect-user-name-missing", V311, raw(0x10, connectHead311, by(0x82, 0, 0), str("c")), ErrMalformed},
		{"connect-password-missing", V5, connect5(0x40, by(0)), ErrMalformed},
		{"connect-client-id-bad-utf8", V311, raw(0x10, connectHead311, by(0x02, 0, 0), by(0x00, 0x01, 0x80)), ErrMalformed},
		{"connect-trailing-byte", V311, raw(0x10, connectHead311, by(0x02, 0, 0), str("c"), by(0)), ErrMalformed},

		// CONNACK.
		{"connack-reserved-flags [MQTT-3.2.2-1]", V311, by(0x20, 0x02, 0x02, 0x00), ErrMalformed},
		{"connack-reserved-flags-5.0 [MQTT-3.2.2-1]", V5, by(0x20, 0x03, 0x80, 0x00, 0x00), ErrMalformed},
		{"connack-session-present-refused [MQTT-3.2.2-4]", V311, by(0x20, 0x02, 0x01, 0x05), ErrProtocol},
		{"connack-session-present-refused-5.0 [MQTT-3.2.2-6]", V5, by(0x20, 0x03, 0x01, 0x87, 0x00), ErrProtocol},
		{"connack-3.1.1-long", V311, by(0x20, 0x03, 0x00, 0x00, 0x00), ErrMalformed},
		{"connack-short", V311, by(0x20, 0x01, 0x00), ErrMalformed},

		// Acknowledgements.
		{"puback-packet-id-0", V311, by(0x40, 0x02, 0x00, 0x00), ErrProtocol},
		{"pubrel-packet-id-0", V5, by(0x62, 0x02, 0x00, 0x00), ErrProtocol},
		{"puback-3.1.1-long", V311, by(0x40, 0x03, 0x00, 0x01, 0x00), ErrMalformed},
		{"puback-short", V5, by(0x40, 0x01, 0x00), ErrMalformed},
		{"pubcomp-trailing-after-props", V5, by(0x70, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00), ErrMalformed},

		// SUBSCRIBE.
		{"subscribe-no-filter [MQTT-3.8.3-3]", V311, raw(0x82, u16(1)), ErrProtocol},
		{"subscribe-no-filter-5.0 [MQTT-3.8.3-2]", V5, raw(0x82, u16(1), by(0)), ErrProtocol},
		{"subscribe-packet-id-0", V311, raw(0x82, u16(0), str("a"), by(0)), ErrProtocol},
		{"subscribe-reserved-option-bits [MQTT-3-8.3-4]", V311, raw(0x82, u16(1), str("a"), by(0x04)), ErrMalformed},
		{"subscribe-reserved-option-bit-7", V311, raw(0x82, u16(1), str("a"), by(0x80)), ErrMalformed},
		{"subscribe-reserved-option-bits-5.0 [MQTT-3.8.3-5]", V5, raw(0x82, u16(1), by(0), str("a"), by(0x40)), ErrMalformed},
		{"subscribe-reserved-option-bit-7-5.0 [MQTT-3.8.3-5]", V5, raw(0x82, u16(1), by(0), str("a"), by(0x81)), ErrMalformed},
		{"subscribe-qos3", V311, raw(0x82, u16(1), str("a"), by(0x03)), ErrMalformed},
		{"subscribe-qos3-5.0", V5, raw(0x82, u16(1), by(0), str("a"), by(0x03)), ErrProtocol},
		{"subscribe-retain-handling-3", V5, raw(0x82, u16(1), by(0), str("a"), by(0x30)), ErrProtocol},
		{"subscribe-no-local-shared [MQTT-3.8.3-4]", V5, raw(0x82, u16(1), by(0), str("$share/g/a"), by(0x04)), ErrProtocol},
		{"subscribe-options-missing", V311, raw(0x82, u16(1), str("a")), ErrMalformed},
		{"subscribe-filter-bad-utf8", V311, raw(0x82, u16(1), by(0x00, 0x01, 0xC0), by(0)), ErrMalformed},

		// UNSUBSCRIBE, SUBACK, UNSUBACK.
		{"unsubscribe-no-filter [MQTT-3.10.3-2]", V311, raw(0xA2, u16(1)), ErrProtocol},
		{"unsubscribe-no-filter-5.0 [MQTT-3.10.3-2]", V5, raw(0xA2, u16(1), by(0)), ErrProtocol},
		{"unsubscribe-packet-id-0", V5, raw(0xA2, u16(0), by(0), str("a")), ErrProtocol},
		{"unsubscribe-bad-filter", V311, raw(0xA2, u16(1), str("a/#/b")), ErrMalformed},
		{"suback-no-codes", V311, by(0x90, 0x02, 0x00, 0x01), ErrProtocol},
		{"suback-no-codes-5.0", V5, by(0x90, 0x03, 0x00, 0x01, 0x00), ErrProtocol},
		{"suback-3.1.1-bad-return-code [MQTT-3.9.3-2]", V311, by(0x90, 0x03, 0x00, 0x01, 0x03), ErrProtocol},
		{"suback-packet-id-0", V311, by(0x90, 0x03, 0x00, 0x00, 0x00), ErrProtocol},
		{"unsuback-3.1.1-long", V311, by(0xB0, 0x03, 0x00, 0x01, 0x00), ErrMalformed},
		{"unsuback-no-codes-5.0", V5, by(0xB0, 0x03, 0x00, 0x01, 0x00), ErrProtocol},

		// PINGREQ, PINGRESP, DISCONNECT, AUTH.
		{"pingreq-body", V311, by(0xC0, 0x01, 0x00), ErrMalformed},
		{"pingresp-body", V5, by(0xD0, 0x01, 0x00), ErrMalformed},
		{"disconnect-3.1.1-body", V311, by(0xE0, 0x01, 0x00), ErrMalformed},
		{"disconnect-property-not-allowed", V5, raw(0xE0, by(0x00), props(by(0x21), u16(1))), ErrMalformed},
		{"auth-in-3.1.1", V311, by(0xF0, 0x00), ErrProtocol},
		{"auth-bad-reason", V5, by(0xF0, 0x02, 0x01, 0x00), ErrProtocol},
	}
}

// invalidFilterCases are topic filters that SUBSCRIBE and UNSUBSCRIBE must
// reject [MQTT-4.7.1-1] (3.1.1: [MQTT-4.7.1-2], [MQTT-4.7.1-3]).
var invalidFilters = []string{"a/#/b", "a+", "#a", "a/b#", "+a/b", "a/+b", "##", "a/#/", "", "$share/g",
	"$share//a", "$share/g+/a", "$share/g#/a", "$share/g/", "a\x00b"}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	cases := invalidCases()
	for i, f := range invalidFilters {
		n := "filter-" + strings.ToValidUTF8(f, "?")
		cases = append(cases,
			invalidCase{n + "/subscribe-3.1.1", V311, raw(0x82, u16(uint16(i+1)), str(f), by(1)), ErrMalformed},
			invalidCase{n + "/subscribe-5.0", V5, raw(0x82, u16(uint16(i+1)), by(0), str(f), by(1)), ErrMalformed},
			invalidCase{n + "/unsubscribe-5.0", V5, raw(0xA2, u16(uint16(i+1)), by(0), str(f)), ErrMalformed})
	}
	for _, c := range cases {
		t.Run(c.name+"/"+c.v.String(), func(t *testing.T) {
			t.Parallel()
			p, err := Read(bytes.NewReader(c.b), c.v, 0)
			if err == nil {
				t.Fatalf("Read(% x) = %#v, want error", c.b, p)
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Read(% x) = %v, want %v", c.b, err, c.want)
			}
			if !codecError(err) {
				t.Fatalf("Read(% x) = %#v, want a *Error matching one sentinel", c.b, err)
			}
			if err.Error() == "" || !strings.HasPrefix(err.Error(), "packet: ") {
				t.Errorf("error text %q", err)
			}
		})
	}
}

// TestDecodeAcceptsBoundaries pairs some rejections with the nearest valid
// input, so that a test above cannot pass by rejecting everything.
func TestDecodeAcceptsBoundaries(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		v    Version
		b    []byte
	}{
		{"publish-qos2-dup", V311, raw(0x3D, str("t"), u16(1))},
		{"publish-topic-alias-empty-topic", V5, raw(0x30, str(""), props(by(0x23), u16(1)))},
		{"property-payload-format-1", V5, publish5(props(by(0x01, 0x01)))},
		{"property-topic-alias-max-0", V5, raw(0x20, by(0, 0), props(by(0x22), u16(0)))},
		{"property-subscription-id-max", V5, publish5(props(by(0x0B, 0xFF, 0xFF, 0xFF, 0x7F)))},
		{"property-32-subscription-ids", V5, publish5(props(bytes.Repeat(by(0x0B, 0x01), 32)))},
		{"property-user-twice-same-key", V5, publish5(props(by(0x26), str("k"), str("v"), by(0x26), str("k"), str("v")))},
		{"property-auth-data-with-method", V5, connect5(0x02, props(by(0x16), str("d"), by(0x15), str("m")))},
		{"connect-password-without-user-name-5.0", V5, connect5(0x40, by(0), str("p"))},
		{"connect-will-retain-qos2", V5, connect5(0x36, by(0), by(0), str("w"), str(""))},
		{"subscribe-no-local", V5, raw(0x82, u16(1), by(0), str("a"), by(0x2E))},
		{"subscribe-shared-retain-as-published", V5, raw(0x82, u16(1), by(0), str("$share/g/a/#"), by(0x0A))},
		{"subscribe-3.1.1-qos2", V311, raw(0x82, u16(1), str("a/+/#"), by(0x02))},
		{"suback-5.0-any-code", V5, by(0x90, 0x04, 0x00, 0x01, 0x00, 0xA2)},
		{"auth-reauthenticate", V5, by(0xF0, 0x02, 0x19, 0x00)},
		{"disconnect-5.0-empty", V5, by(0xE0, 0x00)},
	} {
		if _, err := Read(bytes.NewReader(c.b), c.v, 0); err != nil {
			t.Errorf("%s: Read(% x): %v", c.name, c.b, err)
		}
	}
}

func TestDecodeUnsupportedLevel(t *testing.T) {
	t.Parallel()
	for _, level := range []byte{0, 3, 6, 0x84} {
		b := raw(0x10, str("MQTT"), by(level, 0x02, 0, 0), str("c"))
		_, err := Read(bytes.NewReader(b), V5, 0)
		var e *Error
		if !errors.As(err, &e) || e.Code != UnsupportedProtocolVersion || e.Type != CONNECT {
			t.Errorf("level %d: %v, want unsupported protocol version", level, err)
		}
	}
}

// strictReader serves data one byte at a time and fails the test if more
// than limit bytes are read.
type strictReader struct {
	t     *testing.T
	data  []byte
	limit int
	n     int
}

func (r *strictReader) ReadByte() (byte, error) {
	if r.n >= r.limit {
		r.t.Fatalf("read byte %d beyond the %d-byte header", r.n+1, r.limit)
	}
	if r.n >= len(r.data) {
		return 0, io.EOF
	}
	r.n++
	return r.data[r.n-1], nil
}

func (r *strictReader) Read(p []byte) (int, error) {
	r.t.Fatalf("body read after the header")
	return 0, nil
}

func TestReadHeaderTooLarge(t *testing.T) {
	t.Parallel()
	// A PUBLISH announcing 2,097,152 bytes, with nothing behind the header.
	hdr := by(0x30, 0x80, 0x80, 0x80, 0x01)
	for _, max := range []int{2097152 + 4, 1024, 1, 5} {
		r := &strictReader{t: t, data: hdr, limit: len(hdr)}
		h, err := ReadHeader(r, max)
		if !errors.Is(err, ErrTooLarge) || !codecError(err) {
			t.Errorf("ReadHeader(max %d) = %+v, %v; want ErrTooLarge", max, h, err)
		}
		r = &strictReader{t: t, data: hdr, limit: len(hdr)}
		if _, err := Read(r, V311, max); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Read(max %d) = %v; want ErrTooLarge", max, err)
		}
	}
	// The size counts the fixed header: a packet of exactly maxSize bytes
	// is accepted, one byte more is not.
	b := encode(t, &Publish{Topic: "t", Payload: make([]byte, 200)}, V311)
	if _, err := Read(bytes.NewReader(b), V311, len(b)); err != nil {
		t.Errorf("packet of exactly maxSize: %v", err)
	}
	if _, err := Read(bytes.NewReader(b), V311, len(b)-1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("packet of maxSize+1: %v, want ErrTooLarge", err)
	}
	// maxSize 0 means MaxPacketSize: the largest Remaining Length passes the
	// header check.
	h, err := ReadHeader(bytes.NewReader(by(0x30, 0xFF, 0xFF, 0xFF, 0x7F)), 0)
	if err != nil || h.Size() != MaxPacketSize {
		t.Errorf("ReadHeader(largest) = %+v, %v", h, err)
	}
}

func TestReadHeaderIOErrors(t *testing.T) {
	t.Parallel()
	if _, err := ReadHeader(bytes.NewReader(nil), 0); err != io.EOF {
		t.Errorf("empty input: %v, want io.EOF", err)
	}
	for _, b := range [][]byte{by(0x30), by(0x30, 0x80), by(0x30, 0xFF, 0xFF, 0xFF)} {
		if _, err := ReadHeader(bytes.NewReader(b), 0); err != io.ErrUnexpectedEOF {
			t.Errorf("ReadHeader(% x) = %v, want io.ErrUnexpectedEOF", b, err)
		}
	}
	if _, err := Read(bytes.NewReader(by(0x30, 0x05, 0x00, 0x01)), V311, 0); err != io.ErrUnexpectedEOF {
		t.Errorf("short body: %v, want io.ErrUnexpectedEOF", err)
	}
	// A reader that is not an io.ByteReader is wrapped.
	r := struct{ io.Reader }{bytes.NewReader(by(0xC0, 0x00, 0xD0))}
	if p, err := Read(r, V311, 0); err != nil || p.Type() != PINGREQ {
		t.Errorf("Read(plain reader) = %v, %v", p, err)
	}
	if _, err := Read(r, V311, 0); err != io.ErrUnexpectedEOF {
		t.Errorf("Read(plain reader, truncated header) = %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestDecodeTruncated cuts every valid encoding of the round-trip table
// short. Read must fail on every prefix, and so must Decode of every prefix
// of the body under the original header. Decoding a prefix under a header
// that matches its length must not panic: it either fails with a typed
// error or yields a packet (some prefixes are themselves valid, such as a
// 5.0 acknowledgement without its reason code) that encodes and decodes to
// itself. The cuts are listed by truncatedCuts.
func TestDecodeTruncated(t *testing.T) {
	t.Parallel()
	for _, c := range roundTripCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := encode(t, c.p, c.v)
			h, err := ReadHeader(bytes.NewReader(b), 0)
			if err != nil {
				t.Fatal(err)
			}
			hl := len(b) - h.Remaining
			body := b[hl:]
			for _, n := range truncatedCuts(len(b), hl) {
				if len(b) <= 1<<16 || n <= hl+1 || n == len(b)-1 {
					// Past its first byte, every cut of a body fails in
					// Read's io.ReadFull after allocating the whole body:
					// for a large packet a few of them stand for all.
					if p, err := Read(bytes.NewReader(b[:n]), c.v, 0); err == nil {
						t.Fatalf("Read of %d of %d bytes = %#v, want error", n, len(b), p)
					}
				}
				if n < hl {
					continue
				}
				k := n - hl
				if _, err := Decode(h, body[:k], c.v); !errors.Is(err, ErrMalformed) {
					t.Fatalf("Decode of %d of %d body bytes = %v, want ErrMalformed", k, len(body), err)
				}
				hk := Header{Type: h.Type, Flags: h.Flags, Remaining: k}
				p, err := Decode(hk, bytes.Clone(body[:k]), c.v)
				if err != nil {
					if !codecError(err) {
						t.Fatalf("Decode of %d-byte prefix: %#v is not a typed error", k, err)
					}
					continue
				}
				b2 := encode(t, p, c.v)
				if diff := cmp.Diff(p, read(t, b2, c.v), cmpOpts...); diff != "" {
					t.Fatalf("prefix %d decoded to a packet that does not round-trip:\n%s", k, diff)
				}
			}
		})
	}
}

// truncatedCuts returns the prefix lengths TestDecodeTruncated cuts a packet
// of size bytes with a header of hl bytes to: every one up to 1024 bytes
// (the header, every field before the payload and the payload's start);
// for a longer packet, those whose body length lies on either side of a
// Remaining Length size boundary (the re-encoded prefix's header then
// changes size), four spread over the rest of the payload, and the last
// two. Other cuts deep in a payload take the same path as these, and each
// costs allocations and copies of up to the whole packet (2 MB for the
// largest case), which the race detector makes slow.
func truncatedCuts(size, hl int) []int {
	var cuts []int
	for n := 0; n < size && n <= 1024; n++ {
		cuts = append(cuts, n)
	}
	if size <= 1025 {
		return cuts
	}
	var more []int
	for _, k := range []int{128, 16384, 2097152} { // Remaining Length grows to 2, 3, 4 bytes
		more = append(more, hl+k-1, hl+k)
	}
	for i := 1; i <= 4; i++ {
		more = append(more, 1024+(size-1024)*i/5)
	}
	more = append(more, size-2, size-1)
	slices.Sort(more)
	for _, n := range slices.Compact(more) {
		if n > 1024 && n < size {
			cuts = append(cuts, n)
		}
	}
	return cuts
}
