package packet

import "strconv"

// Will is the Will Message carried in CONNECT.
type Will struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	Props   Properties // MQTT 5.0 Will Properties
}

// Connect is the CONNECT packet.
type Connect struct {
	Version      Version
	CleanStart   bool // Clean Session in 3.1.1
	KeepAlive    uint16
	ClientID     string
	Will         *Will
	UsernameFlag bool
	Username     string
	PasswordFlag bool
	Password     []byte
	Props        Properties
}

// Type returns CONNECT.
func (*Connect) Type() Type { return CONNECT }

// Append appends the CONNECT encoding. The version written is p.Version (v
// when p.Version is zero).
func (p *Connect) Append(dst []byte, v Version) ([]byte, error) {
	if p.Version != 0 {
		v = p.Version
	}
	if err := p.check(v); err != nil {
		return dst, err
	}
	dst, start := beginPacket(dst)
	dst = appendString(dst, "MQTT")
	var flags byte
	if p.CleanStart {
		flags |= 0x02
	}
	if p.Will != nil {
		flags |= 0x04 | p.Will.QoS<<3
		if p.Will.Retain {
			flags |= 0x20
		}
	}
	if p.PasswordFlag {
		flags |= 0x40
	}
	if p.UsernameFlag {
		flags |= 0x80
	}
	dst = append(dst, byte(v), flags)
	dst = appendUint16(dst, p.KeepAlive)
	if v == V5 {
		dst = appendProps(dst, &p.Props, CONNECT)
	}
	dst = appendString(dst, p.ClientID)
	if p.Will != nil {
		if v == V5 {
			dst = appendProps(dst, &p.Will.Props, propContextWill)
		}
		dst = appendString(dst, p.Will.Topic)
		dst = appendBinary(dst, p.Will.Payload)
	}
	if p.UsernameFlag {
		dst = appendString(dst, p.Username)
	}
	if p.PasswordFlag {
		dst = appendBinary(dst, p.Password)
	}
	return finishPacket(dst, start, byte(CONNECT)<<4)
}

func (p *Connect) check(v Version) error {
	if !ValidString(p.ClientID) {
		return malformed(CONNECT, "client identifier is not a valid UTF-8 string")
	}
	if p.UsernameFlag && !ValidString(p.Username) {
		return malformed(CONNECT, "user name is not a valid UTF-8 string")
	}
	if len(p.Password) > 65535 {
		return malformed(CONNECT, "password longer than 65535 bytes")
	}
	if w := p.Will; w != nil {
		if w.QoS > 2 {
			return malformed(CONNECT, "will QoS %d", w.QoS)
		}
		if err := ValidTopicName(w.Topic); err != nil {
			return malformed(CONNECT, "will topic: %v", err)
		}
		if len(w.Payload) > 65535 {
			return malformed(CONNECT, "will payload longer than 65535 bytes")
		}
		if v == V5 {
			if err := checkProps(&w.Props, propContextWill); err != nil {
				return err
			}
		}
	}
	if v == V5 {
		return checkProps(&p.Props, CONNECT)
	}
	return nil
}

func (p *Connect) decode(body []byte) error {
	d := decoder{t: CONNECT, b: body}
	name := d.string("protocol name")
	level := Version(d.byte("protocol level"))
	if d.err != nil {
		return d.err
	}
	if name != "MQTT" {
		return protocolErr(CONNECT, "protocol name %q, want \"MQTT\"", name)
	}
	if level != V311 && level != V5 {
		return &Error{Type: CONNECT, Code: UnsupportedProtocolVersion, Reason: "unsupported protocol level " + strconv.Itoa(int(level))}
	}
	p.Version = level
	flags := d.byte("connect flags")
	if flags&0x01 != 0 {
		return malformed(CONNECT, "reserved connect flag is set [MQTT-3.1.2-3]")
	}
	p.CleanStart = flags&0x02 != 0
	willFlag := flags&0x04 != 0
	willQoS := flags >> 3 & 3
	willRetain := flags&0x20 != 0
	p.PasswordFlag = flags&0x40 != 0
	p.UsernameFlag = flags&0x80 != 0
	if willQoS == 3 {
		return malformed(CONNECT, "will QoS 3 [MQTT-3.1.2-14]")
	}
	if !willFlag && (willQoS != 0 || willRetain) {
		return malformed(CONNECT, "will QoS or retain set without will flag [MQTT-3.1.2-13]")
	}
	if level == V311 && p.PasswordFlag && !p.UsernameFlag {
		return malformed(CONNECT, "password flag without user name flag [MQTT-3.1.2-22]")
	}
	p.KeepAlive = d.uint16("keep alive")
	if level == V5 {
		d.props(&p.Props, CONNECT)
		if d.err == nil && p.Props.Has(PropAuthData) && !p.Props.Has(PropAuthMethod) {
			// MQTT 5.0 section 3.1.2.11.10.
			d.failProto("authentication data without an authentication method")
		}
	}
	p.ClientID = d.string("client identifier")
	if willFlag {
		w := &Will{QoS: willQoS, Retain: willRetain}
		if level == V5 {
			d.props(&w.Props, propContextWill)
		}
		w.Topic = d.string("will topic")
		w.Payload = d.binary("will payload")
		if d.err == nil {
			if err := ValidTopicName(w.Topic); err != nil {
				d.fail("will topic: %v", err)
			}
		}
		p.Will = w
	}
	if p.UsernameFlag {
		p.Username = d.string("user name")
	}
	if p.PasswordFlag {
		p.Password = d.binary("password")
	}
	return d.end()
}

// Connack is the CONNACK packet.
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode // the return code in 3.1.1
	Props          Properties
}

// Type returns CONNACK.
func (*Connack) Type() Type { return CONNACK }

// Append appends the CONNACK encoding.
func (p *Connack) Append(dst []byte, v Version) ([]byte, error) {
	if v == V5 {
		if err := checkProps(&p.Props, CONNACK); err != nil {
			return dst, err
		}
	}
	dst, start := beginPacket(dst)
	var flags byte
	if p.SessionPresent {
		flags = 1
	}
	dst = append(dst, flags, byte(p.ReasonCode))
	if v == V5 {
		dst = appendProps(dst, &p.Props, CONNACK)
	}
	return finishPacket(dst, start, byte(CONNACK)<<4)
}

func (p *Connack) decode(body []byte, v Version) error {
	d := decoder{t: CONNACK, b: body}
	flags := d.byte("acknowledge flags")
	if flags&0xfe != 0 {
		return malformed(CONNACK, "reserved acknowledge flags %#x [MQTT-3.2.2-1]", flags)
	}
	p.SessionPresent = flags&1 != 0
	p.ReasonCode = ReasonCode(d.byte("reason code"))
	if v == V5 && d.err == nil && d.remaining() > 0 {
		// A 3.1.1 server refusing a 5.0 CONNECT answers with a two-byte
		// CONNACK; accept that shape so the refusal can be reported.
		d.props(&p.Props, CONNACK)
	}
	if p.SessionPresent && p.ReasonCode != 0 && d.err == nil {
		return protocolErr(CONNACK, "session present with non-zero reason code [MQTT-3.2.2-4]")
	}
	return d.end()
}
