package packet

import "fmt"

// Publish is the PUBLISH packet.
type Publish struct {
	Dup      bool
	QoS      byte
	Retain   bool
	Topic    string
	PacketID uint16 // present when QoS > 0
	Props    Properties
	Payload  []byte
}

// Type returns PUBLISH.
func (*Publish) Type() Type { return PUBLISH }

// Size returns the size of the encoded packet for version v.
func (p *Publish) Size(v Version) int {
	rem := p.remaining(v)
	return 1 + varintLen(rem) + rem
}

func (p *Publish) remaining(v Version) int {
	n := 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		n += 2
	}
	if v == V5 {
		ps := p.Props.encodedSize(PUBLISH)
		n += varintLen(ps) + ps
	}
	return n
}

// Append appends the PUBLISH encoding. It does not validate the topic (see
// ValidTopicName); it fails only when the packet cannot be encoded.
func (p *Publish) Append(dst []byte, v Version) ([]byte, error) {
	if len(p.Topic) > 65535 {
		return dst, malformed(PUBLISH, "topic longer than 65535 bytes")
	}
	if p.QoS > 2 {
		return dst, malformed(PUBLISH, "QoS %d", p.QoS)
	}
	if v == V5 {
		if err := checkProps(&p.Props, PUBLISH); err != nil {
			return dst, err
		}
	}
	rem := p.remaining(v)
	if rem > MaxRemainingLength {
		return dst, &Error{Type: PUBLISH, Code: PacketTooLarge,
			Reason: fmt.Sprintf("remaining length %d exceeds %d", rem, MaxRemainingLength)}
	}
	first := byte(PUBLISH)<<4 | p.QoS<<1
	if p.Dup {
		first |= 0x08
	}
	if p.Retain {
		first |= 0x01
	}
	dst = appendVarint(append(dst, first), rem)
	dst = appendString(dst, p.Topic)
	if p.QoS > 0 {
		dst = appendUint16(dst, p.PacketID)
	}
	if v == V5 {
		dst = appendProps(dst, &p.Props, PUBLISH)
	}
	return append(dst, p.Payload...), nil
}

// DecodePublish decodes a PUBLISH body into p without copying: the topic,
// string properties and payload share body, so the caller must not modify
// body afterwards. p is overwritten, except that the capacity of
// p.Props.SubscriptionIDs is reused for the identifiers decoded (so that a
// reused p decodes without allocating): copy them to keep them past the
// next decode into p.
func DecodePublish(h Header, body []byte, v Version, p *Publish) error {
	ids := p.Props.SubscriptionIDs[:0] // its capacity is reused
	*p = Publish{}
	p.Props.SubscriptionIDs = ids
	qos := h.Flags >> 1 & 3
	if qos == 3 {
		return malformed(PUBLISH, "QoS 3 [MQTT-3.3.1-4]")
	}
	p.QoS = qos
	p.Dup = h.Flags&0x08 != 0
	p.Retain = h.Flags&0x01 != 0
	if qos == 0 && p.Dup {
		return malformed(PUBLISH, "DUP set on a QoS 0 message [MQTT-3.3.1-2]")
	}
	d := decoder{t: PUBLISH, b: body, alias: true}
	p.Topic = d.string("topic name")
	if qos > 0 {
		p.PacketID = d.uint16("packet identifier")
		if d.err == nil && p.PacketID == 0 {
			return protocolErr(PUBLISH, "packet identifier 0 [MQTT-2.2.1-3]")
		}
	}
	if v == V5 {
		d.props(&p.Props, PUBLISH)
	}
	if d.err != nil {
		return d.err
	}
	if p.Topic == "" {
		if v != V5 || !p.Props.Has(PropTopicAlias) {
			return protocolErr(PUBLISH, "empty topic name without a topic alias [MQTT-4.7.3-1]")
		}
	} else if err := ValidTopicName(p.Topic); err != nil {
		return malformed(PUBLISH, "topic name: %v", err)
	}
	p.Payload = d.rest()
	if len(p.Payload) == 0 {
		p.Payload = nil
	}
	return nil
}

// Ack is one of PUBACK, PUBREC, PUBREL and PUBCOMP: a packet identifier and,
// in 5.0, a reason code and properties.
type Ack struct {
	PacketType Type
	PacketID   uint16
	ReasonCode ReasonCode
	Props      Properties
}

// Type returns the acknowledgement's packet type.
func (p *Ack) Type() Type { return p.PacketType }

// Append appends the acknowledgement. In 5.0 the reason code and properties
// are omitted when they are Success and empty [MQTT-3.4.2-1 remark].
func (p *Ack) Append(dst []byte, v Version) ([]byte, error) {
	first := byte(p.PacketType) << 4
	if p.PacketType == PUBREL {
		first |= 0x02
	}
	if v != V5 || p.ReasonCode == 0 && p.Props.IsZero() {
		return appendUint16(append(dst, first, 2), p.PacketID), nil
	}
	if err := checkProps(&p.Props, p.PacketType); err != nil {
		return dst, err
	}
	dst, start := beginPacket(dst)
	dst = append(appendUint16(dst, p.PacketID), byte(p.ReasonCode))
	if !p.Props.IsZero() {
		dst = appendProps(dst, &p.Props, p.PacketType)
	}
	return finishPacket(dst, start, first)
}

// DecodeAck decodes a PUBACK, PUBREC, PUBREL or PUBCOMP body into a. Strings
// are copied.
func DecodeAck(h Header, body []byte, v Version, a *Ack) error {
	*a = Ack{PacketType: h.Type}
	d := decoder{t: h.Type, b: body}
	a.PacketID = d.uint16("packet identifier")
	if d.err == nil && a.PacketID == 0 {
		return protocolErr(h.Type, "packet identifier 0 [MQTT-2.2.1-3]")
	}
	if v == V5 && d.remaining() > 0 {
		a.ReasonCode = ReasonCode(d.byte("reason code"))
		if d.remaining() > 0 {
			d.props(&a.Props, h.Type)
		}
	}
	return d.end()
}
