package packet

import (
	"fmt"
	"unicode/utf8"
	"unsafe"
)

// varintLen returns the number of bytes of n as a Variable Byte Integer.
func varintLen(n int) int {
	switch {
	case n < 128:
		return 1
	case n < 16384:
		return 2
	case n < 2097152:
		return 3
	}
	return 4
}

// appendVarint appends n as a Variable Byte Integer.
func appendVarint(dst []byte, n int) []byte {
	for {
		b := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			b |= 0x80
		}
		dst = append(dst, b)
		if n == 0 {
			return dst
		}
	}
}

func appendUint16(dst []byte, n uint16) []byte { return append(dst, byte(n>>8), byte(n)) }

func appendUint32(dst []byte, n uint32) []byte {
	return append(dst, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendString(dst []byte, s string) []byte {
	dst = appendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

func appendBinary(dst []byte, b []byte) []byte {
	dst = appendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// beginPacket reserves room for a fixed header; finishPacket writes it once
// the body is known, moving the body down over the unused header bytes.
func beginPacket(dst []byte) ([]byte, int) {
	start := len(dst)
	return append(dst, 0, 0, 0, 0, 0), start
}

func finishPacket(dst []byte, start int, first byte) ([]byte, error) {
	rem := len(dst) - start - 5
	if rem > MaxRemainingLength {
		return dst[:start], &Error{Type: Type(first >> 4), Code: PacketTooLarge,
			Reason: fmt.Sprintf("remaining length %d exceeds %d", rem, MaxRemainingLength)}
	}
	n := varintLen(rem)
	dst[start] = first
	appendVarint(dst[start+1:start+1], rem)
	copy(dst[start+1+n:], dst[start+5:])
	return dst[:start+1+n+rem], nil
}

// ValidString reports whether s may be sent as an MQTT UTF-8 Encoded String:
// at most 65,535 bytes of well-formed UTF-8 without U+0000 [MQTT-1.5.4-1],
// [MQTT-1.5.4-2]. Go's UTF-8 decoder already rejects encoded surrogates.
func ValidString(s string) bool {
	if len(s) > 65535 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 {
			return false
		}
		if c >= utf8.RuneSelf {
			return utf8.ValidString(s[i:]) && noNUL(s[i:])
		}
	}
	return true
}

func noNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return false
		}
	}
	return true
}

// decoder reads fields from a packet body. Every read checks bounds; the
// first failure is kept in err and later reads return zero values.
type decoder struct {
	t     Type
	b     []byte
	i     int
	alias bool // strings share b instead of being copied
	err   error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = malformed(d.t, format, args...)
	}
}

func (d *decoder) failProto(format string, args ...any) {
	if d.err == nil {
		d.err = protocolErr(d.t, format, args...)
	}
}

func (d *decoder) remaining() int { return len(d.b) - d.i }

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.i >= len(d.b) {
		d.fail("%s: unexpected end at byte %d", what, d.i)
		return 0
	}
	c := d.b[d.i]
	d.i++
	return c
}

func (d *decoder) uint16(what string) uint16 {
	if d.err != nil {
		return 0
	}
	if d.remaining() < 2 {
		d.fail("%s: unexpected end at byte %d", what, d.i)
		return 0
	}
	n := uint16(d.b[d.i])<<8 | uint16(d.b[d.i+1])
	d.i += 2
	return n
}

func (d *decoder) uint32(what string) uint32 {
	if d.err != nil {
		return 0
	}
	if d.remaining() < 4 {
		d.fail("%s: unexpected end at byte %d", what, d.i)
		return 0
	}
	b := d.b[d.i:]
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	d.i += 4
	return n
}

func (d *decoder) varint(what string) int {
	if d.err != nil {
		return 0
	}
	var n, shift int
	for k := 0; k < 4; k++ {
		if d.i >= len(d.b) {
			d.fail("%s: unexpected end at byte %d", what, d.i)
			return 0
		}
		c := d.b[d.i]
		d.i++
		n |= int(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if k > 0 && c == 0 {
				d.fail("%s: variable byte integer not minimally encoded [MQTT-1.5.5-1]", what)
				return 0
			}
			return n
		}
	}
	d.fail("%s: variable byte integer longer than four bytes", what)
	return 0
}

func (d *decoder) binary(what string) []byte {
	n := int(d.uint16(what))
	if d.err != nil {
		return nil
	}
	if d.remaining() < n {
		d.fail("%s: length %d overruns the packet at byte %d", what, n, d.i)
		return nil
	}
	b := d.b[d.i : d.i+n : d.i+n]
	d.i += n
	if !d.alias {
		b = append([]byte(nil), b...)
	}
	return b
}

func (d *decoder) string(what string) string {
	n := int(d.uint16(what))
	if d.err != nil {
		return ""
	}
	if d.remaining() < n {
		d.fail("%s: length %d overruns the packet at byte %d", what, n, d.i)
		return ""
	}
	b := d.b[d.i : d.i+n]
	d.i += n
	if n == 0 {
		return ""
	}
	s := unsafe.String(&b[0], n)
	if !ValidString(s) {
		d.fail("%s: not valid UTF-8 or contains U+0000", what)
		return ""
	}
	if !d.alias {
		s = string(b)
	}
	return s
}

// rest returns the unread bytes (shared when aliasing).
func (d *decoder) rest() []byte {
	if d.err != nil {
		return nil
	}
	b := d.b[d.i:len(d.b):len(d.b)]
	d.i = len(d.b)
	if !d.alias && len(b) > 0 {
		b = append([]byte(nil), b...)
	}
	return b
}

func (d *decoder) end() error {
	if d.err == nil && d.i != len(d.b) {
		d.fail("%d unexpected bytes at the end", len(d.b)-d.i)
	}
	return d.err
}
