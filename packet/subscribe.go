package packet

import "strings"

// Subscription is one topic filter of a SUBSCRIBE packet with its options.
type Subscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool // 5.0
	RetainAsPublished bool // 5.0
	RetainHandling    byte // 5.0: 0 send retained, 1 only for new subscriptions, 2 never
}

// Subscribe is the SUBSCRIBE packet.
type Subscribe struct {
	PacketID      uint16
	Subscriptions []Subscription
	Props         Properties
}

// Type returns SUBSCRIBE.
func (*Subscribe) Type() Type { return SUBSCRIBE }

// Append appends the SUBSCRIBE encoding.
func (p *Subscribe) Append(dst []byte, v Version) ([]byte, error) {
	if len(p.Subscriptions) == 0 {
		return dst, protocolErr(SUBSCRIBE, "no topic filter [MQTT-3.8.3-3]")
	}
	if v == V5 {
		if err := checkProps(&p.Props, SUBSCRIBE); err != nil {
			return dst, err
		}
	}
	dst, start := beginPacket(dst)
	dst = appendUint16(dst, p.PacketID)
	if v == V5 {
		dst = appendProps(dst, &p.Props, SUBSCRIBE)
	}
	for _, s := range p.Subscriptions {
		if len(s.Filter) > 65535 {
			return dst[:start], malformed(SUBSCRIBE, "topic filter longer than 65535 bytes")
		}
		opts := s.QoS & 3
		if v == V5 {
			if s.NoLocal {
				opts |= 0x04
			}
			if s.RetainAsPublished {
				opts |= 0x08
			}
			opts |= (s.RetainHandling & 3) << 4
		}
		dst = append(appendString(dst, s.Filter), opts)
	}
	return finishPacket(dst, start, byte(SUBSCRIBE)<<4|0x02)
}

func (p *Subscribe) decode(body []byte, v Version) error {
	d := decoder{t: SUBSCRIBE, b: body}
	p.PacketID = d.uint16("packet identifier")
	if d.err == nil && p.PacketID == 0 {
		return protocolErr(SUBSCRIBE, "packet identifier 0 [MQTT-2.2.1-3]")
	}
	if v == V5 {
		d.props(&p.Props, SUBSCRIBE)
	}
	for d.err == nil && d.remaining() > 0 {
		s := Subscription{Filter: d.string("topic filter")}
		opts := d.byte("subscription options")
		if d.err != nil {
			break
		}
		s.QoS = opts & 3
		if v == V5 {
			if opts&0xc0 != 0 {
				return malformed(SUBSCRIBE, "reserved subscription option bits set [MQTT-3.8.3-5]")
			}
			if s.QoS == 3 {
				// A Protocol Error in 5.0 (section 3.8.3.1).
				return protocolErr(SUBSCRIBE, "maximum QoS 3 for %q", s.Filter)
			}
			s.NoLocal = opts&0x04 != 0
			s.RetainAsPublished = opts&0x08 != 0
			s.RetainHandling = opts >> 4 & 3
			if s.RetainHandling == 3 {
				return protocolErr(SUBSCRIBE, "retain handling 3 for %q", s.Filter)
			}
		} else if s.QoS == 3 {
			return malformed(SUBSCRIBE, "QoS 3 for %q [MQTT-3.8.3-4]", s.Filter)
		} else if opts&0xfc != 0 {
			return malformed(SUBSCRIBE, "reserved subscription option bits set [MQTT-3.8.3-4]")
		}
		if err := ValidFilter(s.Filter); err != nil {
			return malformed(SUBSCRIBE, "topic filter: %v", err)
		}
		if s.NoLocal && strings.HasPrefix(s.Filter, "$share/") {
			return protocolErr(SUBSCRIBE, "no local set on shared subscription %q [MQTT-3.8.3-4]", s.Filter)
		}
		p.Subscriptions = append(p.Subscriptions, s)
	}
	if d.err == nil && len(p.Subscriptions) == 0 {
		return protocolErr(SUBSCRIBE, "no topic filter [MQTT-3.8.3-3]")
	}
	return d.end()
}

// Suback is the SUBACK packet: one reason code (3.1.1: return code) per
// topic filter of the SUBSCRIBE, in order.
type Suback struct {
	PacketID    uint16
	ReasonCodes []ReasonCode
	Props       Properties
}

// Type returns SUBACK.
func (*Suback) Type() Type { return SUBACK }

// Append appends the SUBACK encoding.
func (p *Suback) Append(dst []byte, v Version) ([]byte, error) {
	return appendIDCodes(dst, SUBACK, p.PacketID, p.ReasonCodes, &p.Props, v, true)
}

func (p *Suback) decode(body []byte, v Version) error {
	var err error
	p.PacketID, p.ReasonCodes, err = decodeIDCodes(body, SUBACK, &p.Props, v, true)
	if err == nil && v == V311 {
		for _, c := range p.ReasonCodes {
			if c > 2 && c != 0x80 {
				return protocolErr(SUBACK, "return code %#x [MQTT-3.9.3-2]", byte(c))
			}
		}
	}
	return err
}

// Unsubscribe is the UNSUBSCRIBE packet.
type Unsubscribe struct {
	PacketID uint16
	Filters  []string
	Props    Properties
}

// Type returns UNSUBSCRIBE.
func (*Unsubscribe) Type() Type { return UNSUBSCRIBE }

// Append appends the UNSUBSCRIBE encoding.
func (p *Unsubscribe) Append(dst []byte, v Version) ([]byte, error) {
	if len(p.Filters) == 0 {
		return dst, protocolErr(UNSUBSCRIBE, "no topic filter [MQTT-3.10.3-2]")
	}
	if v == V5 {
		if err := checkProps(&p.Props, UNSUBSCRIBE); err != nil {
			return dst, err
		}
	}
	dst, start := beginPacket(dst)
	dst = appendUint16(dst, p.PacketID)
	if v == V5 {
		dst = appendProps(dst, &p.Props, UNSUBSCRIBE)
	}
	for _, f := range p.Filters {
		if len(f) > 65535 {
			return dst[:start], malformed(UNSUBSCRIBE, "topic filter longer than 65535 bytes")
		}
		dst = appendString(dst, f)
	}
	return finishPacket(dst, start, byte(UNSUBSCRIBE)<<4|0x02)
}

func (p *Unsubscribe) decode(body []byte, v Version) error {
	d := decoder{t: UNSUBSCRIBE, b: body}
	p.PacketID = d.uint16("packet identifier")
	if d.err == nil && p.PacketID == 0 {
		return protocolErr(UNSUBSCRIBE, "packet identifier 0 [MQTT-2.2.1-3]")
	}
	if v == V5 {
		d.props(&p.Props, UNSUBSCRIBE)
	}
	for d.err == nil && d.remaining() > 0 {
		f := d.string("topic filter")
		if d.err == nil {
			if err := ValidFilter(f); err != nil {
				return malformed(UNSUBSCRIBE, "topic filter: %v", err)
			}
		}
		p.Filters = append(p.Filters, f)
	}
	if d.err == nil && len(p.Filters) == 0 {
		return protocolErr(UNSUBSCRIBE, "no topic filter [MQTT-3.10.3-2]")
	}
	return d.end()
}

// Unsuback is the UNSUBACK packet. 3.1.1 has no reason codes; in 5.0 there is
// one per topic filter.
type Unsuback struct {
	PacketID    uint16
	ReasonCodes []ReasonCode
	Props       Properties
}

// Type returns UNSUBACK.
func (*Unsuback) Type() Type { return UNSUBACK }

// Append appends the UNSUBACK encoding.
func (p *Unsuback) Append(dst []byte, v Version) ([]byte, error) {
	return appendIDCodes(dst, UNSUBACK, p.PacketID, p.ReasonCodes, &p.Props, v, v == V5)
}

func (p *Unsuback) decode(body []byte, v Version) error {
	var err error
	p.PacketID, p.ReasonCodes, err = decodeIDCodes(body, UNSUBACK, &p.Props, v, v == V5)
	return err
}

func appendIDCodes(dst []byte, t Type, id uint16, codes []ReasonCode, props *Properties, v Version, withCodes bool) ([]byte, error) {
	if v == V5 {
		if err := checkProps(props, t); err != nil {
			return dst, err
		}
	}
	dst, start := beginPacket(dst)
	dst = appendUint16(dst, id)
	if v == V5 {
		dst = appendProps(dst, props, t)
	}
	if withCodes {
		for _, c := range codes {
			dst = append(dst, byte(c))
		}
	}
	return finishPacket(dst, start, byte(t)<<4)
}

func decodeIDCodes(body []byte, t Type, props *Properties, v Version, withCodes bool) (uint16, []ReasonCode, error) {
	d := decoder{t: t, b: body}
	id := d.uint16("packet identifier")
	if d.err == nil && id == 0 {
		return 0, nil, protocolErr(t, "packet identifier 0 [MQTT-2.2.1-3]")
	}
	if v == V5 {
		d.props(props, t)
	}
	var codes []ReasonCode
	if withCodes && d.err == nil {
		if d.remaining() == 0 {
			return id, nil, protocolErr(t, "no reason codes")
		}
		codes = make([]ReasonCode, d.remaining())
		for i := range codes {
			codes[i] = ReasonCode(d.byte("reason code"))
		}
	}
	return id, codes, d.end()
}
