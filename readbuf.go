package mqtt

import (
	"io"
	"sync"
)

const (
	// readBufferSize is the size of the read buffers connections borrow
	// while data is arriving.
	readBufferSize = 4096
	// readProbeSize is the inline buffer a connection reads into when it has
	// nothing buffered: an idle connection waits for data holding only this.
	readProbeSize = 128
)

// readBuffers are the read buffers of connections that are receiving; a
// buffer goes back to the pool as soon as it has been consumed.
var readBuffers = sync.Pool{New: func() any { b := make([]byte, readBufferSize); return &b }}

// connReader is a buffered reader for a connection that holds no buffer
// while idle. With nothing buffered it reads into a small inline array, so
// a connection blocked waiting for the broker costs readProbeSize bytes, not
// a full buffer. When a read fills the space it was given, more is likely on
// the way: the reader then borrows a pooled buffer and keeps it for as long
// as reads keep filling it, giving it back once a read comes up short and
// its bytes have been consumed.
type connReader struct {
	rd     io.Reader
	probe  [readProbeSize]byte
	buf    []byte  // probe[:] or *pool
	pool   *[]byte // the borrowed buffer, nil when buf is the probe or nil
	r, w   int     // buf[r:w] is unread
	hot    bool    // the last read filled its space: keep the pooled buffer
	peeked int     // bytes lent by peek, given back by discard
}

func newConnReader(rd io.Reader) *connReader { return &connReader{rd: rd} }

// fill reads more into the buffer; it is called only when buf[r:w] is empty
// or, for the pooled buffer, when there is room after w.
func (b *connReader) fill() error {
	if b.r == b.w {
		b.r, b.w = 0, 0
		if b.pool == nil {
			b.buf = b.probe[:]
		}
	}
	for range 100 { // io.Reader allows (0, nil); do not spin for ever
		n, err := b.rd.Read(b.buf[b.w:])
		b.w += n
		if n > 0 {
			b.hot = b.w == len(b.buf)
			if b.pool == nil && b.hot {
				b.borrow()
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// borrow moves the unread bytes of the probe into a pooled buffer.
func (b *connReader) borrow() {
	b.pool = readBuffers.Get().(*[]byte)
	n := copy(*b.pool, b.buf[b.r:b.w])
	b.buf, b.r, b.w = *b.pool, 0, n
}

// consumed returns the pooled buffer once everything in it has been read,
// unless the last read filled it.
func (b *connReader) consumed() {
	if b.r == b.w && b.pool != nil && !b.hot {
		readBuffers.Put(b.pool)
		b.pool, b.buf = nil, nil
		b.r, b.w = 0, 0
	}
}

// ReadByte implements io.ByteReader.
func (b *connReader) ReadByte() (byte, error) {
	for b.r == b.w {
		if err := b.fill(); err != nil {
			return 0, err
		}
	}
	c := b.buf[b.r]
	b.r++
	b.consumed()
	return c, nil
}

// Read implements io.Reader. A read of at least a buffer's size with
// nothing buffered goes straight to the connection.
func (b *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		if len(p) >= readBufferSize {
			return b.rd.Read(p)
		}
		if err := b.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	b.consumed()
	return n, nil
}

// packetLen returns the length of the MQTT packet the unread bytes start
// with, fixed header included: 0 while its fixed header is incomplete, -1
// when its Remaining Length is malformed (the reader reports it).
func (b *connReader) packetLen() int {
	p := b.buf[b.r:b.w]
	n, shift := 0, 0
	for i := 1; i < 5; i++ {
		if i >= len(p) {
			return 0
		}
		c := p[i]
		n |= int(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			return i + 1 + n
		}
	}
	return -1
}

// whole reports whether the unread bytes start with a whole packet, or
// with a fixed header that is malformed.
func (b *connReader) whole() bool {
	n := b.packetLen()
	return n < 0 || (n > 0 && n <= b.w-b.r)
}

// burst reports whether the unread bytes hold more than one whole packet.
func (b *connReader) burst() bool {
	n := b.packetLen()
	if n <= 0 || n > b.w-b.r {
		return false
	}
	b.r += n
	more := b.whole()
	b.r -= n
	return more
}

// wait reads from the connection until the unread bytes start with a whole
// packet, or with the fixed header of one larger than a read buffer (read
// as it arrives) or a malformed one. The reader calls it with nothing else
// on its stack, so that a connection waiting for the broker costs no more
// than the smallest goroutine stack.
func (b *connReader) wait() error {
	for range readBufferSize + 1 { // each round reads at least a byte
		if n := b.packetLen(); n < 0 || n > readBufferSize || (n > 0 && n <= b.w-b.r) {
			return nil
		}
		if err := b.more(); err != nil {
			if err == io.EOF && b.r < b.w {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// more reads more after the unread bytes, first moving them into a pooled
// buffer, or to its start, when there is no room after them.
func (b *connReader) more() error {
	switch {
	case b.r == b.w:
	case b.pool == nil:
		b.borrow()
	case b.w == len(b.buf):
		n := copy(b.buf, b.buf[b.r:b.w])
		b.r, b.w = 0, n
	}
	return b.fill()
}

// peek returns the next n bytes in place when they are buffered. The caller
// gives them back with discard once done with them.
func (b *connReader) peek(n int) ([]byte, bool) {
	if b.w-b.r < n {
		return nil, false
	}
	b.peeked = n
	return b.buf[b.r : b.r+n : b.r+n], true
}

// discard consumes the bytes peek lent.
func (b *connReader) discard() {
	if b.peeked > 0 {
		b.r += b.peeked
		b.peeked = 0
		b.consumed()
	}
}

// release returns a borrowed buffer when the connection ends.
func (b *connReader) release() {
	if b.pool != nil {
		readBuffers.Put(b.pool)
		b.pool, b.buf = nil, nil
		b.r, b.w = 0, 0
	}
}
