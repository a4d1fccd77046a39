// Package fakebroker is a scripted fake MQTT broker for exact protocol-sequence
// and fault tests of an MQTT client.
//
// The test drives the broker side step by step: it accepts a connection,
// expects the packets the client must send, and sends the packets the broker
// would send, including malformed bytes and early hang-ups:
//
//	b := fakebroker.New(t)
//	cfg := mqtt.Config{Servers: []string{b.URL()}, Dialer: b.Dial}
//	// ... start a client with cfg; it connects from its own goroutine ...
//	c := b.Accept(t)
//	c.Accept(t, false) // CONNECT in, CONNACK out
//	pub := c.ExpectPublish(t)
//	c.Send(t, &packet.Ack{PacketType: packet.PUBACK, PacketID: pub.PacketID})
//	c.ExpectDisconnect(t)
//	c.ExpectClosed(t)
//
// A Broker made by New hands out in-memory connections (net.Pipe) through its
// Dial method. Nothing in-memory has a real-time deadline, so such a broker
// works inside a testing/synctest bubble, where a blocked test is reported as
// a deadlock and timers run on the bubble's fake clock. Create the broker
// inside the bubble and use it only there. Note that a write on a pipe blocks
// until the other end reads it: the client must be reading (it normally has a
// reader goroutine) while the test sends, and the test must be reading while
// the client writes.
//
// A Broker made by NewTCP also listens on a loopback TCP port. Reads and
// writes on TCP connections fail after ten seconds of real time so that a
// broken test fails instead of hanging. A TCP broker does not work inside a
// synctest bubble.
//
// The methods taking a testing.TB stop the test with tb.Fatalf on failure, so
// they must be called from the test's goroutine; the methods returning an
// error may be called from any goroutine. A Conn may have one reader and any
// number of writers at a time.
package fakebroker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt/packet"
)

// IOTimeout bounds, in real time, each wait on a TCP connection or listener:
// a read, a write, Broker.Accept and Conn.ExpectClosed. In-memory
// connections have no deadlines.
const IOTimeout = 10 * time.Second

// Broker accepts client connections from a TCP listener (NewTCP) or from its
// Dial method (both kinds of broker). Its methods are safe for concurrent use.
type Broker struct {
	ln   net.Listener // nil for an in-memory broker
	addr string
	loop sync.WaitGroup

	ready chan struct{} // one token: the queue may be non-empty
	done  chan struct{} // closed by Close

	mu      sync.Mutex
	closed  bool
	queue   []net.Conn // connected, not yet returned by Accept
	conns   []net.Conn // every server end, closed by Close
	dialErr error
}

// New returns an in-memory broker: clients connect with b.Dial. The broker is
// closed when the test ends.
func New(tb testing.TB) *Broker {
	tb.Helper()
	b := newBroker()
	tb.Cleanup(b.Close)
	return b
}

// NewTCP returns a broker listening on 127.0.0.1 at an ephemeral port (see
// Addr and URL); b.Dial works as well. The broker is closed when the test
// ends.
func NewTCP(tb testing.TB) *Broker {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("fakebroker: listen: %v", err)
	}
	b := newBroker()
	b.ln = ln
	b.addr = ln.Addr().String()
	b.loop.Go(b.acceptLoop)
	tb.Cleanup(b.Close)
	return b
}

func newBroker() *Broker {
	return &Broker{ready: make(chan struct{}, 1), done: make(chan struct{})}
}

func (b *Broker) acceptLoop() {
	for {
		nc, err := b.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		b.enqueue(nc)
	}
}

// enqueue makes nc available to Accept, or closes it if the broker is closed.
func (b *Broker) enqueue(nc net.Conn) bool {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		nc.Close()
		return false
	}
	b.queue = append(b.queue, nc)
	b.conns = append(b.conns, nc)
	b.mu.Unlock()
	b.signal()
	return true
}

func (b *Broker) signal() {
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

// Addr returns the TCP address the broker listens on, or "" for an in-memory
// broker.
func (b *Broker) Addr() string { return b.addr }

// URL returns "mqtt://" followed by Addr, or "mqtt://fake" for an in-memory
// broker (whose Dial ignores the address).
func (b *Broker) URL() string {
	if b.addr == "" {
		return "mqtt://fake"
	}
	return "mqtt://" + b.addr
}

// Dial connects an in-memory client: it returns the client end of a net.Pipe
// and queues the server end for Accept. The network and address are ignored,
// so Dial can be given to a client as its dial hook whatever server it is
// configured with. Dial never blocks; it fails if ctx is already done, if the
// broker is closed (with an error matching syscall.ECONNREFUSED), or with
// the error set by SetDialError.
func (b *Broker) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	b.mu.Lock()
	err := b.dialErr
	if b.closed {
		err = fmt.Errorf("fakebroker: broker is closed: %w", syscall.ECONNREFUSED)
	}
	b.mu.Unlock()
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	srv, cli := net.Pipe()
	if !b.enqueue(srv) {
		cli.Close()
		return nil, &net.OpError{Op: "dial", Net: network,
			Err: fmt.Errorf("fakebroker: broker is closed: %w", syscall.ECONNREFUSED)}
	}
	return cli, nil
}

// SetDialError makes Dial fail with err (wrapped in a *net.OpError) until it
// is called again with nil, as if the broker were unreachable. It does not
// affect TCP connections.
func (b *Broker) SetDialError(err error) {
	b.mu.Lock()
	b.dialErr = err
	b.mu.Unlock()
}

// Accept waits for the next client connection and returns its broker side.
// On a TCP broker it fails the test after IOTimeout; on an in-memory broker
// it waits for ever, which a synctest bubble reports as a deadlock (outside a
// bubble, use AcceptContext to bound the wait).
func (b *Broker) Accept(tb testing.TB) *Conn {
	tb.Helper()
	ctx := context.Background()
	if b.ln != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, IOTimeout)
		defer cancel()
	}
	c, err := b.AcceptContext(ctx)
	if err != nil {
		tb.Fatalf("fakebroker: accept: %v", err)
	}
	return c
}

// AcceptContext is like Accept but waits only until ctx is done, and returns
// an error instead of failing the test. It returns net.ErrClosed once the
// broker is closed.
func (b *Broker) AcceptContext(ctx context.Context) (*Conn, error) {
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, net.ErrClosed
		}
		if len(b.queue) > 0 {
			nc := b.queue[0]
			b.queue = b.queue[1:]
			more := len(b.queue) > 0
			b.mu.Unlock()
			if more {
				b.signal()
			}
			return newConn(nc), nil
		}
		b.mu.Unlock()
		select {
		case <-b.ready:
		case <-b.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Pending returns how many connections are waiting to be accepted.
func (b *Broker) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

// Close stops the listener, refuses further dials and closes every
// connection, accepted or not. The clients see the connections end. Close is
// idempotent and waits for the broker's goroutine to exit.
func (b *Broker) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	conns := b.conns
	b.conns, b.queue = nil, nil
	close(b.done)
	b.mu.Unlock()
	if b.ln != nil {
		b.ln.Close()
		b.loop.Wait()
	}
	for _, nc := range conns {
		nc.Close()
	}
}

// Conn is the broker side of one client connection.
type Conn struct {
	nc        net.Conn
	br        *bufio.Reader
	deadlines bool // real-time deadlines: a TCP connection
	version   atomic.Uint32
	wlock     chan struct{} // a lock that a synctest bubble sees as durably blocking
}

func newConn(nc net.Conn) *Conn {
	_, tcp := nc.(*net.TCPConn)
	c := &Conn{
		nc:        nc,
		br:        bufio.NewReader(nc),
		deadlines: tcp,
		wlock:     make(chan struct{}, 1),
	}
	c.version.Store(uint32(packet.V5))
	return c
}

// NetConn returns the underlying connection, for faults the other methods do
// not cover (a TCP half-close, for example). Reading from it directly loses
// bytes the Conn has buffered.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Version returns the protocol version used to decode and encode packets:
// packet.V5 until ExpectConnect (or Accept, or Serve) reads a CONNECT or
// SetVersion is called.
func (c *Conn) Version() packet.Version { return packet.Version(c.version.Load()) }

// SetVersion sets the protocol version used to decode and encode packets.
func (c *Conn) SetVersion(v packet.Version) { c.version.Store(uint32(v)) }

func (c *Conn) readDeadline() time.Time {
	if !c.deadlines {
		return time.Time{}
	}
	return time.Now().Add(IOTimeout)
}

// readPacket reads one packet; a zero deadline leaves the connection's
// deadline unset (in-memory) or clears it (TCP).
func (c *Conn) readPacket(deadline time.Time) (packet.Packet, error) {
	if c.deadlines {
		c.nc.SetReadDeadline(deadline)
	}
	p, err := packet.Read(c.br, c.Version(), 0)
	if err != nil {
		return nil, c.wrapErr("read", err)
	}
	if p, ok := p.(*packet.Connect); ok {
		c.SetVersion(p.Version)
	}
	return p, nil
}

func (c *Conn) wrapErr(op string, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%s timed out after %v: %w", op, IOTimeout, err)
	}
	return err
}

// ReadErr reads and decodes the next packet with the connection's version.
// It returns io.EOF when the client closed the connection between packets.
// A CONNECT sets the connection's version.
func (c *Conn) ReadErr() (packet.Packet, error) {
	return c.readPacket(c.readDeadline())
}

// Read reads and decodes the next packet, failing the test on any error,
// including the end of the connection.
func (c *Conn) Read(tb testing.TB) packet.Packet {
	tb.Helper()
	p, err := c.ReadErr()
	if err != nil {
		tb.Fatalf("fakebroker: want a packet from the client: %s", describeErr(err))
	}
	return p
}

// ReadRaw reads exactly n bytes, for checking the client's encoding byte by
// byte.
func (c *Conn) ReadRaw(tb testing.TB, n int) []byte {
	tb.Helper()
	if c.deadlines {
		c.nc.SetReadDeadline(c.readDeadline())
	}
	buf := make([]byte, n)
	if got, err := io.ReadFull(c.br, buf); err != nil {
		tb.Fatalf("fakebroker: want %d bytes from the client, got %d (% x): %s",
			n, got, buf[:got], describeErr(c.wrapErr("read", err)))
	}
	return buf
}

func describeErr(err error) string {
	switch {
	case errors.Is(err, io.EOF):
		return "the client closed the connection"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the client closed the connection in the middle of a packet"
	}
	return err.Error()
}

// Expect reads the next packet and fails the test unless it has type t.
func (c *Conn) Expect(tb testing.TB, t packet.Type) packet.Packet {
	tb.Helper()
	p, err := c.ReadErr()
	if err != nil {
		tb.Fatalf("fakebroker: want %s from the client: %s", t, describeErr(err))
	}
	if p.Type() != t {
		tb.Fatalf("fakebroker: want %s from the client, got %s", t, Describe(p))
	}
	return p
}

// ExpectConnect expects a CONNECT and sets the connection's version from it.
func (c *Conn) ExpectConnect(tb testing.TB) *packet.Connect {
	tb.Helper()
	return c.Expect(tb, packet.CONNECT).(*packet.Connect)
}

// ExpectPublish expects a PUBLISH.
func (c *Conn) ExpectPublish(tb testing.TB) *packet.Publish {
	tb.Helper()
	return c.Expect(tb, packet.PUBLISH).(*packet.Publish)
}

// ExpectAck expects an acknowledgement of type t: PUBACK, PUBREC, PUBREL or
// PUBCOMP.
func (c *Conn) ExpectAck(tb testing.TB, t packet.Type) *packet.Ack {
	tb.Helper()
	switch t {
	case packet.PUBACK, packet.PUBREC, packet.PUBREL, packet.PUBCOMP:
	default:
		tb.Fatalf("fakebroker: ExpectAck(%s): not an acknowledgement type", t)
	}
	return c.Expect(tb, t).(*packet.Ack)
}

// ExpectSubscribe expects a SUBSCRIBE.
func (c *Conn) ExpectSubscribe(tb testing.TB) *packet.Subscribe {
	tb.Helper()
	return c.Expect(tb, packet.SUBSCRIBE).(*packet.Subscribe)
}

// ExpectUnsubscribe expects an UNSUBSCRIBE.
func (c *Conn) ExpectUnsubscribe(tb testing.TB) *packet.Unsubscribe {
	tb.Helper()
	return c.Expect(tb, packet.UNSUBSCRIBE).(*packet.Unsubscribe)
}

// ExpectPingreq expects a PINGREQ.
func (c *Conn) ExpectPingreq(tb testing.TB) {
	tb.Helper()
	c.Expect(tb, packet.PINGREQ)
}

// ExpectDisconnect expects a DISCONNECT.
func (c *Conn) ExpectDisconnect(tb testing.TB) *packet.Disconnect {
	tb.Helper()
	return c.Expect(tb, packet.DISCONNECT).(*packet.Disconnect)
}

// ExpectClosed reads until the client closes the connection and returns the
// packets read before the end (a DISCONNECT, for example), so the test can
// check them. It fails the test on a decoding error, on a connection that
// ends in the middle of a packet, and, for TCP, if the connection is still
// open after IOTimeout.
func (c *Conn) ExpectClosed(tb testing.TB) []packet.Packet {
	tb.Helper()
	deadline := c.readDeadline()
	var got []packet.Packet
	for {
		p, err := c.readPacket(deadline)
		if err == nil {
			got = append(got, p)
			continue
		}
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return got
		}
		tb.Fatalf("fakebroker: want the client to close the connection (after %s): %s",
			describeAll(got), describeErr(err))
		return nil
	}
}

func describeAll(ps []packet.Packet) string {
	if len(ps) == 0 {
		return "no packets"
	}
	s := ""
	for i, p := range ps {
		if i > 0 {
			s += ", "
		}
		s += Describe(p)
	}
	return s
}

// SendErr encodes p with the connection's version and writes it.
func (c *Conn) SendErr(p packet.Packet) error {
	buf, err := p.Append(nil, c.Version())
	if err != nil {
		return fmt.Errorf("fakebroker: encode %s: %w", p.Type(), err)
	}
	return c.SendRawErr(buf)
}

// Send encodes p with the connection's version and writes it, failing the
// test on error.
func (c *Conn) Send(tb testing.TB, p packet.Packet) {
	tb.Helper()
	if err := c.SendErr(p); err != nil {
		tb.Fatalf("fakebroker: send %s: %v", Describe(p), err)
	}
}

// SendRawErr writes b as it is: garbage, a partial packet, or several
// packets at once. On a pipe it returns once the client has read all of b.
func (c *Conn) SendRawErr(b []byte) error {
	c.wlock <- struct{}{}
	defer func() { <-c.wlock }()
	if c.deadlines {
		c.nc.SetWriteDeadline(time.Now().Add(IOTimeout))
	}
	_, err := c.nc.Write(b)
	return c.wrapErr("write", err)
}

// SendRaw writes b as it is, failing the test on error.
func (c *Conn) SendRaw(tb testing.TB, b []byte) {
	tb.Helper()
	if err := c.SendRawErr(b); err != nil {
		tb.Fatalf("fakebroker: send % x: %v", b, err)
	}
}

// Accept expects a CONNECT, sets the connection's version from it, answers
// with a successful CONNACK and returns the CONNECT.
func (c *Conn) Accept(tb testing.TB, sessionPresent bool) *packet.Connect {
	tb.Helper()
	p := c.ExpectConnect(tb)
	c.Send(tb, &packet.Connack{SessionPresent: sessionPresent})
	return p
}

// Close closes the connection: the broker hangs up. It is idempotent.
func (c *Conn) Close() { c.nc.Close() }

// Serve answers the client automatically until the connection ends: it
// reads each packet and sends the packets handler returns for it, in order.
// A CONNECT sets the connection's version before handler sees it. Reads have
// no deadline, so a TCP connection may stay idle. Serve returns nil when
// either side closes the connection (call Close or Broker.Close to stop it),
// or the first read, decoding or write error. It is meant to run in its own
// goroutine, and the test must not read from c meanwhile; it may Send.
func (c *Conn) Serve(handler func(packet.Packet) []packet.Packet) error {
	for {
		p, err := c.readPacket(time.Time{})
		if err != nil {
			if isClosed(err) {
				return nil
			}
			return err
		}
		for _, r := range handler(p) {
			if err := c.SendErr(r); err != nil {
				if isClosed(err) {
					return nil
				}
				return err
			}
		}
	}
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// AutoReply is a handler for Serve that answers as a permissive broker
// would: CONNECT with a successful CONNACK, PUBLISH QoS 1 with PUBACK and
// QoS 2 with PUBREC, PUBREL with PUBCOMP, SUBSCRIBE with a SUBACK granting
// each requested QoS, UNSUBSCRIBE with a successful UNSUBACK and PINGREQ with
// PINGRESP. It answers nothing else.
func AutoReply(p packet.Packet) []packet.Packet {
	switch p := p.(type) {
	case *packet.Connect:
		return []packet.Packet{&packet.Connack{}}
	case *packet.Publish:
		switch p.QoS {
		case 1:
			return []packet.Packet{&packet.Ack{PacketType: packet.PUBACK, PacketID: p.PacketID}}
		case 2:
			return []packet.Packet{&packet.Ack{PacketType: packet.PUBREC, PacketID: p.PacketID}}
		}
	case *packet.Ack:
		if p.PacketType == packet.PUBREL {
			return []packet.Packet{&packet.Ack{PacketType: packet.PUBCOMP, PacketID: p.PacketID}}
		}
	case *packet.Subscribe:
		codes := make([]packet.ReasonCode, len(p.Subscriptions))
		for i, s := range p.Subscriptions {
			codes[i] = packet.ReasonCode(s.QoS)
		}
		return []packet.Packet{&packet.Suback{PacketID: p.PacketID, ReasonCodes: codes}}
	case *packet.Unsubscribe:
		codes := make([]packet.ReasonCode, len(p.Filters))
		return []packet.Packet{&packet.Unsuback{PacketID: p.PacketID, ReasonCodes: codes}}
	case *packet.Pingreq:
		return []packet.Packet{&packet.Pingresp{}}
	}
	return nil
}

// Describe returns a one-line summary of p for failure messages.
func Describe(p packet.Packet) string {
	if p == nil {
		return "<nil>"
	}
	var s string
	var props *packet.Properties
	switch p := p.(type) {
	case *packet.Connect:
		s = fmt.Sprintf("CONNECT{version %s, client %q, clean %v, keep alive %d", p.Version, p.ClientID,
			p.CleanStart, p.KeepAlive)
		if p.UsernameFlag {
			s += fmt.Sprintf(", user %q", p.Username)
		}
		if p.Will != nil {
			s += fmt.Sprintf(", will %q QoS %d", p.Will.Topic, p.Will.QoS)
		}
		props = &p.Props
	case *packet.Connack:
		s = fmt.Sprintf("CONNACK{session present %v, reason %s", p.SessionPresent, p.ReasonCode)
		props = &p.Props
	case *packet.Publish:
		s = fmt.Sprintf("PUBLISH{topic %q, QoS %d, id %d, dup %v, retain %v, payload %q", p.Topic, p.QoS,
			p.PacketID, p.Dup, p.Retain, truncate(p.Payload))
		props = &p.Props
	case *packet.Ack:
		s = fmt.Sprintf("%s{id %d, reason %s", p.PacketType, p.PacketID, p.ReasonCode)
		props = &p.Props
	case *packet.Subscribe:
		s = fmt.Sprintf("SUBSCRIBE{id %d, %+v", p.PacketID, p.Subscriptions)
		props = &p.Props
	case *packet.Suback:
		s = fmt.Sprintf("SUBACK{id %d, codes %v", p.PacketID, p.ReasonCodes)
		props = &p.Props
	case *packet.Unsubscribe:
		s = fmt.Sprintf("UNSUBSCRIBE{id %d, filters %q", p.PacketID, p.Filters)
		props = &p.Props
	case *packet.Unsuback:
		s = fmt.Sprintf("UNSUBACK{id %d, codes %v", p.PacketID, p.ReasonCodes)
		props = &p.Props
	case *packet.Disconnect:
		s = fmt.Sprintf("DISCONNECT{reason %s", p.ReasonCode)
		props = &p.Props
	case *packet.Auth:
		s = fmt.Sprintf("AUTH{reason %s", p.ReasonCode)
		props = &p.Props
	default:
		return p.Type().String()
	}
	if !props.IsZero() {
		s += fmt.Sprintf(", props %+v", *props)
	}
	return s + "}"
}

func truncate(b []byte) []byte {
	const max = 64
	if len(b) > max {
		return slices.Concat(b[:max:max], []byte("..."))
	}
	return b
}
