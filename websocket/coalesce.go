//go:build !js

package websocket

import (
	"net"
	"sync"
)

// coalesceSize is the size of the pooled buffers in which a message's
// writes are gathered; a longer message goes out in pieces of this size.
const coalesceSize = 32 << 10

// coalesceBuffers holds *[coalesceSize]byte buffers shared by all
// connections, so that an idle connection holds no write buffer.
var coalesceBuffers = sync.Pool{New: func() any { return new([coalesceSize]byte) }}

// coalescingConn is the connection under a WebSocket. coder/websocket
// writes a message through a 4 KiB buffer, that is in writes of 4 KiB; while
// the connection is corked, those writes are gathered and go out in one
// write when it is uncorked, or in pieces of coalesceSize. Writes while it
// is not corked, such as coder/websocket's answers to pings, go straight
// through.
type coalescingConn struct {
	net.Conn

	mu     sync.Mutex
	corked int                 // the number of cork calls not yet uncorked; guarded by mu
	buf    *[coalesceSize]byte // while corked; guarded by mu
	n      int                 // bytes in buf; guarded by mu
}

// cork starts gathering writes.
func (c *coalescingConn) cork() {
	c.mu.Lock()
	c.corked++
	c.mu.Unlock()
}

// uncork writes what was gathered, once every cork has been uncorked.
func (c *coalescingConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked--
	if c.corked > 0 || c.buf == nil {
		return nil
	}
	err := c.flushLocked()
	coalesceBuffers.Put(c.buf)
	c.buf = nil
	return err
}

// flushLocked writes the gathered bytes. The caller holds mu.
func (c *coalescingConn) flushLocked() error {
	n := c.n
	c.n = 0
	if n == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf[:n])
	return err
}

// Write gathers p while the connection is corked, and writes it otherwise.
func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked == 0 {
		return c.Conn.Write(p)
	}
	if c.buf == nil {
		c.buf = coalesceBuffers.Get().(*[coalesceSize]byte)
	}
	written := 0
	for len(p) > 0 {
		if c.n == coalesceSize {
			if err := c.flushLocked(); err != nil {
				return written, err
			}
		}
		m := copy(c.buf[c.n:], p)
		c.n += m
		p = p[m:]
		written += m
	}
	return written, nil
}
