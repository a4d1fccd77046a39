package mqtttest

import (
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// wsListener is a broker listener for MQTT over WebSocket on 127.0.0.1.
// Like tcpListener it binds its port before the broker starts and its Close
// waits for the goroutines of the connections it served.
type wsListener struct {
	id       string
	ln       net.Listener
	server   *http.Server
	upgrader websocket.Upgrader
	group    connGroup

	// establish is set by Serve before the HTTP server starts, so handlers
	// read it without a lock.
	establish listeners.EstablishFn
}

var _ listeners.Listener = (*wsListener)(nil)

// newWSListener listens on a free port of 127.0.0.1.
func newWSListener(id string) (*wsListener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &wsListener{
		id: id,
		ln: ln,
		upgrader: websocket.Upgrader{
			Subprotocols: []string{"mqtt"}, // [MQTT-6.0.0-3]
			// Test clients come from anywhere on loopback.
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
	l.server = &http.Server{
		Handler:           http.HandlerFunc(l.handle),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	return l, nil
}

// Init is called by the broker when the listener is added.
func (l *wsListener) Init(*slog.Logger) error { return nil }

// ID returns the listener's identifier.
func (l *wsListener) ID() string { return l.id }

// Address returns the host:port the listener is bound to.
func (l *wsListener) Address() string { return l.ln.Addr().String() }

// Protocol returns "ws".
func (l *wsListener) Protocol() string { return "ws" }

// Serve runs the HTTP server until the listener is closed.
func (l *wsListener) Serve(establish listeners.EstablishFn) {
	if !l.group.enter() {
		return
	}
	defer l.group.leave()
	l.establish = establish
	// Serve returns http.ErrServerClosed once Close has run.
	_ = l.server.Serve(l.ln)
}

// handle upgrades a request on any path to a WebSocket and hands the
// connection to the broker.
func (l *wsListener) handle(w http.ResponseWriter, r *http.Request) {
	if !l.group.enter() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	defer l.group.leave()
	ws, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered with an HTTP error
	}
	conn := &wsConn{ws: ws}
	if !l.group.track(conn) {
		_ = conn.Close()
		return
	}
	defer l.group.untrack(conn)
	defer conn.Close()
	_ = l.establish(l.id, conn)
}

// Close stops the HTTP server, lets the broker disconnect its clients,
// closes the remaining WebSocket connections (which the HTTP server no
// longer owns once upgraded) and waits for their handlers.
func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.group.shut()
	_ = l.server.Close()
	closeClients(l.id)
	l.group.closeAndWait()
}

// wsConn presents a WebSocket connection as the byte stream the broker
// reads MQTT packets from: each binary message is a piece of the stream,
// and each Write is sent as one binary message.
type wsConn struct {
	ws *websocket.Conn

	// cur is the message being read; only the broker's reading goroutine
	// uses it.
	cur io.Reader

	// writeMu serialises writes, which the WebSocket library requires.
	writeMu sync.Mutex
}

var errTextFrame = errors.New("mqtttest: websocket: text message, MQTT needs binary messages")

// Read reads the stream, moving on to the next message when the current
// one is exhausted.
func (c *wsConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	// Each round consumes a message; empty messages are the only reason
	// to go round again, and the peer's messages bound those.
	for {
		if c.cur == nil {
			kind, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if kind != websocket.BinaryMessage {
				return 0, errTextFrame // [MQTT-6.0.0-1]
			}
			c.cur = r
		}
		n, err := c.cur.Read(p)
		if errors.Is(err, io.EOF) {
			c.cur = nil
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// Write sends p as one binary message.
func (c *wsConn) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close closes the underlying network connection.
func (c *wsConn) Close() error { return c.ws.UnderlyingConn().Close() }

// LocalAddr returns the local network address.
func (c *wsConn) LocalAddr() net.Addr { return c.ws.LocalAddr() }

// RemoteAddr returns the remote network address.
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// SetDeadline sets the deadlines of the underlying connection. The
// WebSocket library resets the write deadline on every message it writes,
// to its own setting, which this adapter leaves unset: only read deadlines
// take effect, and the broker uses no others.
func (c *wsConn) SetDeadline(t time.Time) error { return c.ws.UnderlyingConn().SetDeadline(t) }

// SetReadDeadline sets the read deadline.
func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.UnderlyingConn().SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline of the underlying connection
// (see SetDeadline).
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	return c.ws.UnderlyingConn().SetWriteDeadline(t)
}
