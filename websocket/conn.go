//go:build !js

package websocket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	cws "github.com/coder/websocket"
)

// closeTimeout bounds the closing handshake: writing the close frame and,
// after the client's last packet, waiting for the server's.
const closeTimeout = time.Second

// conn is a WebSocket as the MQTT client uses it: a net.Conn whose byte
// stream travels in binary messages. Each Write is one message; Read returns
// the payload of the server's messages as one stream.
//
// Deadlines are those of the connection under the WebSocket. An expired
// deadline interrupts a blocked Read or Write there, without ending the
// WebSocket (cws.NetConn would close it): the client stops its reader that
// way and may then still write a DISCONNECT. A read interrupted in the
// middle of a frame leaves the stream unusable for reading, which the
// client never does afterwards.
//
// One goroutine may read while another writes, and either may close.
type conn struct {
	ws    *cws.Conn
	under *coalescingConn // the TCP or TLS connection under the WebSocket

	// Read state, used by the reading goroutine only.
	msg io.Reader // the rest of the message being read, or nil

	mu            sync.Mutex
	writeDeadline time.Time // guarded by mu
	closed        bool      // Close was called; guarded by mu
}

// Read reads the payload of the server's binary messages.
func (c *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.msg == nil {
			typ, r, err := c.ws.Reader(context.Background())
			if err != nil {
				return 0, readError(err)
			}
			if typ != cws.MessageBinary {
				// [MQTT-6.0.0-1]: the recipient closes the connection.
				c.closeWith(cws.StatusUnsupportedData, "MQTT needs binary messages")
				return 0, errTextMessage
			}
			c.msg = r
		}
		n, err := c.msg.Read(p)
		if errors.Is(err, io.EOF) {
			c.msg, err = nil, nil
		}
		// Empty messages and frames go round again: the server's
		// messages bound that.
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// readError translates the end of the server's stream: a close frame with
// status 1000 (normal closure) or 1001 (going away) is io.EOF, as is the
// end of the connection between messages.
func readError(err error) error {
	switch code := cws.CloseStatus(err); code {
	case cws.StatusNormalClosure, cws.StatusGoingAway:
		return io.EOF
	case -1:
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		return err
	default:
		var ce cws.CloseError
		errors.As(err, &ce)
		return fmt.Errorf("mqtt: the server closed the WebSocket with status %d %q: %w", int(code), ce.Reason, err)
	}
}

// Write sends p as one binary message, in one write to the connection
// under the WebSocket (or one per coalesceSize bytes).
func (c *conn) Write(p []byte) (int, error) {
	c.under.cork()
	err := c.ws.Write(context.Background(), cws.MessageBinary, p)
	if uerr := c.under.uncork(); err == nil {
		err = uerr
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite runs the closing handshake after the client's last packet: it
// sends a close frame with status 1000 (normal closure) and waits for the
// server's, discarding any messages meanwhile, so that the server sees the
// last packet before the connection ends (see mqtt.Transport). It waits at
// most closeTimeout, and not beyond the write deadline. The connection is
// closed afterwards; reads fail.
func (c *conn) CloseWrite() error {
	c.mu.Lock()
	deadline := c.closeDeadlineLocked()
	c.mu.Unlock()
	_ = c.under.SetDeadline(deadline)
	if err := c.ws.Close(cws.StatusNormalClosure, ""); err != nil {
		return fmt.Errorf("mqtt: WebSocket closing handshake: %w", err)
	}
	return nil
}

// Close ends the WebSocket with a close frame of status 1000 (normal
// closure), unless CloseWrite did, and closes the connection under it. It
// does not wait for the server's close frame, and waits for its own to be
// written until the write deadline, or closeTimeout when that is unset or
// has passed.
func (c *conn) Close() error {
	return c.closeWith(cws.StatusNormalClosure, "")
}

func (c *conn) closeWith(code cws.StatusCode, reason string) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.closed = true
	deadline := c.closeDeadlineLocked()
	c.mu.Unlock()
	_ = c.under.SetWriteDeadline(deadline)
	// Reads fail at once: Close returns after writing its close frame.
	_ = c.under.SetReadDeadline(time.Unix(1, 0))
	_ = c.ws.Close(code, reason)
	// Close returns the error of the read it no longer waits for; the
	// connection under the WebSocket is closed in any case.
	return nil
}

// closeDeadlineLocked returns the time by which the closing handshake ends:
// the write deadline, or closeTimeout from now when that is later, unset or
// passed. The caller holds mu.
func (c *conn) closeDeadlineLocked() time.Time {
	now := time.Now()
	d := now.Add(closeTimeout)
	if wd := c.writeDeadline; wd.After(now) && wd.Before(d) {
		return wd
	}
	return d
}

// LocalAddr returns the local address of the connection under the
// WebSocket.
func (c *conn) LocalAddr() net.Addr { return c.under.LocalAddr() }

// RemoteAddr returns the server's address.
func (c *conn) RemoteAddr() net.Addr { return c.under.RemoteAddr() }

// SetDeadline sets the read and write deadlines of the connection under
// the WebSocket.
func (c *conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.writeDeadline = t
	c.mu.Unlock()
	return c.under.SetDeadline(t)
}

// SetReadDeadline sets the read deadline of the connection under the
// WebSocket.
func (c *conn) SetReadDeadline(t time.Time) error { return c.under.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline of the connection under the
// WebSocket.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.writeDeadline = t
	c.mu.Unlock()
	return c.under.SetWriteDeadline(t)
}
