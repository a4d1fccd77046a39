//go:build js

package websocket

import (
	"context"
	"io"
	"net"
	"os"
	"sync"
	"time"

	cws "github.com/coder/websocket"
)

// conn is a browser's WebSocket as the MQTT client uses it: a net.Conn
// whose byte stream travels in binary messages. Each Write is one message;
// Read returns the payload of the server's messages as one stream.
//
// The browser's WebSocket delivers whole messages and cannot interrupt a
// read without closing (cws.Conn.Read closes it with status 1008 when its
// context ends), so a goroutine receives the messages and Read waits for
// them, or for its deadline, which therefore interrupts a Read without
// ending the WebSocket. Writes never block, so the write deadline only
// fails writes once it has passed.
//
// One goroutine may read while another writes, and either may close.
type conn struct {
	ws   *cws.Conn
	addr wsAddr

	messages chan message  // from the receiving goroutine
	done     chan struct{} // closed by Close: the receiving goroutine stops
	received chan struct{} // closed when the receiving goroutine has returned

	// Read state, used by the reading goroutine only.
	rest []byte // unread payload of the current message
	err  error  // sticky: the receiving goroutine's error

	readDeadline, writeDeadline deadline

	closeOnce sync.Once
}

// message is what the receiving goroutine got: a message or an error.
type message struct {
	typ cws.MessageType
	p   []byte
	err error
}

func newConn(ws *cws.Conn, host string) *conn {
	c := &conn{
		ws:       ws,
		addr:     wsAddr(host),
		messages: make(chan message),
		done:     make(chan struct{}),
		received: make(chan struct{}),
	}
	c.readDeadline.init()
	c.writeDeadline.init()
	go c.receive()
	return c
}

// receive hands the server's messages to Read until the WebSocket ends.
func (c *conn) receive() {
	defer close(c.received)
	for {
		typ, p, err := c.ws.Read(context.Background())
		select {
		case c.messages <- message{typ, p, err}:
		case <-c.done:
			return
		}
		if err != nil {
			return
		}
	}
}

// Read reads the payload of the server's binary messages.
func (c *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(c.rest) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		select {
		case m := <-c.messages:
			switch {
			case m.err != nil:
				c.err = readError(m.err)
			case m.typ != cws.MessageBinary:
				// [MQTT-6.0.0-1]: the recipient closes the connection.
				c.err = errTextMessage
				c.closeWith(cws.StatusUnsupportedData, "MQTT needs binary messages")
			default:
				c.rest = m.p
			}
		case <-c.readDeadline.wait():
			return 0, os.ErrDeadlineExceeded
		case <-c.done:
			return 0, net.ErrClosed
		}
	}
	n := copy(p, c.rest)
	c.rest = c.rest[n:]
	return n, nil
}

// readError translates the end of the server's stream: a close frame with
// status 1000 (normal closure) or 1001 (going away) is io.EOF.
func readError(err error) error {
	switch cws.CloseStatus(err) {
	case cws.StatusNormalClosure, cws.StatusGoingAway:
		return io.EOF
	}
	return err
}

// Write sends p as one binary message.
func (c *conn) Write(p []byte) (int, error) {
	select {
	case <-c.writeDeadline.wait():
		return 0, os.ErrDeadlineExceeded
	default:
	}
	if err := c.ws.Write(context.Background(), cws.MessageBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close ends the WebSocket with a close frame of status 1000 (normal
// closure) and waits for the browser to report it closed.
func (c *conn) Close() error {
	return c.closeWith(cws.StatusNormalClosure, "")
}

// closeTimeout bounds the wait for the browser to report a WebSocket
// closed.
const closeTimeout = 5 * time.Second

// closeWith closes the WebSocket with code and reason, and waits until the
// browser reports it closed, at most closeTimeout: a server that does not
// answer the closing handshake leaves the receiving goroutine (and the
// browser's close call) waiting until the browser gives up on it. A browser
// closes only with status 1000 or 3000–4999; other codes are sent as 1000,
// with the reason.
func (c *conn) closeWith(code cws.StatusCode, reason string) error {
	if code != cws.StatusNormalClosure && (code < 3000 || code > 4999) {
		code = cws.StatusNormalClosure
	}
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		close(c.done)
		// ws.Close waits for the closing handshake, for as long as the
		// browser gives it.
		go func() { _ = c.ws.Close(code, reason) }()
		timeout := time.NewTimer(closeTimeout)
		defer timeout.Stop()
		select {
		case <-c.received:
		case <-timeout.C:
		}
		err = nil
	})
	return err
}

// LocalAddr returns a placeholder: the browser does not tell.
func (c *conn) LocalAddr() net.Addr { return wsAddr("") }

// RemoteAddr returns the server's host and port as given in the URL.
func (c *conn) RemoteAddr() net.Addr { return c.addr }

// SetDeadline sets the read and write deadlines.
func (c *conn) SetDeadline(t time.Time) error {
	c.readDeadline.set(t)
	c.writeDeadline.set(t)
	return nil
}

// SetReadDeadline sets the read deadline.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.readDeadline.set(t)
	return nil
}

// SetWriteDeadline sets the write deadline.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.writeDeadline.set(t)
	return nil
}

// wsAddr is the address of a browser's WebSocket: the host from the URL.
type wsAddr string

func (wsAddr) Network() string  { return "websocket" }
func (a wsAddr) String() string { return string(a) }

// deadline is a channel that is closed when a deadline passes, as in
// net.Pipe.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{} // closed when the deadline passes
}

func (d *deadline) init() { d.cancel = make(chan struct{}) }

// set sets the deadline; the zero time means none.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer's function has closed it
	}
	d.timer = nil
	closed := isClosed(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		cancel := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(cancel) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

// wait returns a channel that is closed when the deadline passes.
func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
