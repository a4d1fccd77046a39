package packet

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// propertyValue returns a valid encoded value for property id.
func propertyValue(id PropID) []byte {
	switch id {
	case PropPayloadFormat, PropRequestProblemInfo, PropRequestResponseInfo, PropMaximumQoS,
		PropRetainAvailable, PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable:
		return by(1)
	case PropServerKeepAlive, PropReceiveMaximum, PropTopicAliasMaximum, PropTopicAlias:
		return u16(9)
	case PropMessageExpiry, PropSessionExpiry, PropWillDelay, PropMaximumPacketSize:
		return u32(9)
	case PropContentType, PropResponseTopic, PropAssignedClientID, PropAuthMethod,
		PropResponseInfo, PropServerReference, PropReasonString:
		return str("s")
	case PropCorrelationData, PropAuthData:
		return appendBinary(nil, []byte{0, 1})
	case PropSubscriptionID:
		return vbi(300)
	case PropUserProperty:
		return cat(str("k"), str("v"))
	}
	panic(fmt.Sprintf("no value for property %#x", byte(id)))
}

// withProps builds a 5.0 packet of type t (propContextWill: a CONNECT with
// a will) carrying the encoded property block p.
func withProps(t Type, p []byte) []byte {
	switch t {
	case CONNECT:
		return raw(0x10, connectHead5, by(0x02, 0, 0), p, str("c"))
	case propContextWill:
		return raw(0x10, connectHead5, by(0x06, 0, 0), by(0), str("c"), p, str("w"), str("m"))
	case CONNACK:
		return raw(0x20, by(0, 0), p)
	case PUBLISH:
		return raw(0x32, str("t"), u16(1), p, str("payload"))
	case PUBACK, PUBREC, PUBCOMP:
		return raw(byte(t)<<4, u16(1), by(0x10), p)
	case PUBREL:
		return raw(0x62, u16(1), by(0x92), p)
	case SUBSCRIBE:
		return raw(0x82, u16(1), p, str("a/+"), by(1))
	case SUBACK:
		return raw(0x90, u16(1), p, by(0, 1))
	case UNSUBSCRIBE:
		return raw(0xA2, u16(1), p, str("a/#"))
	case UNSUBACK:
		return raw(0xB0, u16(1), p, by(0))
	case DISCONNECT:
		return raw(0xE0, by(0x9C), p)
	case AUTH:
		return raw(0xF0, by(0x18), p)
	}
	panic("no packet for " + t.String())
}

// TestPropertyPlacement puts each defined property, alone, in each packet
// type: MQTT 5.0 Table 2-4 says where it may appear, and anywhere else it
// makes a Malformed Packet (section 2.2.2.2). It also checks the package's
// allowedProps table against the specification's.
func TestPropertyPlacement(t *testing.T) {
	t.Parallel()
	var ids []PropID
	for id := PropID(1); id <= maxPropID; id++ {
		if propKinds[id] != 0 {
			ids = append(ids, id)
		}
	}
	if len(ids) != 27 {
		t.Fatalf("%d property identifiers defined, MQTT 5.0 defines 27", len(ids))
	}
	for typ, allowed := range specProps {
		var mask uint64
		for _, id := range allowed {
			mask |= 1 << id
		}
		if allowedProps[typ] != mask {
			t.Errorf("allowedProps[%v] = %#x, MQTT 5.0 Table 2-4 gives %#x", typ, allowedProps[typ], mask)
		}
		for _, id := range ids {
			p := cat(by(byte(id)), propertyValue(id))
			if typ == CONNECT && id == PropAuthData {
				p = cat(p, by(byte(PropAuthMethod)), str("m"))
			}
			b := withProps(typ, props(p))
			_, err := Read(bytes.NewReader(b), V5, 0)
			switch {
			case slices.Contains(allowed, id) && err != nil:
				t.Errorf("property %#x in %v: %v", byte(id), typ, err)
			case !slices.Contains(allowed, id) && !errors.Is(err, ErrMalformed):
				t.Errorf("property %#x in %v: %v, want ErrMalformed", byte(id), typ, err)
			}
		}
	}
}

// TestPropertyDecodedValues checks that each property lands in its field.
func TestPropertyDecodedValues(t *testing.T) {
	t.Parallel()
	b := withProps(CONNACK, props(
		by(0x11), u32(0x01020304), by(0x12), str("assigned"), by(0x13), u16(0x0506),
		by(0x15), str("method"), by(0x16), appendBinary(nil, []byte("data")), by(0x1A), str("info"),
		by(0x1C), str("server"), by(0x1F), str("reason"), by(0x21), u16(7), by(0x22), u16(8),
		by(0x24), by(0), by(0x25), by(1), by(0x26), str("k"), str("v"), by(0x27), u32(1<<16),
		by(0x28), by(0), by(0x29), by(1), by(0x2A), by(0)))
	var want Properties
	want.SessionExpiry, want.AssignedClientID, want.ServerKeepAlive = 0x01020304, "assigned", 0x0506
	want.AuthMethod, want.AuthData, want.ResponseInfo = "method", []byte("data"), "info"
	want.ServerReference, want.ReasonString, want.ReceiveMaximum, want.TopicAliasMaximum = "server", "reason", 7, 8
	want.MaximumQoS, want.RetainAvailable, want.User, want.MaximumPacketSize = 0, 1, []UserProperty{{"k", "v"}}, 1<<16
	want.WildcardSubAvail, want.SubIDAvail, want.SharedSubAvail = 0, 1, 0
	for _, id := range specProps[CONNACK] {
		if id != PropUserProperty {
			want.Set(id)
		}
	}
	got := read(t, b, V5).(*Connack)
	if diff := cmp.Diff(want, got.Props, cmpOpts...); diff != "" {
		t.Errorf("CONNACK properties (-want +got):\n%s", diff)
	}
	for _, id := range specProps[CONNACK] {
		if !got.Props.Has(id) {
			t.Errorf("Has(%#x) = false", byte(id))
		}
	}
	if got.Props.Has(PropTopicAlias) || got.Props.Has(PropSubscriptionID) {
		t.Errorf("Has reports properties that are absent")
	}
}

func TestPropertiesHelpers(t *testing.T) {
	t.Parallel()
	var p Properties
	if !p.IsZero() || p.Has(PropContentType) {
		t.Fatal("zero Properties is not empty")
	}
	p.Set(PropContentType)
	if p.IsZero() || !p.Has(PropContentType) {
		t.Fatal("Set did not mark the property present")
	}
	p.Clear(PropContentType)
	if !p.IsZero() || p.Has(PropContentType) {
		t.Fatal("Clear did not mark the property absent")
	}
	p.User = []UserProperty{{"a", "b"}}
	if p.IsZero() || !p.Has(PropUserProperty) {
		t.Fatal("user properties not seen")
	}
	p = Properties{SubscriptionIDs: []uint32{1}}
	if p.IsZero() || !p.Has(PropSubscriptionID) {
		t.Fatal("subscription identifiers not seen")
	}
	// A zero value can be sent explicitly.
	var q Properties
	q.Set(PropMessageExpiry)
	b := encode(t, &Publish{Topic: "t", Props: q}, V5)
	if got := read(t, b, V5).(*Publish); !got.Props.Has(PropMessageExpiry) || got.Props.MessageExpiry != 0 {
		t.Errorf("explicit zero Message Expiry Interval lost: %+v", got.Props)
	}
}

// onlyPresent zeroes the fields of the single-valued properties that are not
// marked present, as a decoder leaves them.
func onlyPresent(p Properties) Properties {
	for id := PropID(1); id <= maxPropID; id++ {
		if p.Present&(1<<id) != 0 {
			continue
		}
		switch propKinds[id] {
		case kindByte:
			*p.byteField(id) = 0
		case kindUint16:
			*p.uint16Field(id) = 0
		case kindUint32:
			*p.uint32Field(id) = 0
		case kindString:
			*p.stringField(id) = ""
		case kindBinary:
			*p.binaryField(id) = nil
		}
	}
	return p
}

// TestEncodeDropsDisallowedProperties checks that encoders write only the
// properties the packet type allows, and that Publish.Size agrees with what
// Append writes when the caller's Properties hold others.
func TestEncodeDropsDisallowedProperties(t *testing.T) {
	t.Parallel()
	all := Properties{SubscriptionIDs: []uint32{5}, User: []UserProperty{{"k", "v"}}}
	for id := PropID(1); id <= maxPropID; id++ {
		if k := propKinds[id]; k != 0 && k != kindPair && k != kindVarint {
			all.Set(id)
		}
	}
	all.ReceiveMaximum, all.TopicAlias, all.MaximumPacketSize = 1, 1, 1
	for _, c := range []struct {
		p    Packet
		want func(Packet) Properties
	}{
		{&Publish{Topic: "t", QoS: 1, PacketID: 1, Props: all, Payload: []byte("p")}, func(p Packet) Properties { return p.(*Publish).Props }},
		{&Connack{Props: all}, func(p Packet) Properties { return p.(*Connack).Props }},
		{&Ack{PacketType: PUBREC, PacketID: 1, Props: all}, func(p Packet) Properties { return p.(*Ack).Props }},
		{&Subscribe{PacketID: 1, Props: all, Subscriptions: []Subscription{{Filter: "a"}}}, func(p Packet) Properties { return p.(*Subscribe).Props }},
		{&Unsubscribe{PacketID: 1, Props: all, Filters: []string{"a"}}, func(p Packet) Properties { return p.(*Unsubscribe).Props }},
		{&Suback{PacketID: 1, Props: all, ReasonCodes: []ReasonCode{0}}, func(p Packet) Properties { return p.(*Suback).Props }},
		{&Unsuback{PacketID: 1, Props: all, ReasonCodes: []ReasonCode{0}}, func(p Packet) Properties { return p.(*Unsuback).Props }},
		{&Disconnect{Props: all}, func(p Packet) Properties { return p.(*Disconnect).Props }},
		{&Auth{ReasonCode: ContinueAuthentication, Props: all}, func(p Packet) Properties { return p.(*Auth).Props }},
		{&Connect{Version: V5, ClientID: "c", Props: all, Will: &Will{Topic: "w", Props: all}}, func(p Packet) Properties { return p.(*Connect).Props }},
	} {
		b := encode(t, c.p, V5)
		if pub, ok := c.p.(*Publish); ok && pub.Size(V5) != len(b) {
			t.Errorf("Publish.Size = %d, Append wrote %d bytes", pub.Size(V5), len(b))
		}
		got := read(t, b, V5)
		typ := c.p.Type()
		want := onlyPresent(all.filtered(typ))
		if diff := cmp.Diff(want, c.want(got), cmpOpts...); diff != "" {
			t.Errorf("%v properties (-want +got):\n%s", typ, diff)
		}
		if conn, ok := got.(*Connect); ok {
			if diff := cmp.Diff(onlyPresent(all.filtered(propContextWill)), conn.Will.Props, cmpOpts...); diff != "" {
				t.Errorf("will properties (-want +got):\n%s", diff)
			}
		}
	}
}

// TestEncodeErrors checks that encoders refuse what cannot be encoded and
// leave dst as it was.
func TestEncodeErrors(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 65536)
	big := func(f func(*Properties)) Properties {
		var p Properties
		f(&p)
		return p
	}
	cases := []struct {
		name string
		v    Version
		p    Packet
		want error
	}{
		{"publish-topic-too-long", V311, &Publish{Topic: long}, ErrMalformed},
		{"publish-qos3", V311, &Publish{Topic: "t", QoS: 3, PacketID: 1}, ErrMalformed},
		{"subscribe-no-filter", V311, &Subscribe{PacketID: 1}, ErrProtocol},
		{"subscribe-filter-too-long", V5, &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a"}, {Filter: long}}}, ErrMalformed},
		{"unsubscribe-no-filter", V5, &Unsubscribe{PacketID: 1}, ErrProtocol},
		{"unsubscribe-filter-too-long", V311, &Unsubscribe{PacketID: 1, Filters: []string{long}}, ErrMalformed},
		{"auth-in-3.1.1", V311, &Auth{}, ErrProtocol},
		{"connect-client-id-nul", V311, &Connect{Version: V311, ClientID: "a\x00"}, ErrMalformed},
		{"connect-user-name-bad-utf8", V5, &Connect{Version: V5, UsernameFlag: true, Username: "\xff"}, ErrMalformed},
		{"connect-password-too-long", V311, &Connect{Version: V311, PasswordFlag: true, UsernameFlag: true, Password: make([]byte, 65536)}, ErrMalformed},
		{"connect-will-qos3", V311, &Connect{Version: V311, Will: &Will{Topic: "w", QoS: 3}}, ErrMalformed},
		{"connect-will-topic-wildcard", V5, &Connect{Version: V5, Will: &Will{Topic: "w/+"}}, ErrMalformed},
		{"connect-will-payload-too-long", V311, &Connect{Version: V311, Will: &Will{Topic: "w", Payload: make([]byte, 65536)}}, ErrMalformed},
		{"connect-will-property-too-long", V5, &Connect{Version: V5, Will: &Will{Topic: "w",
			Props: big(func(p *Properties) { p.ContentType = long; p.Set(PropContentType) })}}, ErrMalformed},
		{"connect-property-too-long", V5, &Connect{Version: V5,
			Props: big(func(p *Properties) { p.AuthData = make([]byte, 65536); p.Set(PropAuthData) })}, ErrMalformed},
		{"publish-property-too-long", V5, &Publish{Topic: "t",
			Props: big(func(p *Properties) { p.ResponseTopic = long; p.Set(PropResponseTopic) })}, ErrMalformed},
		{"publish-binary-property-too-long", V5, &Publish{Topic: "t",
			Props: big(func(p *Properties) { p.CorrelationData = make([]byte, 65536); p.Set(PropCorrelationData) })}, ErrMalformed},
		{"publish-user-key-too-long", V5, &Publish{Topic: "t", Props: Properties{User: []UserProperty{{Key: long}}}}, ErrMalformed},
		{"publish-user-value-too-long", V5, &Publish{Topic: "t", Props: Properties{User: []UserProperty{{Value: long}}}}, ErrMalformed},
		{"publish-subscription-id-too-large", V5, &Publish{Topic: "t", Props: Properties{SubscriptionIDs: []uint32{maxSubscriptionID + 1}}}, ErrMalformed},
		{"publish-subscription-id-0", V5, &Publish{Topic: "t", Props: Properties{SubscriptionIDs: []uint32{0}}}, ErrMalformed},
		{"subscribe-subscription-id-too-large", V5, &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a"}},
			Props: Properties{SubscriptionIDs: []uint32{1 << 31}}}, ErrMalformed},
		{"connack-reason-string-too-long", V5, &Connack{
			Props: big(func(p *Properties) { p.ReasonString = long; p.Set(PropReasonString) })}, ErrMalformed},
		{"ack-reason-string-too-long", V5, &Ack{PacketType: PUBACK, PacketID: 1,
			Props: big(func(p *Properties) { p.ReasonString = long; p.Set(PropReasonString) })}, ErrMalformed},
		{"suback-user-property-too-long", V5, &Suback{PacketID: 1, ReasonCodes: []ReasonCode{0},
			Props: Properties{User: []UserProperty{{Key: long}}}}, ErrMalformed},
		{"unsubscribe-user-property-too-long", V5, &Unsubscribe{PacketID: 1, Filters: []string{"a"},
			Props: Properties{User: []UserProperty{{Value: long}}}}, ErrMalformed},
		{"disconnect-server-reference-too-long", V5, &Disconnect{
			Props: big(func(p *Properties) { p.ServerReference = long; p.Set(PropServerReference) })}, ErrMalformed},
		{"auth-method-too-long", V5, &Auth{ReasonCode: ContinueAuthentication,
			Props: big(func(p *Properties) { p.AuthMethod = long; p.Set(PropAuthMethod) })}, ErrMalformed},
	}
	for _, c := range cases {
		dst := []byte("prefix")
		got, err := c.p.Append(dst, c.v)
		if !errors.Is(err, c.want) || !codecError(err) {
			t.Errorf("%s: Append error %v, want %v", c.name, err, c.want)
		}
		if string(got) != "prefix" {
			t.Errorf("%s: Append returned % x, want dst unchanged", c.name, head(got))
		}
	}
	// A property the packet type does not carry is not checked: it is
	// not written.
	p := &Ack{PacketType: PUBACK, PacketID: 1, ReasonCode: 0x10,
		Props: big(func(p *Properties) { p.ContentType = long; p.Set(PropContentType) })}
	if b := encode(t, p, V5); !bytes.Equal(b, by(0x40, 0x04, 0x00, 0x01, 0x10, 0x00)) {
		t.Errorf("PUBACK with a Content Type = % x", b)
	}
}

func TestEncodeTooLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 256 MB (not touched: the size check precedes any copy)")
	}
	t.Parallel()
	p := &Publish{Topic: "t", Payload: make([]byte, MaxRemainingLength-2)}
	if got := p.Size(V311); got != MaxPacketSize+1 {
		t.Fatalf("Size() = %d, want %d", got, MaxPacketSize+1)
	}
	dst := []byte("keep")
	got, err := p.Append(dst, V311)
	if !errors.Is(err, ErrTooLarge) || !codecError(err) || string(got) != "keep" {
		t.Errorf("Append of a %d-byte PUBLISH: %v, % x", p.Size(V311), err, head(got))
	}
}
