package packet

// Disconnect is the DISCONNECT packet. In 3.1.1 it has no body.
type Disconnect struct {
	ReasonCode ReasonCode
	Props      Properties
}

// Type returns DISCONNECT.
func (*Disconnect) Type() Type { return DISCONNECT }

// Append appends the DISCONNECT encoding; in 5.0 the reason code and
// properties are omitted when they are Normal Disconnection and empty.
func (p *Disconnect) Append(dst []byte, v Version) ([]byte, error) {
	return appendCodeProps(dst, DISCONNECT, p.ReasonCode, &p.Props, v)
}

func (p *Disconnect) decode(body []byte, v Version) error {
	if v != V5 {
		if len(body) != 0 {
			return malformed(DISCONNECT, "remaining length %d, want 0", len(body))
		}
		return nil
	}
	return decodeCodeProps(body, DISCONNECT, &p.ReasonCode, &p.Props)
}

// Auth is the MQTT 5.0 AUTH packet.
type Auth struct {
	ReasonCode ReasonCode
	Props      Properties
}

// Type returns AUTH.
func (*Auth) Type() Type { return AUTH }

// Append appends the AUTH encoding.
func (p *Auth) Append(dst []byte, v Version) ([]byte, error) {
	if v != V5 {
		return dst, protocolErr(AUTH, "AUTH is not part of MQTT %s", v)
	}
	return appendCodeProps(dst, AUTH, p.ReasonCode, &p.Props, v)
}

func (p *Auth) decode(body []byte) error {
	if err := decodeCodeProps(body, AUTH, &p.ReasonCode, &p.Props); err != nil {
		return err
	}
	switch p.ReasonCode {
	case Success, ContinueAuthentication, ReAuthenticate:
		return nil
	}
	return protocolErr(AUTH, "reason code %v is not valid in AUTH", p.ReasonCode)
}

func appendCodeProps(dst []byte, t Type, code ReasonCode, props *Properties, v Version) ([]byte, error) {
	if v != V5 || code == 0 && props.IsZero() {
		return append(dst, byte(t)<<4, 0), nil
	}
	if err := checkProps(props, t); err != nil {
		return dst, err
	}
	dst, start := beginPacket(dst)
	dst = append(dst, byte(code))
	if !props.IsZero() {
		dst = appendProps(dst, props, t)
	}
	return finishPacket(dst, start, byte(t)<<4)
}

func decodeCodeProps(body []byte, t Type, code *ReasonCode, props *Properties) error {
	d := decoder{t: t, b: body}
	if d.remaining() > 0 {
		*code = ReasonCode(d.byte("reason code"))
	}
	if d.remaining() > 0 {
		d.props(props, t)
	}
	return d.end()
}
