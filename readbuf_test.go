package mqtt

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
)

// chunkReader returns its data in reads of the given sizes, in turn.
type chunkReader struct {
	data   []byte
	sizes  []int
	i      int
	counts []int // length of each read request
}

func (c *chunkReader) Read(p []byte) (int, error) {
	c.counts = append(c.counts, len(p))
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), c.sizes[c.i%len(c.sizes)])
	c.i++
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// TestConnReader checks that connReader returns exactly the bytes of the
// connection through any mix of ReadByte and Read, that it holds no
// buffer once everything is consumed after a short read, and that a
// stream that keeps filling its buffer is read in buffer-sized reads.
func TestConnReader(t *testing.T) {
	data := make([]byte, 50000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, sizes := range [][]int{{1}, {3, 200}, {128}, {128, 4096}, {100000}} {
		src := &chunkReader{data: data, sizes: sizes}
		b := newConnReader(src)
		var got []byte
		for i := 0; ; i++ {
			if i%3 == 0 {
				c, err := b.ReadByte()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, c)
				continue
			}
			p := make([]byte, (i*37)%5000+1)
			n, err := b.Read(p)
			got = append(got, p[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("sizes %v: read %d bytes, not the %d written", sizes, len(got), len(data))
		}
		if b.pool != nil {
			t.Errorf("sizes %v: a pooled buffer is still held at EOF", sizes)
		}
	}
	// A connection that always has more than a buffer's worth waiting is
	// read in full-buffer reads after the first probe.
	src := &chunkReader{data: data, sizes: []int{100000}}
	b := newConnReader(src)
	for range 20000 {
		if _, err := b.ReadByte(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range src.counts[1:] {
		if n != readBufferSize {
			t.Fatalf("read sizes %v: want one probe, then %d-byte reads", src.counts, readBufferSize)
		}
	}
	if err := iotest.TestReader(newConnReader(bytes.NewReader(data)), data); err != nil {
		t.Error(err)
	}
}
