// Package faultproxy provides a fault-injecting TCP proxy for tests that run
// a client against a real broker on the loopback interface.
//
// A Proxy listens on 127.0.0.1 and forwards every accepted connection to a
// fixed upstream address. While traffic flows, a test can cut connections
// (now, or after a number of bytes), black-hole one or both directions while
// keeping the TCP connections open, add latency to every forwarded chunk, and
// refuse new connections as if the broker were down.
//
// All methods are safe for concurrent use. Close stops every goroutine the
// proxy started before it returns.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// bufSize is the size of the forwarding buffer of each direction.
const bufSize = 32 << 10

// dialTimeout bounds the upstream dial of a single proxied connection.
const dialTimeout = 5 * time.Second

// Direction selects one or both directions of a proxied connection.
type Direction uint8

const (
	// ClientToServer is the direction from the accepted client to the upstream.
	ClientToServer Direction = 1 << iota
	// ServerToClient is the direction from the upstream to the client.
	ServerToClient
	// Both selects ClientToServer and ServerToClient.
	Both = ClientToServer | ServerToClient
)

// String returns a short name for d.
func (d Direction) String() string {
	switch d {
	case ClientToServer:
		return "client->server"
	case ServerToClient:
		return "server->client"
	case Both:
		return "both"
	default:
		return fmt.Sprintf("Direction(%d)", uint8(d))
	}
}

// cutRule is an armed CutAfter. It fires once, on the first connection that
// forwards limit bytes in dir after the rule was armed or the connection was
// accepted, whichever is later.
type cutRule struct {
	armed bool
	gen   uint64
	limit int64
	dir   Direction
}

// Proxy is a fault-injecting TCP proxy. Create one with New.
type Proxy struct {
	upstream string
	ln       net.Listener
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	refuse    atomic.Bool
	delay     atomic.Int64 // time.Duration
	blackhole [2]atomic.Bool
	accepted  atomic.Int64
	dropped   atomic.Int64

	mu     sync.Mutex
	closed bool
	conns  map[*conn]struct{}
	rule   cutRule

	closeOnce sync.Once
	closeErr  error
}

// conn is one proxied connection: the accepted client side and the dialed
// upstream side.
type conn struct {
	p      *Proxy
	client net.Conn
	server net.Conn
	done   chan struct{}
	once   sync.Once

	// Guarded by p.mu.
	ruleGen uint64
	counted int64
}

// New starts a proxy that listens on 127.0.0.1 on an ephemeral port and
// forwards every accepted connection to upstream, which must be a host:port
// address on the loopback interface ("localhost" or a loopback IP).
func New(upstream string) (*Proxy, error) {
	if err := checkLoopback(upstream); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		upstream: upstream,
		ln:       ln,
		ctx:      ctx,
		cancel:   cancel,
		conns:    make(map[*conn]struct{}),
	}
	p.wg.Go(p.acceptLoop)
	return p, nil
}

func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("faultproxy: upstream %q: %w", addr, err)
	}
	if port == "" {
		return fmt.Errorf("faultproxy: upstream %q: missing port", addr)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("faultproxy: upstream %q is not a loopback address", addr)
}

// Addr returns the listening address in the form "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL returns "mqtt://" followed by Addr.
func (p *Proxy) URL() string { return "mqtt://" + p.Addr() }

// Upstream returns the address the proxy forwards to.
func (p *Proxy) Upstream() string { return p.upstream }

// Conns returns the number of live proxied connections, that is connections
// whose upstream dial succeeded and which have not been closed yet. A
// connection stops being counted before either of its peers can observe
// that it was closed.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Accepted returns the total number of connections accepted by the listener,
// including those closed at once because of Refuse or a failed upstream dial.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Dropped returns the total number of bytes discarded because their
// direction was black-holed.
func (p *Proxy) Dropped() int64 { return p.dropped.Load() }

// CutAll closes every current proxied connection, both sides, now.
func (p *Proxy) CutAll() {
	for _, c := range p.snapshot() {
		c.close()
	}
}

// CutAfter arms a one-shot cut: the first connection that forwards n more
// bytes in dir is closed, both sides, right after exactly those n bytes have
// been written. With Both, bytes in either direction count towards n.
// Connections that are live now count from this call, later ones from their
// accept. Once the cut fires the rule is disarmed; a new call replaces any
// rule still armed. With n <= 0 the next chunk in dir cuts the connection
// without being forwarded.
func (p *Proxy) CutAfter(n int64, dir Direction) {
	if n < 0 {
		n = 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rule = cutRule{armed: true, gen: p.rule.gen + 1, limit: n, dir: dir & Both}
}

// CutAfterRandom arms CutAfter with n drawn uniformly from [0, limit] using
// rng and returns n.
func (p *Proxy) CutAfterRandom(rng *rand.Rand, limit int64, dir Direction) int64 {
	var n int64
	if limit > 0 {
		n = rng.Int64N(limit + 1)
	}
	p.CutAfter(n, dir)
	return n
}

// ClearCut disarms a pending CutAfter, if any.
func (p *Proxy) ClearCut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rule.armed = false
}

// Armed reports whether a CutAfter is still waiting to fire.
func (p *Proxy) Armed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rule.armed
}

// SetBlackhole switches black-holing of dir on or off. While a direction is
// black-holed, bytes read in it are discarded and never forwarded, but the
// connections stay open. Turning it off resumes forwarding of data read from
// then on; discarded data is lost.
func (p *Proxy) SetBlackhole(on bool, dir Direction) {
	if dir&ClientToServer != 0 {
		p.blackhole[0].Store(on)
	}
	if dir&ServerToClient != 0 {
		p.blackhole[1].Store(on)
	}
}

// SetDelay makes every forwarded chunk, in both directions, wait d before it
// is written. Zero or negative d disables the delay.
func (p *Proxy) SetDelay(d time.Duration) {
	if d < 0 {
		d = 0
	}
	p.delay.Store(int64(d))
}

// Refuse switches refusal of new connections on or off. While on, new
// connections are accepted and closed at once without dialing the upstream,
// as if the broker were down. Existing connections are not affected.
func (p *Proxy) Refuse(on bool) { p.refuse.Store(on) }

// Reset clears every fault: it disarms CutAfter, turns black-holing off in
// both directions, removes the delay and stops refusing connections.
func (p *Proxy) Reset() {
	p.ClearCut()
	p.SetBlackhole(false, Both)
	p.SetDelay(0)
	p.Refuse(false)
}

// Close stops listening, closes every proxied connection and waits until
// every goroutine started by the proxy has exited. Calls after the first
// return the result of the first.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.cancel()
		if err := p.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			p.closeErr = err
		}
		p.CutAll()
		p.wg.Wait()
	})
	return p.closeErr
}

func (p *Proxy) snapshot() []*conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	cs := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		cs = append(cs, c)
	}
	return cs
}

func (p *Proxy) acceptLoop() {
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			if p.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient failure such as running out of descriptors.
			if !p.wait(5*time.Millisecond, p.ctx.Done()) {
				return
			}
			continue
		}
		p.accepted.Add(1)
		if p.refuse.Load() {
			nc.Close()
			continue
		}
		p.wg.Go(func() { p.handle(nc) })
	}
}

// wait blocks for d or until done is closed; it reports whether d elapsed.
func (p *Proxy) wait(d time.Duration, done <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

func (p *Proxy) handle(client net.Conn) {
	d := net.Dialer{Timeout: dialTimeout}
	server, err := d.DialContext(p.ctx, "tcp", p.upstream)
	if err != nil {
		client.Close()
		return
	}
	c := &conn{p: p, client: client, server: server, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	p.wg.Go(func() { c.pipe(ClientToServer, client, server) })
	c.pipe(ServerToClient, server, client)
}

// close closes both sides of c and forgets it. It is idempotent.
func (c *conn) close() {
	c.once.Do(func() {
		// Forget c first so that Conns no longer counts it by the time
		// either peer can observe the close.
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
		close(c.done)
		c.client.Close()
		c.server.Close()
	})
}

// pipe forwards dir from src to dst until either side fails or c is closed,
// then closes c.
func (c *conn) pipe(dir Direction, src, dst net.Conn) {
	defer c.close()
	buf := make([]byte, bufSize)
	for {
		n, err := src.Read(buf)
		if n > 0 && !c.forward(dir, dst, buf[:n]) {
			return
		}
		if err != nil {
			return
		}
	}
}

// forward applies the configured faults to chunk b and writes what is left
// of it to dst. It reports whether the connection should stay open.
func (c *conn) forward(dir Direction, dst net.Conn, b []byte) bool {
	p := c.p
	if p.blackholed(dir) {
		p.dropped.Add(int64(len(b)))
		return true
	}
	if d := time.Duration(p.delay.Load()); d > 0 {
		if !p.wait(d, c.done) {
			return false
		}
		// The path may have been black-holed while the chunk was delayed.
		if p.blackholed(dir) {
			p.dropped.Add(int64(len(b)))
			return true
		}
	}
	n, cut := p.budget(c, dir, len(b))
	if n > 0 {
		if _, err := dst.Write(b[:n]); err != nil {
			return false
		}
	}
	return !cut
}

func (p *Proxy) blackholed(dir Direction) bool {
	if dir == ClientToServer {
		return p.blackhole[0].Load()
	}
	return p.blackhole[1].Load()
}

// budget returns how many of the next n bytes c may forward in dir, and
// whether c must be cut after writing them. Reaching the limit disarms the
// rule, so only one connection is cut per CutAfter.
func (p *Proxy) budget(c *conn, dir Direction, n int) (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := &p.rule
	if !r.armed || r.dir&dir == 0 {
		return n, false
	}
	if c.ruleGen != r.gen {
		c.ruleGen = r.gen
		c.counted = 0
	}
	left := r.limit - c.counted
	if int64(n) < left {
		c.counted += int64(n)
		return n, false
	}
	r.armed = false
	return int(left), true
}
