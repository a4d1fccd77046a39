// The test harness of the package's tests, in one place:
//
//   - the scripted broker (internal/fakebroker) driven step by step: fakeClient
//     and fakeClientConn connect a client to it, fakeConn reads what the
//     client sends, the fakeRc helpers accept reconnections and check
//     events, fakeBubble runs a test in a testing/synctest bubble;
//   - real brokers (internal/brokertest starts mosquitto): connect, receive,
//     and floodFrom, a publisher in a child process;
//   - shared values: versions, testContext, uniqueID.
//
// Test files are named after the feature they cover (connect, publish,
// receive, subscribe, keepalive, reconnect, store, v5, flowcontrol, auth,
// disconnect, protocol_errors, validation, transport, secrets); each holds
// the scripted-broker and the real-broker tests of its feature.
package mqtt_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// fakeExpectViolationClose checks how the client ends a connection after the
// broker broke the protocol: over MQTT 5.0 it first sends DISCONNECT with
// reason code want (MQTT 5.0 section 4.13); over 3.1.1 it just closes. The client
// then stops with an error wrapping ErrConnectionLost and
// ErrProtocolViolation, which fakeExpectViolationClose returns.
func fakeExpectViolationClose(t *testing.T, c *mqtt.Client, fc *fakeConn, wire packet.Version, want packet.ReasonCode) error {
	t.Helper()
	got := fc.expectClosed()
	var wantPkts []packet.Packet
	if wire == packet.V5 {
		wantPkts = []packet.Packet{&packet.Disconnect{ReasonCode: want}}
	}
	if diff := cmp.Diff(wantPkts, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("packets before the client closed (-want +got):\n%s", diff)
	}
	err := fakeWaitDone(t, c, fakeTimeout)
	if !errors.Is(err, mqtt.ErrProtocolViolation) || !errors.Is(err, mqtt.ErrConnectionLost) {
		t.Errorf("Err = %v, want ErrProtocolViolation and ErrConnectionLost", err)
	}
	return err
}

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

// Environment of a flood publisher process started by floodFrom.
const (
	floodEnv = "MQTT_TEST_FLOOD" // "url topic version qos size count"
)

// floodFrom starts a process that publishes n messages of size bytes on
// topic (each payload starts with its sequence number, big-endian, and is
// zero after it) and returns a channel that receives its outcome.
func floodFrom(ctx context.Context, t *testing.T, url, topic string, v mqtt.ProtocolVersion, qos mqtt.QoS, size, n int) <-chan error {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d %d %d %d", floodEnv, url, topic, v, qos, size, n))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		if err := cmd.Wait(); err != nil {
			done <- fmt.Errorf("publisher process: %w: %s", err, out.Bytes())
			return
		}
		done <- nil
	}()
	return done
}

// floodChild runs the flood publisher when the test binary was started by
// floodFrom, reporting whether it was.
func floodChild() bool {
	spec := os.Getenv(floodEnv)
	if spec == "" {
		return false
	}
	var url, topic string
	var v, qos, size, n int
	if _, err := fmt.Sscan(spec, &url, &topic, &v, &qos, &size, &n); err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{url}, Version: mqtt.ProtocolVersion(v),
		ClientID: fmt.Sprint("flood-", os.Getpid())})
	if err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		os.Exit(1)
	}
	payload := make([]byte, size)
	for i := range n {
		binary.BigEndian.PutUint32(payload, uint32(i))
		if err := c.Publish(ctx, mqtt.Message{Topic: topic, Payload: payload, QoS: mqtt.QoS(qos)}); err != nil {
			fmt.Fprintln(os.Stderr, "flood:", err)
			os.Exit(1)
		}
	}
	if err := c.Disconnect(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		os.Exit(1)
	}
	return true
}

// drainEvents returns the client's buffered events, for a failure message.
func drainEvents(c *mqtt.Client) string {
	var out []string
	for len(c.Events()) > 0 {
		e := <-c.Events()
		out = append(out, fmt.Sprintf("%v %v", e.Kind, e.Err))
	}
	return fmt.Sprintf("%q", out)
}

// fakeRcRetry is the reconnection the tests of this file configure: the first
// attempt after 1 s, doubling up to 4 s, each wait randomised by ±25 %.
var fakeRcRetry = mqtt.ReconnectConfig{MinDelay: time.Second, MaxDelay: 4 * time.Second}

// fakeRcClient connects a client configured by cfg (with fakeRcRetry
// unless cfg.Reconnect is set) to a new in-memory fake broker that answers
// the CONNECT with ack. It checks the first EventConnected and returns the
// client, the broker (from which the client's later connections are
// accepted) and the broker side of the connection, with a reader running.
func fakeRcClient(t *testing.T, cfg mqtt.Config, ack *packet.Connack) (*mqtt.Client, *fakebroker.Broker, *fakeConn) {
	t.Helper()
	if cfg.Reconnect == (mqtt.ReconnectConfig{}) {
		cfg.Reconnect = fakeRcRetry
	}
	b := fakebroker.New(t)
	res := fakeStartConnect(t, context.Background(), b, cfg)
	bc := fakeAccept(t, b, fakeTimeout)
	bc.ExpectConnect(t)
	bc.Send(t, ack)
	c, err := fakeConnectDone(t, res, fakeTimeout)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if e := fakeRcExpectEvent(t, c, mqtt.EventConnected); e.SessionPresent != ack.SessionPresent {
		t.Fatalf("first EventConnected has SessionPresent %v, want %v", e.SessionPresent, ack.SessionPresent)
	}
	return c, b, fakeWatch(t, bc, fakeTimeout)
}

// fakeRcAccept accepts the client's next connection to b, answers its
// CONNECT with ack and returns the broker side, with a reader running, and
// the CONNECT.
func fakeRcAccept(t *testing.T, b *fakebroker.Broker, ack *packet.Connack) (*fakeConn, *packet.Connect) {
	t.Helper()
	bc := fakeAccept(t, b, fakeTimeout)
	cp := bc.ExpectConnect(t)
	bc.Send(t, ack)
	return fakeWatch(t, bc, fakeTimeout), cp
}

// fakeRcHealthy is how long a connection must last for its loss to start
// the backoff afresh (ReconnectConfig.HealthyAfter's default).
const fakeRcHealthy = 10 * time.Second

// fakeRcDrop makes the broker hang up on fc, after fakeRcHealthy of fake time
// so that the connection counts as healthy, and waits for the client to
// report the lost connection and its first reconnection attempt, which it
// returns.
func fakeRcDrop(t *testing.T, c *mqtt.Client, fc *fakeConn) mqtt.Event {
	t.Helper()
	fakeAdvance(fakeRcHealthy)
	fc.bc.Close()
	if e := fakeRcExpectEvent(t, c, mqtt.EventConnectionLost); e.Err == nil {
		t.Errorf("EventConnectionLost without Err")
	}
	return fakeRcExpectEvent(t, c, mqtt.EventReconnecting)
}

// fakeRcEvent returns the client's next event.
func fakeRcEvent(t *testing.T, c *mqtt.Client) mqtt.Event {
	t.Helper()
	select {
	case e := <-c.Events():
		return e
	case <-time.After(fakeTimeout):
		t.Fatalf("no event within %v", fakeTimeout)
		return mqtt.Event{}
	}
}

// fakeRcExpectEvent returns the client's next event, which must be of kind k.
func fakeRcExpectEvent(t *testing.T, c *mqtt.Client, k mqtt.EventKind) mqtt.Event {
	t.Helper()
	e := fakeRcEvent(t, c)
	if e.Kind != k {
		t.Fatalf("event %v (%+v), want %v", e.Kind, e, k)
	}
	return e
}

// fakeRcNoEvent checks, inside a bubble, that the client has no event to
// report once every goroutine has settled.
func fakeRcNoEvent(t *testing.T, c *mqtt.Client) {
	t.Helper()
	synctest.Wait()
	select {
	case e, ok := <-c.Events():
		if ok { // closed: the client stopped, and no event follows
			t.Fatalf("unexpected event %v (%+v)", e.Kind, e)
		}
	default:
	}
}

// fakeRcRunning checks that the client has not stopped.
func fakeRcRunning(t *testing.T, c *mqtt.Client) {
	t.Helper()
	synctest.Wait()
	select {
	case <-c.Done():
		t.Fatalf("client stopped: %v", c.Err())
	default:
	}
	if err := c.Err(); err != nil {
		t.Fatalf("Err = %v while the client runs", err)
	}
}

// fakeRcDone reports, inside a bubble, whether p has completed once
// every goroutine has settled.
func fakeRcDone(p *mqtt.Pending) bool {
	synctest.Wait()
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

// fakeRcWithin checks that d lies within ±25 % of nominal.
func fakeRcWithin(d, nominal time.Duration) bool {
	return d >= nominal-nominal/4 && d <= nominal+nominal/4
}

// fakeRcResent returns the PUBLISH p as the client must send it again.
func fakeRcResent(p *packet.Publish, dup bool) *packet.Publish {
	q := *p
	q.Dup = dup
	return &q
}

// fakeRcSubscribe subscribes to filters; the broker answers the SUBSCRIBE
// with codes, or grants each filter its QoS when codes is nil. It returns
// the subscription, the SUBSCRIBE and the error of SubscribeFilters.
func fakeRcSubscribe(t *testing.T, c *mqtt.Client, fc *fakeConn, codes []packet.ReasonCode, filters ...mqtt.Filter) (*mqtt.Subscription, *packet.Subscribe, error) {
	t.Helper()
	var sub *mqtt.Subscription
	call := fakeAsync(t, func() error {
		var err error
		sub, err = c.SubscribeFilters(context.Background(), filters...)
		return err
	})
	sp := fc.expectSubscribe()
	if codes == nil {
		for _, s := range sp.Subscriptions {
			codes = append(codes, packet.ReasonCode(s.QoS))
		}
	}
	fc.send(&packet.Suback{PacketID: sp.PacketID, ReasonCodes: codes})
	err := call.wait()
	return sub, sp, err
}

// fakeRcDrain returns, inside a bubble, the packets the client has sent
// and the test not yet read, once every goroutine has settled.
func fakeRcDrain(fc *fakeConn) []packet.Packet {
	synctest.Wait()
	var got []packet.Packet
	for {
		select {
		case p := <-fc.pkts:
			got = append(got, p)
		default:
			return got
		}
	}
}

// testTimeout bounds every wait in a test so a broken client fails instead of hanging.
const testTimeout = 15 * time.Second

var clientSeq atomic.Int64

// uniqueID returns a client ID (and topic prefix) unique within the test binary.
func uniqueID(t testing.TB) string {
	return fmt.Sprintf("t%d-%d", time.Now().UnixNano()%1e6, clientSeq.Add(1))
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// connect connects with cfg and closes the client at the end of the test.
func connect(t testing.TB, cfg mqtt.Config) *mqtt.Client {
	t.Helper()
	c, err := mqtt.Connect(testContext(t), cfg)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// receive waits for one message on ch.
func receive(t testing.TB, ch <-chan mqtt.Message) mqtt.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("message channel closed")
		}
		return m
	case <-time.After(testTimeout):
		t.Fatal("no message within the test timeout")
	}
	return mqtt.Message{}
}

// expectNone checks that nothing arrives on ch within d.
func expectNone(t testing.TB, ch <-chan mqtt.Message, d time.Duration) {
	t.Helper()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("unexpected message %v %q", m.Topic, m.Payload)
		}
	case <-time.After(d):
	}
}

// ignoreAck ignores Message's unexported acknowledgement handle in go-cmp
// comparisons.
var ignoreAck = cmpopts.IgnoreUnexported(mqtt.Message{})

var versions = []struct {
	name string
	v    mqtt.ProtocolVersion
}{{"v311", mqtt.Version311}, {"v5", mqtt.Version5}}

// fakeInChildProcess runs the test named name again in a child process, for a
// test whose failure is a panic in a client goroutine, which would end the
// whole test binary. It reports whether the caller is that child and must run
// the test body.
func fakeInChildProcess(t *testing.T) bool {
	t.Helper()
	const env = "MQTT_FAKE_TEST_CHILD"
	if os.Getenv(env) == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env+"="+t.Name())
	if out, err := cmd.CombinedOutput(); err != nil {
		// The panic and the first goroutine are what matter.
		if i := bytes.Index(out, []byte("panic:")); i >= 0 {
			out = out[i:]
		}
		if len(out) > 3000 {
			out = out[:3000]
		}
		t.Errorf("child test process failed (%v):\n%s", err, out)
	}
	return false
}
