package mqtttest

import (
	"log/slog"
	"net"
	"sync"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// connGroup tracks the goroutines a listener starts and the connections it
// handed to the broker, so that closing the listener can end all of them
// and wait until they are gone.
type connGroup struct {
	wg sync.WaitGroup

	mu     sync.Mutex
	closed bool                  // no goroutine may start any more
	conns  map[net.Conn]struct{} // open connections
}

// enter registers a goroutine that is about to run; it returns false once
// the group is closed, and the goroutine must then not run.
func (g *connGroup) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	return true
}

// leave marks the end of a goroutine registered with enter.
func (g *connGroup) leave() { g.wg.Done() }

// track records an open connection; it returns false (and the caller must
// close conn) once the group is closed.
func (g *connGroup) track(conn net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	if g.conns == nil {
		g.conns = make(map[net.Conn]struct{})
	}
	g.conns[conn] = struct{}{}
	return true
}

// untrack forgets a connection that was closed.
func (g *connGroup) untrack(conn net.Conn) {
	g.mu.Lock()
	delete(g.conns, conn)
	g.mu.Unlock()
}

// shut stops new goroutines and connections from being added.
func (g *connGroup) shut() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// closeAndWait closes every tracked connection, which ends the goroutines
// serving them, and waits for all goroutines of the group.
func (g *connGroup) closeAndWait() {
	g.shut()
	g.mu.Lock()
	conns := make([]net.Conn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	g.wg.Wait()
}

// tcpListener is a broker listener for MQTT over TCP on 127.0.0.1. Unlike
// the listeners that come with the broker, it binds its port before the
// broker starts (so the address is known), and its Close waits until the
// goroutine of every connection it accepted has returned.
type tcpListener struct {
	id    string
	ln    net.Listener
	group connGroup
}

var _ listeners.Listener = (*tcpListener)(nil)

// newTCPListener listens on a free port of 127.0.0.1.
func newTCPListener(id string) (*tcpListener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &tcpListener{id: id, ln: ln}, nil
}

// Init is called by the broker when the listener is added.
func (l *tcpListener) Init(*slog.Logger) error { return nil }

// ID returns the listener's identifier.
func (l *tcpListener) ID() string { return l.id }

// Address returns the host:port the listener is bound to.
func (l *tcpListener) Address() string { return l.ln.Addr().String() }

// Protocol returns "tcp".
func (l *tcpListener) Protocol() string { return "tcp" }

// Serve accepts connections until the listener is closed and hands each to
// establish in a goroutine of its own.
func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	if !l.group.enter() {
		return
	}
	defer l.group.leave()
	// The loop ends when Close closes ln: Accept then fails.
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return
		}
		if !l.group.enter() {
			_ = conn.Close()
			return
		}
		if !l.group.track(conn) {
			_ = conn.Close()
			l.group.leave()
			return
		}
		go func() {
			defer l.group.leave()
			defer l.group.untrack(conn)
			// The error says why the client went away; the broker has
			// already handled it.
			_ = establish(l.id, conn)
		}()
	}
}

// Close stops accepting, lets the broker disconnect its clients, closes
// connections that never completed CONNECT, and waits for every goroutine
// the listener started.
func (l *tcpListener) Close(closeClients listeners.CloseFn) {
	l.group.shut()
	_ = l.ln.Close()
	closeClients(l.id)
	l.group.closeAndWait()
}
