package packet

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// cmpOpts treats nil and empty slices alike: the decoder returns nil for an
// absent or empty payload, password or binary property. Byte slices are
// compared whole with bytes.Equal (which equates nil and empty) because
// cmpopts.EquateEmpty alone would visit every byte of a large payload.
var cmpOpts = []cmp.Option{
	cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) }),
	cmp.FilterPath(func(p cmp.Path) bool { return p.Last().Type() != reflect.TypeFor[[]byte]() },
		cmpopts.EquateEmpty()),
}

// encode appends p for version v to a fresh buffer, failing the test on error.
func encode(t testing.TB, p Packet, v Version) []byte {
	t.Helper()
	b, err := p.Append(nil, v)
	if err != nil {
		t.Fatalf("Append(%T, %v): %v", p, v, err)
	}
	return b
}

// read decodes one whole packet from b and requires that it consumes b.
func read(t testing.TB, b []byte, v Version) Packet {
	t.Helper()
	r := bytes.NewReader(b)
	p, err := Read(r, v, 0)
	if err != nil {
		t.Fatalf("Read(% x, %v): %v", head(b), v, err)
	}
	if r.Len() != 0 {
		t.Fatalf("Read left %d of %d bytes unread", r.Len(), len(b))
	}
	return p
}

// head abbreviates long encodings in failure messages.
func head(b []byte) []byte {
	if len(b) > 48 {
		return b[:48]
	}
	return b
}

// codecError reports whether err is a *Error that matches exactly one of the
// sentinels, or the one code outside them (an unsupported CONNECT level).
func codecError(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	n := 0
	for _, s := range []error{ErrMalformed, ErrProtocol, ErrTooLarge} {
		if errors.Is(err, s) {
			n++
		}
	}
	return n == 1 || (n == 0 && e.Code == UnsupportedProtocolVersion)
}

// Builders for hand-made packets. raw computes the Remaining Length.

func raw(first byte, parts ...[]byte) []byte {
	body := cat(parts...)
	return append(appendVarint([]byte{first}, len(body)), body...)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func by(b ...byte) []byte { return b }

func str(s string) []byte { return appendString(nil, s) }

func u16(n uint16) []byte { return appendUint16(nil, n) }

func u32(n uint32) []byte { return appendUint32(nil, n) }

func vbi(n int) []byte { return appendVarint(nil, n) }

// props prefixes encoded properties with their length.
func props(parts ...[]byte) []byte {
	b := cat(parts...)
	return append(vbi(len(b)), b...)
}
