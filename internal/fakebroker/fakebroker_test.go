package fakebroker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/b4e21b16/mqtt/packet"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// transport makes a broker and connects a raw client connection to it.
type transport struct {
	name string
	new  func(testing.TB) *Broker
	dial func(testing.TB, *Broker) net.Conn
}

var transports = []transport{
	{"pipe", New, func(tb testing.TB, b *Broker) net.Conn {
		nc, err := b.Dial(context.Background(), "tcp", "fake:1883")
		if err != nil {
			tb.Fatalf("Dial: %v", err)
		}
		return nc
	}},
	{"tcp", NewTCP, func(tb testing.TB, b *Broker) net.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), IOTimeout)
		defer cancel()
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", b.Addr())
		if err != nil {
			tb.Fatalf("dial %s: %v", b.Addr(), err)
		}
		return nc
	}},
}

var versions = []packet.Version{packet.V311, packet.V5}

// forEach runs f as a parallel subtest for every transport and version.
func forEach(t *testing.T, f func(t *testing.T, tr transport, v packet.Version)) {
	t.Parallel()
	for _, tr := range transports {
		for _, v := range versions {
			t.Run(tr.name+"/"+v.String(), func(t *testing.T) {
				t.Parallel()
				f(t, tr, v)
			})
		}
	}
}

// client is a hand-rolled MQTT client end: a writer goroutine sends what the
// test queues (a pipe write blocks until the broker reads) and a reader
// goroutine decodes what the broker sends.
type client struct {
	nc   net.Conn
	out  chan writeOp
	in   chan readResult
	done chan struct{}
	wg   sync.WaitGroup
}

type writeOp struct {
	b     []byte
	close bool // close the connection after writing b
}

type readResult struct {
	p   packet.Packet
	err error
}

func newClient(tb testing.TB, nc net.Conn, v packet.Version) *client {
	c := &client{nc: nc, out: make(chan writeOp, 16), in: make(chan readResult), done: make(chan struct{})}
	c.wg.Go(func() {
		failed := false
		for op := range c.out {
			if !failed && len(op.b) > 0 {
				if _, err := nc.Write(op.b); err != nil {
					failed = true
				}
			}
			if op.close {
				nc.Close()
			}
		}
	})
	c.wg.Go(func() {
		br := bufio.NewReader(nc)
		for {
			p, err := packet.Read(br, v, 0)
			select {
			case c.in <- readResult{p, err}:
			case <-c.done:
				return
			}
			if err != nil {
				return
			}
		}
	})
	tb.Cleanup(func() {
		close(c.done)
		close(c.out)
		nc.Close()
		c.wg.Wait()
	})
	return c
}

func (c *client) send(tb testing.TB, p packet.Packet, v packet.Version) {
	tb.Helper()
	b, err := p.Append(nil, v)
	if err != nil {
		tb.Fatalf("client: encode %s: %v", p.Type(), err)
	}
	c.out <- writeOp{b: b}
}

// sendAndClose queues p (if not nil) and then the closing of the connection.
func (c *client) sendAndClose(tb testing.TB, p packet.Packet, v packet.Version) {
	tb.Helper()
	var b []byte
	if p != nil {
		var err error
		if b, err = p.Append(nil, v); err != nil {
			tb.Fatalf("client: encode %s: %v", p.Type(), err)
		}
	}
	c.out <- writeOp{b: b, close: true}
}

func (c *client) recvErr(tb testing.TB) (packet.Packet, error) {
	tb.Helper()
	select {
	case r := <-c.in:
		return r.p, r.err
	case <-time.After(IOTimeout):
		tb.Fatalf("client: nothing from the broker within %v", IOTimeout)
		return nil, nil
	}
}

func (c *client) recv(tb testing.TB) packet.Packet {
	tb.Helper()
	p, err := c.recvErr(tb)
	if err != nil {
		tb.Fatalf("client: read: %v", err)
	}
	return p
}

// connect performs the CONNECT / CONNACK exchange and checks both packets.
func connect(t testing.TB, b *Broker, c *client, v packet.Version, sessionPresent bool) *Conn {
	t.Helper()
	want := &packet.Connect{Version: v, CleanStart: true, KeepAlive: 30, ClientID: "client-1"}
	c.send(t, want, v)
	conn := b.Accept(t)
	if got := conn.Version(); got != packet.V5 {
		t.Errorf("Version before CONNECT = %v, want 5.0", got)
	}
	got := conn.Accept(t, sessionPresent)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CONNECT (-sent +received):\n%s", diff)
	}
	if conn.Version() != v {
		t.Errorf("Version after CONNECT = %v, want %v", conn.Version(), v)
	}
	ack, ok := c.recv(t).(*packet.Connack)
	if !ok || ack.SessionPresent != sessionPresent || ack.ReasonCode != packet.Success {
		t.Fatalf("client got %s, want CONNACK{session present %v, reason success}", Describe(ack), sessionPresent)
	}
	return conn
}

func TestConnect(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport, v packet.Version) {
		b := tr.new(t)
		c := newClient(t, tr.dial(t, b), v)
		connect(t, b, c, v, true)
	})
}

func TestPublishQoS1(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport, v packet.Version) {
		b := tr.new(t)
		c := newClient(t, tr.dial(t, b), v)
		conn := connect(t, b, c, v, false)

		pub := &packet.Publish{QoS: 1, Topic: "a/b", PacketID: 7, Payload: []byte("hello")}
		if v == packet.V5 {
			pub.Props.User = []packet.UserProperty{{Key: "k", Value: "v"}}
		}
		c.send(t, pub, v)
		got := conn.ExpectPublish(t)
		if diff := cmp.Diff(pub, got); diff != "" {
			t.Errorf("PUBLISH (-sent +received):\n%s", diff)
		}

		ack := &packet.Ack{PacketType: packet.PUBACK, PacketID: got.PacketID}
		if v == packet.V5 {
			ack.ReasonCode = packet.NoMatchingSubscribers
		}
		conn.Send(t, ack)
		if diff := cmp.Diff(packet.Packet(ack), c.recv(t)); diff != "" {
			t.Errorf("PUBACK (-sent +received):\n%s", diff)
		}
	})
}

func TestExpectClosed(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport, v packet.Version) {
		b := tr.new(t)
		c := newClient(t, tr.dial(t, b), v)
		conn := connect(t, b, c, v, false)

		c.send(t, &packet.Pingreq{}, v)
		c.sendAndClose(t, &packet.Disconnect{}, v)
		got := conn.ExpectClosed(t)
		want := []packet.Packet{&packet.Pingreq{}, &packet.Disconnect{}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("packets before the end (-want +got):\n%s", diff)
		}
		if _, err := conn.ReadErr(); !errors.Is(err, io.EOF) {
			t.Errorf("ReadErr after the end: %v, want EOF", err)
		}
	})
}

func TestExpectClosedNothing(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport, v packet.Version) {
		b := tr.new(t)
		c := newClient(t, tr.dial(t, b), v)
		conn := b.Accept(t)
		c.sendAndClose(t, nil, v)
		if got := conn.ExpectClosed(t); len(got) != 0 {
			t.Errorf("ExpectClosed = %s, want no packets", describeAll(got))
		}
	})
}

func TestBrokerHangsUp(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport, v packet.Version) {
		b := tr.new(t)
		c := newClient(t, tr.dial(t, b), v)
		conn := connect(t, b, c, v, false)
		conn.Close()
		if p, err := c.recvErr(t); !errors.Is(err, io.EOF) {
			t.Errorf("client read after the broker closed: %v, %v; want EOF", Describe(p), err)
		}
		conn.Close()
	})
}

func TestSendRaw(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport, v packet.Version) {
		b := tr.new(t)
		nc := tr.dial(t, b)
		t.Cleanup(func() { nc.Close() })
		conn := b.Accept(t)

		// Garbage, then a PUBLISH whose Remaining Length promises more than
		// is sent.
		garbage := []byte{0x00, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x20, 0x02, 0x00, 0x30, 0x10, 0x00, 0x03, 'a'}
		got := make(chan []byte)
		go func() {
			buf := make([]byte, len(garbage))
			n, _ := io.ReadFull(nc, buf)
			got <- buf[:n]
		}()
		conn.SendRaw(t, garbage)
		if diff := cmp.Diff(garbage, <-got); diff != "" {
			t.Errorf("bytes at the client (-sent +received):\n%s", diff)
		}

		// And the other way.
		fromClient := []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00}
		go func() { nc.Write(fromClient) }()
		if diff := cmp.Diff(fromClient, conn.ReadRaw(t, len(fromClient))); diff != "" {
			t.Errorf("bytes at the broker (-sent +received):\n%s", diff)
		}
	})
}

func TestServe(t *testing.T) {
	forEach(t, func(t *testing.T, tr transport, v packet.Version) {
		b := tr.new(t)
		c := newClient(t, tr.dial(t, b), v)
		conn := b.Accept(t)
		served := make(chan error, 1)
		go func() { served <- conn.Serve(AutoReply) }()

		exchange := []struct{ send, want packet.Packet }{
			{&packet.Connect{Version: v, ClientID: "c"}, &packet.Connack{}},
			{&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a/#", QoS: 1}, {Filter: "b", QoS: 2}}},
				&packet.Suback{PacketID: 1, ReasonCodes: []packet.ReasonCode{1, 2}}},
			{&packet.Publish{Topic: "a/b", QoS: 1, PacketID: 2}, &packet.Ack{PacketType: packet.PUBACK, PacketID: 2}},
			{&packet.Publish{Topic: "a/b", QoS: 2, PacketID: 3}, &packet.Ack{PacketType: packet.PUBREC, PacketID: 3}},
			{&packet.Ack{PacketType: packet.PUBREL, PacketID: 3}, &packet.Ack{PacketType: packet.PUBCOMP, PacketID: 3}},
			{&packet.Pingreq{}, &packet.Pingresp{}},
			{&packet.Unsubscribe{PacketID: 4, Filters: []string{"a/#"}}, &packet.Unsuback{PacketID: 4}},
		}
		if v == packet.V5 {
			exchange[len(exchange)-1].want = &packet.Unsuback{PacketID: 4, ReasonCodes: []packet.ReasonCode{0}}
		}
		for _, e := range exchange {
			c.send(t, e.send, v)
			if diff := cmp.Diff(e.want, c.recv(t)); diff != "" {
				t.Errorf("answer to %s (-want +got):\n%s", Describe(e.send), diff)
			}
		}
		if conn.Version() != v {
			t.Errorf("Version after Serve saw CONNECT = %v, want %v", conn.Version(), v)
		}
		// The test may send while Serve runs.
		conn.Send(t, &packet.Disconnect{})
		if diff := cmp.Diff(packet.Packet(&packet.Disconnect{}), c.recv(t)); diff != "" {
			t.Errorf("DISCONNECT (-want +got):\n%s", diff)
		}
		c.sendAndClose(t, nil, v)
		if err := <-served; err != nil {
			t.Errorf("Serve = %v, want nil after the client closed", err)
		}
	})
}

func TestServeStoppedByClose(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			b := tr.new(t)
			newClient(t, tr.dial(t, b), packet.V5)
			conn := b.Accept(t)
			served := make(chan error, 1)
			go func() { served <- conn.Serve(AutoReply) }()
			b.Close()
			if err := <-served; err != nil {
				t.Errorf("Serve = %v, want nil after Broker.Close", err)
			}
		})
	}
}

func TestServeDecodeError(t *testing.T) {
	t.Parallel()
	b := New(t)
	c := newClient(t, tr0dial(t, b), packet.V5)
	conn := b.Accept(t)
	served := make(chan error, 1)
	go func() { served <- conn.Serve(AutoReply) }()
	c.out <- writeOp{b: []byte{0xc1, 0x00}} // PINGREQ with reserved flags
	if err := <-served; !errors.Is(err, packet.ErrMalformed) {
		t.Errorf("Serve = %v, want a malformed-packet error", err)
	}
}

func tr0dial(tb testing.TB, b *Broker) net.Conn { return transports[0].dial(tb, b) }

func TestAddrURL(t *testing.T) {
	t.Parallel()
	b := New(t)
	if b.Addr() != "" || b.URL() != "mqtt://fake" {
		t.Errorf("in-memory Addr, URL = %q, %q; want \"\", \"mqtt://fake\"", b.Addr(), b.URL())
	}
	tb := NewTCP(t)
	if !strings.HasPrefix(tb.Addr(), "127.0.0.1:") || tb.URL() != "mqtt://"+tb.Addr() {
		t.Errorf("TCP Addr, URL = %q, %q", tb.Addr(), tb.URL())
	}
}

func TestDial(t *testing.T) {
	t.Parallel()
	b := New(t)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if nc, err := b.Dial(ctx, "tcp", "x:1"); !errors.Is(err, context.Canceled) {
		t.Errorf("Dial with a cancelled context = %v, %v; want context.Canceled", nc, err)
	}

	errDown := errors.New("down")
	b.SetDialError(errDown)
	if nc, err := b.Dial(context.Background(), "tcp", "x:1"); !errors.Is(err, errDown) {
		t.Errorf("Dial after SetDialError = %v, %v; want errDown", nc, err)
	}
	b.SetDialError(nil)
	if b.Pending() != 0 {
		t.Errorf("Pending = %d after failed dials, want 0", b.Pending())
	}

	// A connection not yet accepted is closed with the broker.
	nc, err := b.Dial(context.Background(), "tcp", "x:1")
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer nc.Close()
	if b.Pending() != 1 {
		t.Errorf("Pending = %d after a dial, want 1", b.Pending())
	}
	b.Close()
	if n, err := nc.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("client read after Broker.Close = %d, %v; want EOF", n, err)
	}
	if nc, err := b.Dial(context.Background(), "tcp", "x:1"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Dial after Close = %v, %v; want ECONNREFUSED", nc, err)
	}
	if c, err := b.AcceptContext(context.Background()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("AcceptContext after Close = %v, %v; want net.ErrClosed", c, err)
	}
	b.Close()
}

func TestAcceptOrder(t *testing.T) {
	t.Parallel()
	b := New(t)
	var clients []net.Conn
	for range 3 {
		nc, err := b.Dial(context.Background(), "tcp", "x:1")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		clients = append(clients, nc)
	}
	for i, want := range clients {
		conn := b.Accept(t)
		go func() { want.Write([]byte{byte(i)}) }()
		if got := conn.ReadRaw(t, 1); got[0] != byte(i) {
			t.Errorf("connection %d carries byte %d", i, got[0])
		}
	}
}

// fakeTB records the failure of a test helper instead of failing the test.
type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// failure runs f in its own goroutine and returns its Fatalf message.
func failure(t *testing.T, f func(tb testing.TB)) string {
	t.Helper()
	ftb := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ftb)
	}()
	<-done
	if ftb.msg == "" {
		t.Errorf("the helper did not fail")
	}
	return ftb.msg
}

func TestExpectFailures(t *testing.T) {
	t.Parallel()
	b := New(t)
	c := newClient(t, tr0dial(t, b), packet.V5)
	conn := connect(t, b, c, packet.V5, false)

	c.send(t, &packet.Publish{Topic: "x", QoS: 1, PacketID: 9, Payload: []byte("p")}, packet.V5)
	msg := failure(t, func(tb testing.TB) { conn.ExpectSubscribe(tb) })
	if !strings.Contains(msg, "want SUBSCRIBE") || !strings.Contains(msg, `PUBLISH{topic "x", QoS 1, id 9`) {
		t.Errorf("mismatch message %q does not show what was wanted and what arrived", msg)
	}

	msg = failure(t, func(tb testing.TB) { conn.ExpectAck(tb, packet.SUBACK) })
	if !strings.Contains(msg, "not an acknowledgement") {
		t.Errorf("ExpectAck(SUBACK) message %q", msg)
	}

	c.send(t, &packet.Pingreq{}, packet.V5)
	c.out <- writeOp{b: []byte{0xc1, 0x00}} // PINGREQ with reserved flags
	msg = failure(t, func(tb testing.TB) { conn.ExpectClosed(tb) })
	if !strings.Contains(msg, "want the client to close") || !strings.Contains(msg, "after PINGREQ") ||
		!strings.Contains(msg, "malformed") {
		t.Errorf("ExpectClosed message %q", msg)
	}
}

func TestExpectAfterClose(t *testing.T) {
	t.Parallel()
	b := New(t)
	c := newClient(t, tr0dial(t, b), packet.V5)
	conn := b.Accept(t)
	c.sendAndClose(t, nil, packet.V5)
	msg := failure(t, func(tb testing.TB) { conn.ExpectConnect(tb) })
	if !strings.Contains(msg, "want CONNECT") || !strings.Contains(msg, "client closed the connection") {
		t.Errorf("message %q does not say that the client closed the connection", msg)
	}
}

func TestExpectClosedPartialPacket(t *testing.T) {
	t.Parallel()
	b := New(t)
	c := newClient(t, tr0dial(t, b), packet.V5)
	conn := b.Accept(t)
	c.out <- writeOp{b: []byte{0xc0, 0x00, 0x30, 0x05, 0x00}, close: true}
	msg := failure(t, func(tb testing.TB) { conn.ExpectClosed(tb) })
	if !strings.Contains(msg, "after PINGREQ") || !strings.Contains(msg, "middle of a packet") {
		t.Errorf("message %q", msg)
	}
}

// TestSynctest runs a scripted exchange in a synctest bubble, where waiting
// costs no real time: the client's keep-alive timer fires on the fake clock
// while the broker blocks in Expect.
func TestSynctest(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := New(t)
		c := newClient(t, tr0dial(t, b), packet.V311)
		conn := connect(t, b, c, packet.V311, false)

		const keepAlive = 45 * time.Second
		start := time.Now()
		go func() {
			<-time.After(keepAlive)
			c.send(t, &packet.Pingreq{}, packet.V311)
		}()
		conn.ExpectPingreq(t)
		if d := time.Since(start); d != keepAlive {
			t.Errorf("PINGREQ after %v, want %v", d, keepAlive)
		}
		conn.Send(t, &packet.Pingresp{})
		if p := c.recv(t); p.Type() != packet.PINGRESP {
			t.Errorf("client got %s, want PINGRESP", Describe(p))
		}

		c.send(t, &packet.Publish{Topic: "t", QoS: 2, PacketID: 1}, packet.V311)
		conn.ExpectPublish(t)
		conn.Send(t, &packet.Ack{PacketType: packet.PUBREC, PacketID: 1})
		if p, ok := c.recv(t).(*packet.Ack); !ok || p.PacketType != packet.PUBREC {
			t.Fatalf("client got %s, want PUBREC", Describe(p))
		}
		c.send(t, &packet.Ack{PacketType: packet.PUBREL, PacketID: 1}, packet.V311)
		conn.ExpectAck(t, packet.PUBREL)

		c.sendAndClose(t, &packet.Disconnect{}, packet.V311)
		if got := conn.ExpectClosed(t); len(got) != 1 || got[0].Type() != packet.DISCONNECT {
			t.Errorf("ExpectClosed = %s, want DISCONNECT", describeAll(got))
		}
	})
}

func TestSynctestAcceptContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := New(t)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		start := time.Now()
		if c, err := b.AcceptContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("AcceptContext = %v, %v; want DeadlineExceeded", c, err)
		}
		if d := time.Since(start); d != time.Minute {
			t.Errorf("AcceptContext waited %v, want 1m", d)
		}

		// A client dialling later, on the fake clock, is accepted.
		go func() {
			<-time.After(time.Hour)
			nc, err := b.Dial(t.Context(), "tcp", "fake:1883")
			if err != nil {
				t.Errorf("Dial: %v", err)
				return
			}
			nc.Close()
		}()
		conn := b.Accept(t)
		if d := time.Since(start); d != time.Minute+time.Hour {
			t.Errorf("Accept returned at %v, want 1h1m", d)
		}
		conn.ExpectClosed(t)
	})
}
