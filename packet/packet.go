// Package packet is the MQTT 3.1.1 and 5.0 wire codec: control packet types,
// properties, reason codes, append-style encoders and a validating decoder.
//
// The package is pure: no goroutines and no I/O beyond reading a fixed header
// from an io.ByteReader. Encoders append to a caller's buffer so that a
// connection can reuse one buffer for every packet it writes. The decoder
// checks the Remaining Length against the maximum packet size before any
// body is allocated, and validates each packet as the specifications require
// of a receiver (reserved flag bits, UTF-8 rules, property placement and
// multiplicity, value ranges).
package packet

import (
	"errors"
	"fmt"
	"io"
)

// Type is an MQTT control packet type (the high nibble of the first byte).
type Type byte

// Control packet types.
const (
	CONNECT     Type = 1
	CONNACK     Type = 2
	PUBLISH     Type = 3
	PUBACK      Type = 4
	PUBREC      Type = 5
	PUBREL      Type = 6
	PUBCOMP     Type = 7
	SUBSCRIBE   Type = 8
	SUBACK      Type = 9
	UNSUBSCRIBE Type = 10
	UNSUBACK    Type = 11
	PINGREQ     Type = 12
	PINGRESP    Type = 13
	DISCONNECT  Type = 14
	AUTH        Type = 15
)

var typeNames = [...]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
	"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}

// String returns the packet type's name as the specification spells it.
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", byte(t))
}

// Version is the protocol level carried in CONNECT.
type Version byte

// Protocol versions.
const (
	V311 Version = 4 // MQTT 3.1.1
	V5   Version = 5 // MQTT 5.0
)

// String returns "3.1.1" or "5.0".
func (v Version) String() string {
	switch v {
	case V311:
		return "3.1.1"
	case V5:
		return "5.0"
	}
	return fmt.Sprintf("Version(%d)", byte(v))
}

// MaxRemainingLength is the largest Remaining Length a four-byte Variable Byte
// Integer can express (268,435,455).
const MaxRemainingLength = 268435455

// MaxPacketSize is the largest size a whole MQTT packet can have: one byte of
// packet type and flags, four bytes of Remaining Length, and the body.
const MaxPacketSize = 1 + 4 + MaxRemainingLength

// Packet is implemented by every control packet type in this package.
type Packet interface {
	// Type returns the control packet type.
	Type() Type
	// Append appends the packet's encoding for protocol version v to dst.
	// It fails when a field cannot be encoded (a string over 65,535 bytes,
	// a packet over the Remaining Length limit).
	Append(dst []byte, v Version) ([]byte, error)
}

// Header is a decoded fixed header.
type Header struct {
	Type      Type
	Flags     byte // the low nibble of the first byte
	Remaining int  // Remaining Length: the size of the variable header and payload
}

// Size returns the size of the whole packet this header starts.
func (h Header) Size() int { return 1 + varintLen(h.Remaining) + h.Remaining }

// Sentinel errors matched by *Error with errors.Is.
var (
	// ErrMalformed means the bytes do not form a valid packet (reason 0x81).
	ErrMalformed = errors.New("malformed packet")
	// ErrProtocol means a well-formed packet broke a protocol rule (reason 0x82).
	ErrProtocol = errors.New("protocol error")
	// ErrTooLarge means a packet exceeds the maximum packet size (reason 0x95).
	ErrTooLarge = errors.New("packet too large")
)

// Error describes a packet that could not be decoded or encoded: which packet
// type, what was wrong, and the reason code a receiver should report.
type Error struct {
	Type   Type       // packet type being decoded or encoded (0 if unknown)
	Code   ReasonCode // MalformedPacket, ProtocolError or PacketTooLarge
	Reason string     // what was wrong, for people
}

func (e *Error) Error() string {
	kind := "malformed"
	switch e.Code {
	case ProtocolError:
		kind = "protocol error in"
	case PacketTooLarge:
		kind = "too large:"
	}
	if e.Type == 0 {
		return "packet: " + kind + " packet: " + e.Reason
	}
	return "packet: " + kind + " " + e.Type.String() + ": " + e.Reason
}

// Is reports whether target is the sentinel matching e.Code.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrMalformed:
		return e.Code == MalformedPacket
	case ErrProtocol:
		return e.Code == ProtocolError
	case ErrTooLarge:
		return e.Code == PacketTooLarge
	}
	return false
}

func malformed(t Type, format string, args ...any) error {
	return &Error{Type: t, Code: MalformedPacket, Reason: fmt.Sprintf(format, args...)}
}

func protocolErr(t Type, format string, args ...any) error {
	return &Error{Type: t, Code: ProtocolError, Reason: fmt.Sprintf(format, args...)}
}

// ReadHeader reads a fixed header from r. It rejects a reserved packet type,
// reserved flag bits that do not hold their required values [MQTT-2.1.3-1]
// (PUBLISH flags are checked by the PUBLISH decoder), a Remaining Length
// longer than four bytes, and a packet whose total size exceeds maxSize
// (0 means MaxPacketSize); all before the body is read or allocated.
func ReadHeader(r io.ByteReader, maxSize int) (Header, error) {
	b, err := r.ReadByte()
	if err != nil {
		return Header{}, err
	}
	h := Header{Type: Type(b >> 4), Flags: b & 0x0f}
	if h.Type == 0 {
		return h, malformed(0, "reserved packet type 0")
	}
	if h.Type != PUBLISH {
		want := byte(0)
		if h.Type == PUBREL || h.Type == SUBSCRIBE || h.Type == UNSUBSCRIBE {
			want = 2
		}
		if h.Flags != want {
			return h, malformed(h.Type, "fixed header flags %#x, want %#x", h.Flags, want)
		}
	}
	var n, shift int
	for i := 0; ; i++ {
		if i == 4 {
			return h, malformed(h.Type, "remaining length longer than four bytes")
		}
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return h, err
		}
		n |= int(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if i > 0 && c == 0 {
				return h, malformed(h.Type, "remaining length not minimally encoded")
			}
			break
		}
	}
	h.Remaining = n
	if maxSize <= 0 {
		maxSize = MaxPacketSize
	}
	if h.Size() > maxSize {
		return h, &Error{Type: h.Type, Code: PacketTooLarge,
			Reason: fmt.Sprintf("%d bytes exceeds the maximum packet size %d", h.Size(), maxSize)}
	}
	return h, nil
}

// Read reads and decodes one whole packet from r, allocating its body. It is
// a convenience for tests and tools; a connection's reader uses ReadHeader and
// the Decode functions to control allocation.
func Read(r io.Reader, v Version, maxSize int) (Packet, error) {
	br, ok := r.(io.ByteReader)
	if !ok {
		br = byteReader{r}
	}
	h, err := ReadHeader(br, maxSize)
	if err != nil {
		return nil, err
	}
	body := make([]byte, h.Remaining)
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return Decode(h, body, v)
}

type byteReader struct{ io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var p [1]byte
	_, err := io.ReadFull(b.Reader, p[:])
	return p[0], err
}

// Decode decodes the body of the packet introduced by h. Strings in the
// result are copies, except in PUBLISH, whose topic and string properties
// share body (the caller must not modify body afterwards). For CONNECT, the
// version is taken from the packet itself and v is ignored.
func Decode(h Header, body []byte, v Version) (Packet, error) {
	if len(body) != h.Remaining {
		return nil, malformed(h.Type, "body is %d bytes, remaining length says %d", len(body), h.Remaining)
	}
	switch h.Type {
	case CONNECT:
		p := new(Connect)
		return p, p.decode(body)
	case CONNACK:
		p := new(Connack)
		return p, p.decode(body, v)
	case PUBLISH:
		p := new(Publish)
		return p, DecodePublish(h, body, v, p)
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		p := new(Ack)
		return p, DecodeAck(h, body, v, p)
	case SUBSCRIBE:
		p := new(Subscribe)
		return p, p.decode(body, v)
	case SUBACK:
		p := new(Suback)
		return p, p.decode(body, v)
	case UNSUBSCRIBE:
		p := new(Unsubscribe)
		return p, p.decode(body, v)
	case UNSUBACK:
		p := new(Unsuback)
		return p, p.decode(body, v)
	case PINGREQ, PINGRESP:
		if len(body) != 0 {
			return nil, malformed(h.Type, "remaining length %d, want 0", len(body))
		}
		if h.Type == PINGREQ {
			return &Pingreq{}, nil
		}
		return &Pingresp{}, nil
	case DISCONNECT:
		p := new(Disconnect)
		return p, p.decode(body, v)
	case AUTH:
		if v != V5 {
			return nil, protocolErr(AUTH, "AUTH is not part of MQTT %s", v)
		}
		p := new(Auth)
		return p, p.decode(body)
	}
	return nil, malformed(h.Type, "unknown packet type")
}

// Pingreq is the PINGREQ packet.
type Pingreq struct{}

// Type returns PINGREQ.
func (*Pingreq) Type() Type { return PINGREQ }

// Append appends the two-byte PINGREQ.
func (*Pingreq) Append(dst []byte, _ Version) ([]byte, error) { return append(dst, 0xc0, 0), nil }

// Pingresp is the PINGRESP packet.
type Pingresp struct{}

// Type returns PINGRESP.
func (*Pingresp) Type() Type { return PINGRESP }

// Append appends the two-byte PINGRESP.
func (*Pingresp) Append(dst []byte, _ Version) ([]byte, error) { return append(dst, 0xd0, 0), nil }
