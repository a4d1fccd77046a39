package packet

// PropID is an MQTT 5.0 property identifier (section 2.2.2.2).
type PropID byte

// Property identifiers.
const (
	PropPayloadFormat         PropID = 0x01
	PropMessageExpiry         PropID = 0x02
	PropContentType           PropID = 0x03
	PropResponseTopic         PropID = 0x08
	PropCorrelationData       PropID = 0x09
	PropSubscriptionID        PropID = 0x0B
	PropSessionExpiry         PropID = 0x11
	PropAssignedClientID      PropID = 0x12
	PropServerKeepAlive       PropID = 0x13
	PropAuthMethod            PropID = 0x15
	PropAuthData              PropID = 0x16
	PropRequestProblemInfo    PropID = 0x17
	PropWillDelay             PropID = 0x18
	PropRequestResponseInfo   PropID = 0x19
	PropResponseInfo          PropID = 0x1A
	PropServerReference       PropID = 0x1C
	PropReasonString          PropID = 0x1F
	PropReceiveMaximum        PropID = 0x21
	PropTopicAliasMaximum     PropID = 0x22
	PropTopicAlias            PropID = 0x23
	PropMaximumQoS            PropID = 0x24
	PropRetainAvailable       PropID = 0x25
	PropUserProperty          PropID = 0x26
	PropMaximumPacketSize     PropID = 0x27
	PropWildcardSubAvailable  PropID = 0x28
	PropSubIDAvailable        PropID = 0x29
	PropSharedSubAvailable    PropID = 0x2A
	maxPropID                        = 0x2A
	propContextWill           Type   = 16 // pseudo packet type for Will Properties
	maxSubscriptionID                = 268435455
	subscriptionIDsPerPublish        = 32 // bound on identifiers kept from one PUBLISH
)

// UserProperty is one name/value pair. Order and duplicate names are kept.
type UserProperty struct {
	Key, Value string
}

// Properties holds the MQTT 5.0 properties of one packet. A single-valued
// property is present when its bit is set in Present (see Has and Set), so a
// zero value can be sent explicitly; User and SubscriptionIDs are present when
// non-empty. A packet carries only the properties its type allows; encoders
// write what is present, and the decoder rejects a property in the wrong
// packet or given twice (a Protocol Error in MQTT 5.0 section 2.2.2.2).
type Properties struct {
	Present uint64 // bit i set: property with identifier i is present

	PayloadFormat       byte
	MessageExpiry       uint32
	ContentType         string
	ResponseTopic       string
	CorrelationData     []byte
	SubscriptionIDs     []uint32
	SessionExpiry       uint32
	AssignedClientID    string
	ServerKeepAlive     uint16
	AuthMethod          string
	AuthData            []byte
	RequestProblemInfo  byte
	WillDelay           uint32
	RequestResponseInfo byte
	ResponseInfo        string
	ServerReference     string
	ReasonString        string
	ReceiveMaximum      uint16
	TopicAliasMaximum   uint16
	TopicAlias          uint16
	MaximumQoS          byte
	RetainAvailable     byte
	User                []UserProperty
	MaximumPacketSize   uint32
	WildcardSubAvail    byte
	SubIDAvail          byte
	SharedSubAvail      byte
}

// Has reports whether the property id is present.
func (p *Properties) Has(id PropID) bool {
	switch id {
	case PropUserProperty:
		return len(p.User) > 0
	case PropSubscriptionID:
		return len(p.SubscriptionIDs) > 0
	}
	return p.Present&(1<<id) != 0
}

// Set marks the single-valued property id present.
func (p *Properties) Set(id PropID) { p.Present |= 1 << id }

// Clear marks the property id absent.
func (p *Properties) Clear(id PropID) { p.Present &^= 1 << id }

// IsZero reports whether no property is present.
func (p *Properties) IsZero() bool {
	return p.Present == 0 && len(p.User) == 0 && len(p.SubscriptionIDs) == 0
}

func bits(ids ...PropID) uint64 {
	var m uint64
	for _, id := range ids {
		m |= 1 << id
	}
	return m
}

// allowedProps says which properties each packet type may carry (the tables
// of MQTT 5.0 section 2.2.2.2 and each packet's Properties section).
var allowedProps = func() [17]uint64 {
	var a [17]uint64
	a[CONNECT] = bits(PropSessionExpiry, PropAuthMethod, PropAuthData, PropRequestProblemInfo,
		PropRequestResponseInfo, PropReceiveMaximum, PropTopicAliasMaximum, PropUserProperty, PropMaximumPacketSize)
	a[CONNACK] = bits(PropSessionExpiry, PropAssignedClientID, PropServerKeepAlive, PropAuthMethod,
		PropAuthData, PropResponseInfo, PropServerReference, PropReasonString, PropReceiveMaximum,
		PropTopicAliasMaximum, PropMaximumQoS, PropRetainAvailable, PropUserProperty, PropMaximumPacketSize,
		PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable)
	a[PUBLISH] = bits(PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic,
		PropCorrelationData, PropSubscriptionID, PropTopicAlias, PropUserProperty)
	ack := bits(PropReasonString, PropUserProperty)
	a[PUBACK], a[PUBREC], a[PUBREL], a[PUBCOMP], a[SUBACK], a[UNSUBACK] = ack, ack, ack, ack, ack, ack
	a[SUBSCRIBE] = bits(PropSubscriptionID, PropUserProperty)
	a[UNSUBSCRIBE] = bits(PropUserProperty)
	a[DISCONNECT] = bits(PropSessionExpiry, PropServerReference, PropReasonString, PropUserProperty)
	a[AUTH] = bits(PropAuthMethod, PropAuthData, PropReasonString, PropUserProperty)
	a[propContextWill] = bits(PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic,
		PropCorrelationData, PropWillDelay, PropUserProperty)
	return a
}()

type propKind byte

const (
	kindByte propKind = iota + 1
	kindUint16
	kindUint32
	kindVarint
	kindString
	kindBinary
	kindPair
)

var propKinds = [maxPropID + 1]propKind{
	PropPayloadFormat: kindByte, PropMessageExpiry: kindUint32, PropContentType: kindString,
	PropResponseTopic: kindString, PropCorrelationData: kindBinary, PropSubscriptionID: kindVarint,
	PropSessionExpiry: kindUint32, PropAssignedClientID: kindString, PropServerKeepAlive: kindUint16,
	PropAuthMethod: kindString, PropAuthData: kindBinary, PropRequestProblemInfo: kindByte,
	PropWillDelay: kindUint32, PropRequestResponseInfo: kindByte, PropResponseInfo: kindString,
	PropServerReference: kindString, PropReasonString: kindString, PropReceiveMaximum: kindUint16,
	PropTopicAliasMaximum: kindUint16, PropTopicAlias: kindUint16, PropMaximumQoS: kindByte,
	PropRetainAvailable: kindByte, PropUserProperty: kindPair, PropMaximumPacketSize: kindUint32,
	PropWildcardSubAvailable: kindByte, PropSubIDAvailable: kindByte, PropSharedSubAvailable: kindByte,
}

// size returns the encoded size of the properties (without the length prefix).
func (p *Properties) size() int {
	if p.IsZero() {
		return 0
	}
	n := 0
	for id := PropID(1); id <= maxPropID; id++ {
		if p.Present&(1<<id) == 0 {
			continue
		}
		switch propKinds[id] {
		case kindByte:
			n += 2
		case kindUint16:
			n += 3
		case kindUint32:
			n += 5
		case kindString:
			n += 3 + len(*p.stringField(id))
		case kindBinary:
			n += 3 + len(*p.binaryField(id))
		}
	}
	for _, id := range p.SubscriptionIDs {
		n += 1 + varintLen(int(id))
	}
	for _, u := range p.User {
		n += 5 + len(u.Key) + len(u.Value)
	}
	return n
}

func (p *Properties) stringField(id PropID) *string {
	switch id {
	case PropContentType:
		return &p.ContentType
	case PropResponseTopic:
		return &p.ResponseTopic
	case PropAssignedClientID:
		return &p.AssignedClientID
	case PropAuthMethod:
		return &p.AuthMethod
	case PropResponseInfo:
		return &p.ResponseInfo
	case PropServerReference:
		return &p.ServerReference
	case PropReasonString:
		return &p.ReasonString
	}
	return nil
}

func (p *Properties) binaryField(id PropID) *[]byte {
	if id == PropCorrelationData {
		return &p.CorrelationData
	}
	return &p.AuthData
}

func (p *Properties) byteField(id PropID) *byte {
	switch id {
	case PropPayloadFormat:
		return &p.PayloadFormat
	case PropRequestProblemInfo:
		return &p.RequestProblemInfo
	case PropRequestResponseInfo:
		return &p.RequestResponseInfo
	case PropMaximumQoS:
		return &p.MaximumQoS
	case PropRetainAvailable:
		return &p.RetainAvailable
	case PropWildcardSubAvailable:
		return &p.WildcardSubAvail
	case PropSubIDAvailable:
		return &p.SubIDAvail
	}
	return &p.SharedSubAvail
}

func (p *Properties) uint16Field(id PropID) *uint16 {
	switch id {
	case PropServerKeepAlive:
		return &p.ServerKeepAlive
	case PropReceiveMaximum:
		return &p.ReceiveMaximum
	case PropTopicAliasMaximum:
		return &p.TopicAliasMaximum
	}
	return &p.TopicAlias
}

func (p *Properties) uint32Field(id PropID) *uint32 {
	switch id {
	case PropMessageExpiry:
		return &p.MessageExpiry
	case PropSessionExpiry:
		return &p.SessionExpiry
	case PropWillDelay:
		return &p.WillDelay
	}
	return &p.MaximumPacketSize
}

// filtered returns a copy of p holding only the properties t allows.
func (p *Properties) filtered(t Type) Properties {
	allowed := allowedProps[t]
	q := *p
	q.Present &= allowed
	if allowed&(1<<PropUserProperty) == 0 {
		q.User = nil
	}
	if allowed&(1<<PropSubscriptionID) == 0 {
		q.SubscriptionIDs = nil
	}
	return q
}

// encodedSize returns the size of the properties appendProps writes for a
// packet of type t, without the length prefix.
func (p *Properties) encodedSize(t Type) int {
	if p == nil || p.IsZero() {
		return 0
	}
	q := p.filtered(t)
	return q.size()
}

// checkProps reports a property of a packet of type t that cannot be
// encoded: a string or binary value over 65,535 bytes, or a subscription
// identifier outside 1..268,435,455.
func checkProps(p *Properties, t Type) error {
	if p == nil || p.IsZero() {
		return nil
	}
	q := p.filtered(t)
	for id := PropID(1); id <= maxPropID; id++ {
		if q.Present&(1<<id) == 0 {
			continue
		}
		switch propKinds[id] {
		case kindString:
			if len(*q.stringField(id)) > 65535 {
				return malformed(t, "property %#x longer than 65535 bytes", byte(id))
			}
		case kindBinary:
			if len(*q.binaryField(id)) > 65535 {
				return malformed(t, "property %#x longer than 65535 bytes", byte(id))
			}
		}
	}
	for _, id := range q.SubscriptionIDs {
		if id == 0 || id > maxSubscriptionID {
			return malformed(t, "subscription identifier %d outside 1..%d", id, maxSubscriptionID)
		}
	}
	for _, u := range q.User {
		if len(u.Key) > 65535 || len(u.Value) > 65535 {
			return malformed(t, "user property longer than 65535 bytes")
		}
	}
	return nil
}

// appendProps appends the length-prefixed properties of a packet of type t,
// writing only those t allows.
func appendProps(dst []byte, p *Properties, t Type) []byte {
	if p == nil || p.IsZero() {
		return append(dst, 0)
	}
	q := p.filtered(t)
	dst = appendVarint(dst, q.size())
	for id := PropID(1); id <= maxPropID; id++ {
		if q.Present&(1<<id) == 0 {
			continue
		}
		switch propKinds[id] {
		case kindByte:
			dst = append(dst, byte(id), *q.byteField(id))
		case kindUint16:
			dst = appendUint16(append(dst, byte(id)), *q.uint16Field(id))
		case kindUint32:
			dst = appendUint32(append(dst, byte(id)), *q.uint32Field(id))
		case kindString:
			dst = appendString(append(dst, byte(id)), *q.stringField(id))
		case kindBinary:
			dst = appendBinary(append(dst, byte(id)), *q.binaryField(id))
		}
	}
	for _, id := range q.SubscriptionIDs {
		dst = appendVarint(append(dst, byte(PropSubscriptionID)), int(id))
	}
	for _, u := range q.User {
		dst = appendString(appendString(append(dst, byte(PropUserProperty)), u.Key), u.Value)
	}
	return dst
}

// decodeProps reads a length-prefixed property block for packet type t
// (propContextWill for Will Properties) into p.
func (d *decoder) props(p *Properties, t Type) {
	n := d.varint("property length")
	if d.err != nil {
		return
	}
	if n > d.remaining() {
		d.fail("property length %d overruns the packet", n)
		return
	}
	end := d.i + n
	allowed := allowedProps[t]
	where := t.String()
	if t == propContextWill {
		where = "will properties"
	}
	for d.i < end && d.err == nil {
		n := d.varint("property identifier")
		if d.err != nil {
			return
		}
		if n > maxPropID || propKinds[n] == 0 {
			d.fail("unknown property identifier %#x", n)
			return
		}
		id := PropID(n)
		if allowed&(1<<id) == 0 {
			// An identifier not valid for its packet type makes a
			// Malformed Packet (MQTT 5.0 section 2.2.2.2).
			d.fail("property %#x is not allowed in %s", byte(id), where)
			return
		}
		if id != PropUserProperty && id != PropSubscriptionID && p.Present&(1<<id) != 0 {
			d.failProto("property %#x appears more than once", byte(id))
			return
		}
		switch propKinds[id] {
		case kindByte:
			v := d.byte("property")
			if v > 1 {
				d.failProto("property %#x has value %d, want 0 or 1", byte(id), v)
			}
			*p.byteField(id) = v
			p.Set(id)
		case kindUint16:
			v := d.uint16("property")
			if v == 0 && (id == PropReceiveMaximum || id == PropTopicAlias) {
				d.failProto("property %#x must not be 0", byte(id))
			}
			*p.uint16Field(id) = v
			p.Set(id)
		case kindUint32:
			v := d.uint32("property")
			if v == 0 && id == PropMaximumPacketSize {
				d.failProto("maximum packet size must not be 0")
			}
			*p.uint32Field(id) = v
			p.Set(id)
		case kindString:
			*p.stringField(id) = d.string("property string")
			p.Set(id)
		case kindBinary:
			*p.binaryField(id) = d.binary("property binary")
			p.Set(id)
		case kindVarint:
			v := d.varint("subscription identifier")
			if v == 0 && d.err == nil {
				d.failProto("subscription identifier 0")
			}
			if t == SUBSCRIBE && len(p.SubscriptionIDs) == 1 {
				d.failProto("subscription identifier appears more than once")
			}
			if len(p.SubscriptionIDs) >= subscriptionIDsPerPublish {
				d.fail("more than %d subscription identifiers", subscriptionIDsPerPublish)
			}
			p.SubscriptionIDs = append(p.SubscriptionIDs, uint32(v))
		case kindPair:
			k := d.string("user property name")
			v := d.string("user property value")
			p.User = append(p.User, UserProperty{Key: k, Value: v})
		}
	}
	if d.err == nil && d.i != end {
		d.fail("property overruns the property length")
	}
}
