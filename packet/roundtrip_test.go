package packet

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// specProps lists, per packet type, the properties MQTT 5.0 Table 2-4 allows
// (propContextWill stands for the Will Properties of CONNECT). It is written
// out from the specification rather than taken from allowedProps so that the
// two can be checked against each other.
var specProps = map[Type][]PropID{
	CONNECT: {PropSessionExpiry, PropAuthMethod, PropAuthData, PropRequestProblemInfo,
		PropRequestResponseInfo, PropReceiveMaximum, PropTopicAliasMaximum, PropUserProperty,
		PropMaximumPacketSize},
	propContextWill: {PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic,
		PropCorrelationData, PropWillDelay, PropUserProperty},
	CONNACK: {PropSessionExpiry, PropAssignedClientID, PropServerKeepAlive, PropAuthMethod,
		PropAuthData, PropResponseInfo, PropServerReference, PropReasonString, PropReceiveMaximum,
		PropTopicAliasMaximum, PropMaximumQoS, PropRetainAvailable, PropUserProperty,
		PropMaximumPacketSize, PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable},
	PUBLISH: {PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic,
		PropCorrelationData, PropSubscriptionID, PropTopicAlias, PropUserProperty},
	PUBACK:      {PropReasonString, PropUserProperty},
	PUBREC:      {PropReasonString, PropUserProperty},
	PUBREL:      {PropReasonString, PropUserProperty},
	PUBCOMP:     {PropReasonString, PropUserProperty},
	SUBSCRIBE:   {PropSubscriptionID, PropUserProperty},
	SUBACK:      {PropReasonString, PropUserProperty},
	UNSUBSCRIBE: {PropUserProperty},
	UNSUBACK:    {PropReasonString, PropUserProperty},
	DISCONNECT:  {PropSessionExpiry, PropServerReference, PropReasonString, PropUserProperty},
	AUTH:        {PropAuthMethod, PropAuthData, PropReasonString, PropUserProperty},
}

// fullProps sets every property MQTT 5.0 allows in packet type t, with
// several user properties (duplicate names kept in order) and, for PUBLISH,
// several subscription identifiers covering each Variable Byte Integer size.
func fullProps(t Type) Properties {
	var p Properties
	for _, id := range specProps[t] {
		switch id {
		case PropPayloadFormat:
			p.PayloadFormat = 1
		case PropMessageExpiry:
			p.MessageExpiry = 3600
		case PropContentType:
			p.ContentType = "text/plain; charset=utf-8"
		case PropResponseTopic:
			p.ResponseTopic = "reply/to/☃"
		case PropCorrelationData:
			p.CorrelationData = []byte{0, 1, 2, 0xfe, 0xff}
		case PropSubscriptionID:
			if t == SUBSCRIBE {
				p.SubscriptionIDs = []uint32{maxSubscriptionID}
			} else {
				p.SubscriptionIDs = []uint32{1, 127, 128, 16383, 16384, 2097151, 2097152, maxSubscriptionID, 1}
			}
			continue
		case PropSessionExpiry:
			p.SessionExpiry = 0xffffffff
		case PropAssignedClientID:
			p.AssignedClientID = "auto-7f3a"
		case PropServerKeepAlive:
			p.ServerKeepAlive = 30
		case PropAuthMethod:
			p.AuthMethod = "SCRAM-SHA-256"
		case PropAuthData:
			p.AuthData = []byte("n,,n=user,r=nonce")
		case PropRequestProblemInfo:
			p.RequestProblemInfo = 0
		case PropWillDelay:
			p.WillDelay = 5
		case PropRequestResponseInfo:
			p.RequestResponseInfo = 1
		case PropResponseInfo:
			p.ResponseInfo = "responses/"
		case PropServerReference:
			p.ServerReference = "other.example:1883"
		case PropReasonString:
			p.ReasonString = "because ☃"
		case PropReceiveMaximum:
			p.ReceiveMaximum = 65535
		case PropTopicAliasMaximum:
			p.TopicAliasMaximum = 0
		case PropTopicAlias:
			p.TopicAlias = 7
		case PropMaximumQoS:
			p.MaximumQoS = 1
		case PropRetainAvailable:
			p.RetainAvailable = 0
		case PropUserProperty:
			p.User = []UserProperty{{"k", "v1"}, {"a", "b"}, {"k", "v2"}, {"k", "v1"}, {"", ""}, {"ключ", "значение"}}
			continue
		case PropMaximumPacketSize:
			p.MaximumPacketSize = 1 << 20
		case PropWildcardSubAvailable:
			p.WildcardSubAvail = 1
		case PropSubIDAvailable:
			p.SubIDAvail = 0
		case PropSharedSubAvailable:
			p.SharedSubAvail = 1
		}
		p.Set(id)
	}
	return p
}

type rtCase struct {
	name string
	v    Version
	p    Packet
}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// roundTripCases returns valid packets of every type for both versions. It
// builds fresh values on each call, so tests may share it.
func roundTripCases() []rtCase {
	var cs []rtCase
	add := func(name string, v Version, p Packet) {
		cs = append(cs, rtCase{name: name + "/" + v.String(), v: v, p: p})
	}
	for _, v := range []Version{V311, V5} {
		add("connect-minimal", v, &Connect{Version: v, CleanStart: true, KeepAlive: 60, ClientID: "client-1"})
		add("connect-empty-client-id", v, &Connect{Version: v, CleanStart: true})
		add("connect-will-empty-payload", v, &Connect{Version: v, ClientID: "c",
			Will: &Will{Topic: "status/c", QoS: 1}})
		full := &Connect{Version: v, CleanStart: true, KeepAlive: 65535, ClientID: "ünïcode-client",
			Will:         &Will{Topic: "last/will", Payload: []byte("gone"), QoS: 2, Retain: true},
			UsernameFlag: true, Username: "user", PasswordFlag: true, Password: []byte{0, 1, 2, 3}}
		if v == V5 {
			full.Props = fullProps(CONNECT)
			full.Will.Props = fullProps(propContextWill)
		}
		add("connect-full", v, full)
		add("connect-user-empty-password", v, &Connect{Version: v, ClientID: "c",
			UsernameFlag: true, Username: "", PasswordFlag: true})

		add("connack-accepted", v, &Connack{})
		add("connack-session-present", v, &Connack{SessionPresent: true})
		if v == V311 {
			add("connack-refused", v, &Connack{ReasonCode: RefusedNotAuthorized})
		} else {
			add("connack-refused", v, &Connack{ReasonCode: NotAuthorized})
			add("connack-full-props", v, &Connack{SessionPresent: true, Props: fullProps(CONNACK)})
		}

		add("publish-qos0-empty", v, &Publish{Topic: "a"})
		add("publish-qos0-retain", v, &Publish{Topic: "a/b/c", Retain: true, Payload: []byte("hello")})
		add("publish-qos1-dup", v, &Publish{Topic: "sensors/x y", Dup: true, QoS: 1, PacketID: 1, Payload: []byte{0}})
		add("publish-qos2", v, &Publish{Topic: "A𪛔/$x", QoS: 2, PacketID: 65535, Payload: payload(64)})
		// Remaining Length in 2, 3 and 4 bytes (MQTT 3.1.1 Table 2.4, 5.0 Table 1-1).
		add("publish-rl2", v, &Publish{Topic: "big", QoS: 1, PacketID: 9, Payload: payload(200)})
		add("publish-rl3", v, &Publish{Topic: "big", QoS: 1, PacketID: 9, Payload: payload(20000)})
		add("publish-rl4", v, &Publish{Topic: "big", QoS: 1, PacketID: 9, Payload: payload(2100000)})
		if v == V5 {
			add("publish-full-props", v, &Publish{Topic: "t", QoS: 1, PacketID: 2, Props: fullProps(PUBLISH), Payload: []byte("x")})
			alias := &Publish{QoS: 2, PacketID: 3, Payload: []byte("aliased")}
			alias.Props.TopicAlias = 1
			alias.Props.Set(PropTopicAlias)
			add("publish-topic-alias-empty-topic", v, alias)
			empty := &Publish{Topic: "p", Payload: []byte("y")}
			empty.Props.CorrelationData = []byte{}
			empty.Props.ContentType = ""
			empty.Props.Set(PropCorrelationData)
			empty.Props.Set(PropContentType)
			add("publish-empty-valued-props", v, empty)
		}

		for _, t := range []Type{PUBACK, PUBREC, PUBREL, PUBCOMP} {
			n := strings.ToLower(t.String())
			add(n, v, &Ack{PacketType: t, PacketID: 0x1234})
			if v == V5 {
				add(n+"-reason", v, &Ack{PacketType: t, PacketID: 1, ReasonCode: 0x92})
				add(n+"-props", v, &Ack{PacketType: t, PacketID: 2, Props: fullProps(t)})
				add(n+"-reason-props", v, &Ack{PacketType: t, PacketID: 3, ReasonCode: 0x10, Props: fullProps(t)})
			}
		}

		add("subscribe-one", v, &Subscribe{PacketID: 10, Subscriptions: []Subscription{{Filter: "a/b", QoS: 1}}})
		subs := []Subscription{{Filter: "#"}, {Filter: "+/b/#", QoS: 1}, {Filter: "$SYS/#", QoS: 2},
			{Filter: "$share/group/a/+", QoS: 1}, {Filter: "/"}}
		add("subscribe-many", v, &Subscribe{PacketID: 11, Subscriptions: subs})
		if v == V5 {
			add("subscribe-options", v, &Subscribe{PacketID: 12, Props: fullProps(SUBSCRIBE), Subscriptions: []Subscription{
				{Filter: "a", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
				{Filter: "b", RetainHandling: 1},
				{Filter: "$share/g/c", QoS: 1, RetainAsPublished: true},
			}})
		}

		add("suback", v, &Suback{PacketID: 10, ReasonCodes: []ReasonCode{GrantedQoS0, GrantedQoS1, GrantedQoS2, 0x80}})
		if v == V5 {
			add("suback-props", v, &Suback{PacketID: 10, ReasonCodes: []ReasonCode{0x87, 0xA2, 0x9E}, Props: fullProps(SUBACK)})
		}

		add("unsubscribe", v, &Unsubscribe{PacketID: 13, Filters: []string{"a/b", "c/+", "#"}})
		if v == V5 {
			add("unsubscribe-props", v, &Unsubscribe{PacketID: 13, Filters: []string{"x"}, Props: fullProps(UNSUBSCRIBE)})
			add("unsuback", v, &Unsuback{PacketID: 13, ReasonCodes: []ReasonCode{Success, NoSubscriptionExisted}})
			add("unsuback-props", v, &Unsuback{PacketID: 14, ReasonCodes: []ReasonCode{0x87}, Props: fullProps(UNSUBACK)})
		} else {
			add("unsuback", v, &Unsuback{PacketID: 13})
		}

		add("pingreq", v, &Pingreq{})
		add("pingresp", v, &Pingresp{})
		add("disconnect", v, &Disconnect{})
		if v == V5 {
			add("disconnect-reason", v, &Disconnect{ReasonCode: DisconnectWithWill})
			add("disconnect-props", v, &Disconnect{ReasonCode: ServerMoved, Props: fullProps(DISCONNECT)})
			add("auth", v, &Auth{})
			add("auth-continue", v, &Auth{ReasonCode: ContinueAuthentication, Props: fullProps(AUTH)})
			add("auth-reauth", v, &Auth{ReasonCode: ReAuthenticate})
		}
	}
	return cs
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range roundTripCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := encode(t, c.p, c.v)
			got := read(t, b, c.v)
			if diff := cmp.Diff(c.p, got, cmpOpts...); diff != "" {
				t.Errorf("decoded packet differs (-want +got):\n%s", diff)
			}
			if got.Type() != c.p.Type() {
				t.Errorf("Type() = %v, want %v", got.Type(), c.p.Type())
			}
			// Encoding the decoded packet gives the same bytes.
			if b2 := encode(t, got, c.v); !bytes.Equal(b, b2) {
				t.Errorf("re-encoding differs:\n got % x\nwant % x", head(b2), head(b))
			}
		})
	}
}

// TestRoundTripRemainingLengthSizes checks that the large PUBLISH cases
// really exercise each Remaining Length size.
func TestRoundTripRemainingLengthSizes(t *testing.T) {
	t.Parallel()
	want := map[string]int{"publish-rl2": 2, "publish-rl3": 3, "publish-rl4": 4, "publish-qos0-empty": 1}
	seen := 0
	for _, c := range roundTripCases() {
		name, _, _ := strings.Cut(c.name, "/")
		n, ok := want[name]
		if !ok {
			continue
		}
		seen++
		b := encode(t, c.p, c.v)
		h, err := ReadHeader(bytes.NewReader(b), 0)
		if err != nil {
			t.Fatalf("%s: ReadHeader: %v", c.name, err)
		}
		if got := h.Size() - h.Remaining - 1; got != n {
			t.Errorf("%s: Remaining Length %d uses %d bytes, want %d", c.name, h.Remaining, got, n)
		}
		if h.Size() != len(b) {
			t.Errorf("%s: Header.Size() = %d, want %d", c.name, h.Size(), len(b))
		}
	}
	if seen != 2*len(want) {
		t.Fatalf("found %d of %d cases", seen, 2*len(want))
	}
}

// TestAppendKeepsPrefix checks that every encoder appends to dst rather than
// overwriting it, and that Publish.Size predicts the encoded length.
func TestAppendKeepsPrefix(t *testing.T) {
	t.Parallel()
	prefix := []byte("prefix")
	for _, c := range roundTripCases() {
		alone := encode(t, c.p, c.v)
		dst := append(make([]byte, 0, 8), prefix...)
		got, err := c.p.Append(dst, c.v)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], alone) {
			t.Errorf("%s: Append into a non-empty buffer gave % x", c.name, head(got))
		}
		if p, ok := c.p.(*Publish); ok && p.Size(c.v) != len(alone) {
			t.Errorf("%s: Size() = %d, encoded %d bytes", c.name, p.Size(c.v), len(alone))
		}
	}
}

// TestDecodeCopies checks that Read copies strings out of the body for
// every packet but PUBLISH: modifying the input afterwards changes nothing.
func TestDecodeCopies(t *testing.T) {
	t.Parallel()
	for _, c := range roundTripCases() {
		if c.p.Type() == PUBLISH {
			continue
		}
		b := encode(t, c.p, c.v)
		got := read(t, b, c.v)
		for i := range b {
			b[i] = 0xAA
		}
		if diff := cmp.Diff(c.p, got, cmpOpts...); diff != "" {
			t.Errorf("%s: decoded packet shares the input (-want +got):\n%s", c.name, diff)
		}
	}
}
