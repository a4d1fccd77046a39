package packet

import (
	"bytes"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const fuzzMaxSize = 1 << 20

// FuzzDecode decodes arbitrary bytes. Decoding must not panic and must fail
// only with a typed error or an I/O error from a short input. A packet that
// decodes must encode again, and that encoding must decode to an equal packet
// and re-encode to the same bytes: the encoder and decoder agree.
//
// Seeds are the round-trip table's encodings for both versions (built here)
// plus the corpus in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, c := range roundTripCases() {
		b, err := c.p.Append(nil, c.v)
		if err != nil {
			f.Fatalf("%s: %v", c.name, err)
		}
		if len(b) <= 4096 {
			f.Add(b, c.v == V5)
		}
	}
	for _, c := range goldenCases() {
		f.Add(c.b, c.v == V5)
	}
	for _, c := range invalidCases() {
		f.Add(c.b, c.v == V5)
	}
	f.Fuzz(func(t *testing.T, data []byte, v5 bool) {
		v := V311
		if v5 {
			v = V5
		}
		p, err := Read(bytes.NewReader(data), v, fuzzMaxSize)
		if err != nil {
			if !codecError(err) && err != io.EOF && err != io.ErrUnexpectedEOF {
				t.Fatalf("Read: untyped error %#v", err)
			}
			return
		}
		b, err := p.Append(nil, v)
		if err != nil {
			// Everything the decoder accepts is encodable; a decoded
			// packet never exceeds the limits Append checks.
			t.Fatalf("Append(%#v): %v", p, err)
		}
		r := bytes.NewReader(b)
		p2, err := Read(r, v, fuzzMaxSize)
		if err != nil {
			t.Fatalf("decoding the re-encoding % x of %#v: %v", head(b), p, err)
		}
		if r.Len() != 0 {
			t.Fatalf("re-encoding has %d trailing bytes", r.Len())
		}
		if diff := cmp.Diff(p, p2, cmpOpts...); diff != "" {
			t.Fatalf("decode(encode(p)) != p (-first +second):\n%s", diff)
		}
		b2, err := p2.Append(nil, v)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("encoding is not stable: % x then % x (%v)", head(b), head(b2), err)
		}
	})
}
