package mqtt_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/packet"
)

// fakeTimeout bounds each wait of a test against the fake broker. Inside a
// synctest bubble it is fake time: a test that waits for something that never
// comes fails when the bubble's clock reaches it, instead of deadlocking.
const fakeTimeout = time.Hour

// fakeTCPTimeout bounds each wait, in real time, of a test on a TCP broker.
const fakeTCPTimeout = 10 * time.Second

// fakeVersions are the pinned protocol versions most tests run with.
var fakeVersions = []struct {
	name string
	v    mqtt.ProtocolVersion
	wire packet.Version
}{{"v311", mqtt.Version311, packet.V311}, {"v5", mqtt.Version5, packet.V5}}

// fakeBubble runs f as a parallel test inside a synctest bubble.
func fakeBubble(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	t.Parallel()
	synctest.Test(t, f)
}

// fakeEachVersion runs f inside a synctest bubble as a parallel subtest for
// MQTT 3.1.1 and 5.0.
func fakeEachVersion(t *testing.T, f func(t *testing.T, v mqtt.ProtocolVersion, wire packet.Version)) {
	t.Helper()
	t.Parallel()
	for _, ver := range fakeVersions {
		t.Run(ver.name, func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) { f(t, ver.v, ver.wire) })
		})
	}
}

type fakeConnectResult struct {
	c   *mqtt.Client
	err error
}

// fakeStartConnect runs mqtt.Connect in its own goroutine against b. A client
// that connects is closed at the end of the test.
func fakeStartConnect(t *testing.T, ctx context.Context, b *fakebroker.Broker, cfg mqtt.Config) <-chan fakeConnectResult {
	t.Helper()
	if cfg.Servers == nil {
		cfg.Servers = []string{b.URL()}
	}
	if cfg.Dialer == nil {
		cfg.Dialer = b.Dial
	}
	// These scripts end the client with the connection unless a test
	// configures reconnection itself.
	if cfg.Reconnect == (mqtt.ReconnectConfig{}) {
		cfg.Reconnect.Disable = true
	}
	ch := make(chan fakeConnectResult, 1)
	go func() {
		c, err := mqtt.Connect(ctx, cfg)
		ch <- fakeConnectResult{c, err}
	}()
	return ch
}

// fakeConnectDone waits, within timeout, for the result of fakeStartConnect, and
// registers the Close of a connected client.
func fakeConnectDone(t *testing.T, ch <-chan fakeConnectResult, timeout time.Duration) (*mqtt.Client, error) {
	t.Helper()
	select {
	case r := <-ch:
		if r.c != nil {
			t.Cleanup(func() { r.c.Close() })
		}
		return r.c, r.err
	case <-time.After(timeout):
		t.Fatalf("Connect did not return within %v", timeout)
		return nil, nil
	}
}

// fakeAccept waits, within timeout, for the client to dial b.
func fakeAccept(t *testing.T, b *fakebroker.Broker, timeout time.Duration) *fakebroker.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	bc, err := b.AcceptContext(ctx)
	if err != nil {
		t.Fatalf("fake broker: no connection from the client: %v", err)
	}
	return bc
}

// fakeClient connects a client configured by cfg to a new in-memory fake
// broker that answers the CONNECT with ack. It must run inside a bubble. It
// returns the client, the broker side of its connection (with a reader
// running, see fakeWatch) and the CONNECT the broker received.
func fakeClient(t *testing.T, cfg mqtt.Config, ack *packet.Connack) (*mqtt.Client, *fakeConn, *packet.Connect) {
	t.Helper()
	b := fakebroker.New(t)
	res := fakeStartConnect(t, context.Background(), b, cfg)
	bc := fakeAccept(t, b, fakeTimeout)
	cp := bc.ExpectConnect(t)
	bc.Send(t, ack)
	c, err := fakeConnectDone(t, res, fakeTimeout)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return c, fakeWatch(t, bc, fakeTimeout), cp
}

// fakeClientConn is fakeClient for tests that read the client's packets
// themselves, in step: no reader runs on the returned connection.
func fakeClientConn(t *testing.T, cfg mqtt.Config, ack *packet.Connack) (*mqtt.Client, *fakebroker.Conn) {
	t.Helper()
	b := fakebroker.New(t)
	res := fakeStartConnect(t, context.Background(), b, cfg)
	bc := fakeAccept(t, b, fakeTimeout)
	bc.ExpectConnect(t)
	bc.Send(t, ack)
	c, err := fakeConnectDone(t, res, fakeTimeout)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(bc.Close)
	return c, bc
}

// fakeConn is the broker side of one client connection with a goroutine that
// reads every packet the client sends, so that the client's writes never
// wait for the test. Packets are kept in order for next; the test may send at
// any time.
type fakeConn struct {
	t       *testing.T
	bc      *fakebroker.Conn
	timeout time.Duration
	pkts    chan packet.Packet
	stop    chan struct{} // closed at the end of the test: discard what is read
	done    chan struct{} // closed when the reader has stopped; err says why
	err     error
}

// fakeWatch starts reading bc. At the end of the test the broker side is closed
// and the reader waited for.
func fakeWatch(t *testing.T, bc *fakebroker.Conn, timeout time.Duration) *fakeConn {
	fc := &fakeConn{
		t:       t,
		bc:      bc,
		timeout: timeout,
		pkts:    make(chan packet.Packet, 1024),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go func() {
		defer close(fc.done)
		for {
			p, err := bc.ReadErr()
			if err != nil {
				fc.err = err
				return
			}
			select {
			case fc.pkts <- p:
			case <-fc.stop:
			}
		}
	}()
	t.Cleanup(func() {
		close(fc.stop)
		bc.Close()
		<-fc.done
	})
	return fc
}

// tryNext returns the next packet the client sent, or the error that ended
// the connection.
func (fc *fakeConn) tryNext() (packet.Packet, error) {
	fc.t.Helper()
	select {
	case p := <-fc.pkts:
		return p, nil
	case <-fc.done:
		select {
		case p := <-fc.pkts:
			return p, nil
		default:
			return nil, fc.err
		}
	case <-time.After(fc.timeout):
		fc.t.Fatalf("fake broker: nothing from the client within %v", fc.timeout)
		return nil, nil
	}
}

// next returns the next packet the client sent.
func (fc *fakeConn) next() packet.Packet {
	fc.t.Helper()
	p, err := fc.tryNext()
	if err != nil {
		fc.t.Fatalf("fake broker: want a packet, the connection ended: %v", err)
	}
	return p
}

// expect returns the next packet, which must have type typ.
func (fc *fakeConn) expect(typ packet.Type) packet.Packet {
	fc.t.Helper()
	p := fc.next()
	if p.Type() != typ {
		fc.t.Fatalf("fake broker: want %v from the client, got %s", typ, fakebroker.Describe(p))
	}
	return p
}

func (fc *fakeConn) expectPublish() *packet.Publish {
	fc.t.Helper()
	return fc.expect(packet.PUBLISH).(*packet.Publish)
}

func (fc *fakeConn) expectAck(typ packet.Type) *packet.Ack {
	fc.t.Helper()
	return fc.expect(typ).(*packet.Ack)
}

func (fc *fakeConn) expectSubscribe() *packet.Subscribe {
	fc.t.Helper()
	return fc.expect(packet.SUBSCRIBE).(*packet.Subscribe)
}

// expectNothing checks, inside a bubble, that the client has sent nothing
// more once every goroutine has settled.
func (fc *fakeConn) expectNothing() {
	fc.t.Helper()
	synctest.Wait()
	select {
	case p := <-fc.pkts:
		fc.t.Fatalf("fake broker: want nothing from the client, got %s", fakebroker.Describe(p))
	default:
	}
}

// expectClosed waits for the client to close the connection and returns the
// packets it sent before that.
func (fc *fakeConn) expectClosed() []packet.Packet {
	fc.t.Helper()
	var got []packet.Packet
	for {
		p, err := fc.tryNext()
		if err == nil {
			got = append(got, p)
			continue
		}
		if !fakeIsEOF(err) {
			fc.t.Fatalf("fake broker: want the client to close the connection: %v", err)
		}
		return got
	}
}

func fakeIsEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, net.ErrClosed)
}

// send sends p to the client, waiting (on a pipe) until the client read it.
func (fc *fakeConn) send(p packet.Packet) {
	fc.t.Helper()
	fc.bc.Send(fc.t, p)
}

// sendRaw sends b as it is.
func (fc *fakeConn) sendRaw(b []byte) {
	fc.t.Helper()
	fc.bc.SendRaw(fc.t, b)
}

// sendAsync sends p from another goroutine, for packets the client may not
// read at once; the error, if any, arrives on the returned channel.
func (fc *fakeConn) sendAsync(ps ...packet.Packet) <-chan error {
	ch := make(chan error, 1)
	go func() {
		for _, p := range ps {
			if err := fc.bc.SendErr(p); err != nil {
				ch <- err
				return
			}
		}
		ch <- nil
	}()
	return ch
}

// fakeWaitDone waits for the client to stop and returns Err.
func fakeWaitDone(t *testing.T, c *mqtt.Client, timeout time.Duration) error {
	t.Helper()
	select {
	case <-c.Done():
		return c.Err()
	case <-time.After(timeout):
		t.Fatalf("client still running after %v", timeout)
		return nil
	}
}

// fakeRecv receives one message from ch.
func fakeRecv(t *testing.T, ch <-chan mqtt.Message) mqtt.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("message channel closed")
		}
		return m
	case <-time.After(fakeTimeout):
		t.Fatalf("no message within %v", fakeTimeout)
		return mqtt.Message{}
	}
}

// fakeNoMsg checks, inside a bubble, that nothing can be received from ch once
// every goroutine has settled.
func fakeNoMsg(t *testing.T, ch <-chan mqtt.Message) {
	t.Helper()
	synctest.Wait()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("unexpected message %s %q", m.Topic, m.Payload)
		}
		t.Fatal("message channel closed")
	default:
	}
}

// fakeChanClosed reports, inside a bubble, whether ch is closed and empty.
func fakeChanClosed(ch <-chan mqtt.Message) bool {
	synctest.Wait()
	select {
	case _, ok := <-ch:
		return !ok
	default:
		return false
	}
}

// fakeSubscribe subscribes through the fake broker, which grants every filter
// the QoS asked for.
func fakeSubscribe(t *testing.T, c *mqtt.Client, fc *fakeConn, filters ...mqtt.Filter) *mqtt.Subscription {
	t.Helper()
	type result struct {
		sub *mqtt.Subscription
		err error
	}
	ch := make(chan result, 1)
	go func() {
		sub, err := c.SubscribeFilters(context.Background(), filters...)
		ch <- result{sub, err}
	}()
	sp := fc.expectSubscribe()
	codes := make([]packet.ReasonCode, len(sp.Subscriptions))
	for i, s := range sp.Subscriptions {
		codes[i] = packet.ReasonCode(s.QoS)
	}
	fc.send(&packet.Suback{PacketID: sp.PacketID, ReasonCodes: codes})
	r := <-ch
	if r.err != nil {
		t.Fatalf("Subscribe: %v", r.err)
	}
	return r.sub
}

// fakeCall is a client call running in its own goroutine.
type fakeCall struct {
	t    *testing.T
	done chan struct{}
	err  error
}

// fakeAsync runs f in a goroutine.
func fakeAsync(t *testing.T, f func() error) *fakeCall {
	c := &fakeCall{t: t, done: make(chan struct{})}
	go func() {
		c.err = f()
		close(c.done)
	}()
	return c
}

// wait waits for the call to return and returns its error.
func (c *fakeCall) wait() error {
	c.t.Helper()
	select {
	case <-c.done:
		return c.err
	case <-time.After(fakeTimeout):
		c.t.Fatalf("call did not return within %v", fakeTimeout)
		return nil
	}
}

// returned reports, inside a bubble, whether the call has returned once
// every goroutine has settled.
func (c *fakeCall) returned() bool {
	synctest.Wait()
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// fakeAdvance moves the fake clock of the calling synctest bubble forward by
// d once every goroutine in the bubble is blocked. It must be called inside
// a bubble, where it waits for no condition: it only steps time, which is how
// a test reaches a keepalive deadline without real waiting.
func fakeAdvance(d time.Duration) { <-time.After(d) }

// expectNothingButSubscribe checks, inside a bubble, that the client sends
// nothing more once every goroutine has settled, except a SUBSCRIBE, which
// it answers (granting QoS 1) and records in *saw.
func (fc *fakeConn) expectNothingButSubscribe(saw *bool) {
	fc.t.Helper()
	synctest.Wait()
	for {
		select {
		case p := <-fc.pkts:
			s, ok := p.(*packet.Subscribe)
			if !ok {
				fc.t.Fatalf("fake broker: want nothing from the client, got %s", fakebroker.Describe(p))
			}
			*saw = true
			fc.send(&packet.Suback{PacketID: s.PacketID, ReasonCodes: []packet.ReasonCode{1}})
			synctest.Wait()
		default:
			return
		}
	}
}
