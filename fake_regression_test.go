package mqtt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"testing/synctest"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Regression tests for client bugs the scripted broker once exposed.

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

// TestFakeRegressionViolationQueuedAtConnectionEnd: a protocol violation that the
// reader handed to the session before the connection ended is handled
// while connectionEnded drains the session's input. protocolFailCode then
// finds s.conn still set and calls connectionEnded again, which shuts the
// session down; the outer connectionEnded then calls shutdown a second time
// and close(s.stopPumps) panics: "close of closed channel", which takes the
// application down. Here the session has stopped reading (the application
// holds Receive Maximum unacknowledged messages), the broker sends a PUBACK
// for an unknown packet identifier and hangs up.
func TestFakeRegressionViolationQueuedAtConnectionEnd(t *testing.T) {
	if !fakeInChildProcess(t) {
		return
	}
	for _, ver := range fakeVersions {
		synctest.Test(t, func(t *testing.T) {
			c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "b", Version: ver.v, ReceiveMaximum: 1, KeepAlive: -1}, &packet.Connack{})
			fc.send(&packet.Publish{Topic: "held", QoS: 1, PacketID: 1})
			fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: 9})
			synctest.Wait()
			fc.bc.Close()
			err := fakeWaitDone(t, c, fakeTimeout)
			if !errors.Is(err, mqtt.ErrConnectionLost) {
				t.Errorf("%s: Err = %v, want ErrConnectionLost", ver.name, err)
			}
		})
	}
}

// TestFakeRegressionQoS0PublishDuringDisconnect: Disconnect documents that "new
// publishes are refused", and QoS 1 and 2 publishes are (session.refusing).
// A QoS 0 Publish goes straight to the connection's writer
// (Client.publishQoS0), so it is accepted and sent while Disconnect waits
// for acknowledgements; racing with finishDisconnect it can even be written
// after the DISCONNECT, which [MQTT-3.14.4-1] forbids.
func TestFakeRegressionQoS0PublishDuringDisconnect(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "b", Version: v}, &packet.Connack{})
		c.PublishAsync(mqtt.Message{Topic: "a", QoS: mqtt.AtLeastOnce})
		p := fc.expectPublish()
		disc := fakeAsync(t, func() error { return c.Disconnect(context.Background()) })
		if disc.returned() {
			t.Fatal("Disconnect returned with a publish in flight")
		}
		if err := c.Publish(context.Background(), mqtt.Message{Topic: "late"}); !errors.Is(err, mqtt.ErrClosed) {
			t.Errorf("QoS 0 Publish during Disconnect = %v, want ErrClosed", err)
		}
		fc.expectNothing()
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: p.PacketID})
		if diff := cmp.Diff([]packet.Packet{&packet.Disconnect{}}, fc.expectClosed(), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("packets before the close (-want +got):\n%s", diff)
		}
		disc.wait()
	})
}

// TestFakeRegressionMalformedHeaderBeforeConnack: a malformed fixed header where the
// CONNACK should be (reserved flag bits [MQTT-2.1.3-1], packet type 0, a
// Remaining Length over four bytes, a CONNACK larger than the client's
// Maximum Packet Size) makes Connect fail with the bare *packet.Error
// ("mqtt: waiting for CONNACK ...: %w" in Client.exchange, dial.go), which
// does not wrap ErrProtocolViolation; a malformed CONNACK body does.
// ErrProtocolViolation is documented as covering "a malformed or unexpected
// packet".
func TestFakeRegressionMalformedHeaderBeforeConnack(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"CONNACK-reserved-flags", []byte{0x21, 0x02, 0x00, 0x00}},
		{"type-0", []byte{0x00, 0x00}},
		{"remaining-length-5-bytes", []byte{0x20, 0xff, 0xff, 0xff, 0xff, 0x7f}},
		{"larger-than-MaxPacketSize", append([]byte{0x20, 0x23, 0x00, 0x00, 0x20, 0x1f, 0x00, 0x1d}, "a reason string too long to fit"...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) {
				b := fakebroker.New(t)
				res := fakeStartConnect(t, context.Background(), b, mqtt.Config{ClientID: "b", Version: mqtt.Version5, MaxPacketSize: 32})
				bc := fakeAccept(t, b, fakeTimeout)
				bc.ExpectConnect(t)
				sent := fakeAsync(t, func() error { return bc.SendRawErr(tc.raw) })
				c, err := fakeConnectDone(t, res, fakeTimeout)
				if c != nil || !errors.Is(err, mqtt.ErrProtocolViolation) {
					t.Errorf("Connect = %v, %v; want an error wrapping ErrProtocolViolation", c, err)
				}
				bc.Close()
				sent.wait()
			})
		})
	}
}

// TestFakeRegressionPasswordWithoutUserName311: with Version311, a Config with a
// Password and no Username makes Client.exchange (dial.go) send a CONNECT
// with the Password Flag set and the User Name Flag clear, which MQTT 3.1.1
// forbids [MQTT-3.1.2-22]; brokers close such a connection. The client
// should refuse the Config (an *ArgumentError before dialing) or leave the
// password out; VersionAuto falling back to 3.1.1 has the same problem.
func TestFakeRegressionPasswordWithoutUserName311(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		b := fakebroker.New(t)
		res := fakeStartConnect(t, context.Background(), b, mqtt.Config{ClientID: "b", Version: mqtt.Version311, Password: []byte("pw")})
		synctest.Wait()
		if b.Pending() == 0 {
			_, err := fakeConnectDone(t, res, fakeTimeout)
			if !errors.Is(err, mqtt.ErrInvalidArgument) {
				t.Errorf("Connect = %v; want ErrInvalidArgument or a valid CONNECT", err)
			}
			return
		}
		bc := fakeAccept(t, b, fakeTimeout)
		p, err := bc.ReadErr()
		if err != nil {
			t.Errorf("the CONNECT is invalid: %v", err)
			bc.Close()
			fakeConnectDone(t, res, fakeTimeout)
			return
		}
		if cp := p.(*packet.Connect); cp.PasswordFlag && !cp.UsernameFlag {
			t.Errorf("CONNECT has the Password Flag without the User Name Flag [MQTT-3.1.2-22]")
		}
		bc.Send(t, &packet.Connack{})
		fakeConnectDone(t, res, fakeTimeout)
	})
}

// TestFakeRegressionStuckWriteBlocksShutdown: nothing interrupts the writer
// goroutine's nc.Write when the connection ends. With a broker that stopped
// reading (a black-holed TCP peer once the socket buffer is full; any
// pending write on a pipe), the keepalive timeout cancels the connection,
// session.connectionEnded calls connection.close, and g.Wait() waits for
// ever: the writer is blocked in Write, and the reader in Read until the
// writer closes nc. The client never reports the loss (Done stays open) and
// Close never returns. connection.close (or a context.AfterFunc in start)
// should expire the deadlines of nc when the connection's context ends:
// the write deadline only after finalFlushTimeout when flushing.
func TestFakeRegressionStuckWriteBlocksShutdown(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, _ := fakeClientConn(t, mqtt.Config{ClientID: "b", Version: mqtt.Version5, KeepAlive: 10 * time.Second}, &packet.Connack{})
		// The broker reads nothing more: this write never completes.
		if err := c.Publish(context.Background(), mqtt.Message{Topic: "t", Payload: []byte("x")}); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		start := time.Now()
		select {
		case <-c.Done():
			if d := time.Since(start); d != 20*time.Second {
				t.Errorf("connection declared lost after %v, want 20s", d)
			}
			if err := c.Err(); !errors.Is(err, mqtt.ErrKeepAliveTimeout) {
				t.Errorf("Err = %v, want ErrKeepAliveTimeout", err)
			}
		case <-time.After(time.Hour):
			t.Errorf("client still running an hour after the broker stopped reading; the keepalive timeout (20 s) did not end it")
		}
		closed := fakeAsync(t, c.Close)
		select {
		case <-closed.done:
		case <-time.After(time.Hour):
			t.Errorf("Close did not return within an hour")
		}
	})
}

// TestFakeRegressionKeepAliveTimerSpins: session.keepAlive re-arms its timer with
// max(next, time.Millisecond), where next = KeepAlive - idle turns negative
// once a PINGREQ has been outstanding for a whole interval. Whenever the
// ping deadline keeps moving (packets arrive but no PINGRESP, or the session
// holds reading back under OverflowPolicy Block, where the deadline is
// pushed on every run), the session goroutine wakes every millisecond: in
// a 10 minute stall of the application, 580,000 wake-ups. The timer should
// be set to the ping deadline (or the next keepalive) only. The test stalls
// the application for 10 minutes of fake time and checks the real time the
// bubble took: about 8 s with -race now, milliseconds without the spin.
func TestFakeRegressionKeepAliveTimerSpins(t *testing.T) {
	t.Parallel()
	start := time.Now()
	synctest.Test(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "b", Version: mqtt.Version5, KeepAlive: 10 * time.Second,
			MemoryLimit: 1, QoS0Overflow: mqtt.Block}, &packet.Connack{})
		sub := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "f/#"})
		var flood []packet.Packet
		for i := range 40 {
			flood = append(flood, &packet.Publish{Topic: fmt.Sprint("f/", i)})
		}
		sent := fc.sendAsync(flood...)
		// A timer re-armed every millisecond would wake 36 million times in
		// these ten hours; a correct one wakes a few thousand times.
		fakeAdvance(10 * time.Hour)
		for range 40 {
			fakeRecv(t, sub.Messages())
		}
		<-sent
	})
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("10 hours of fake time with a stalled application took %v of real time: the keepalive timer spins", d)
	}
}

// TestFakeRegressionSubscribeWaitsForPublishQuota: Subscribe and Unsubscribe queue
// behind QoS 1 and 2 publishes waiting for the broker's Receive Maximum
// (session.subscribeReq.handle appends to s.waiting whenever it is not
// empty), although Receive Maximum limits only PUBLISH packets
// [MQTT-4.9.0-2]. With Receive Maximum 1 and a publish in flight, a second
// publish waits, and so does a Subscribe, until the broker acknowledges the
// first publish.
func TestFakeRegressionSubscribeWaitsForPublishQuota(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		ack := &packet.Connack{}
		ack.Props.ReceiveMaximum = 1
		ack.Props.Set(packet.PropReceiveMaximum)
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "b", Version: mqtt.Version5}, ack)
		c.PublishAsync(mqtt.Message{Topic: "a", QoS: mqtt.AtLeastOnce})
		p := fc.expectPublish()
		c.PublishAsync(mqtt.Message{Topic: "b", QoS: mqtt.AtLeastOnce})
		res := fakeStartSubscribe(c, mqtt.Filter{Topic: "s"})
		synctest.Wait()
		var sp *packet.Subscribe
		select {
		case pkt := <-fc.pkts:
			if pkt.Type() != packet.SUBSCRIBE {
				t.Fatalf("got %s, want SUBSCRIBE", fakebroker.Describe(pkt))
			}
			sp = pkt.(*packet.Subscribe)
		default:
			t.Error("SUBSCRIBE not sent while a publish waits for the broker's Receive Maximum")
			fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: p.PacketID})
			fc.expectPublish()
			sp = fc.expectSubscribe()
		}
		fc.send(&packet.Suback{PacketID: sp.PacketID, ReasonCodes: []packet.ReasonCode{0}})
		if r := <-res; r.err != nil {
			t.Errorf("Subscribe: %v", r.err)
		}
	})
}

// TestFakeRegressionV5PauseStallsAcks: when the application holds ReceiveMaximum
// unacknowledged messages, session.receive sets pauseInflight and stops
// taking packets from the reader, on MQTT 5.0 connections too, although
// its comment says the pause is what a 3.1.1 client has instead of Receive
// Maximum. Over 5.0 the broker's flow control already stops QoS 1 and 2
// messages, so the pause only stalls what must go on while the application
// is not reading: PUBACKs for the client's own
// publishes, PINGRESP, QoS 0 messages for other subscriptions. It also makes
// the Receive Maximum exceeded check (0x93) unreachable for QoS 1.
func TestFakeRegressionV5PauseStallsAcks(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "b", Version: mqtt.Version5, ReceiveMaximum: 2, KeepAlive: -1}, &packet.Connack{})
		slow := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "slow/#", QoS: 1})
		fast := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "fast/#"})
		fc.send(&packet.Publish{Topic: "slow/1", QoS: 1, PacketID: 1})
		fc.send(&packet.Publish{Topic: "slow/2", QoS: 1, PacketID: 2})
		pub := c.PublishAsync(mqtt.Message{Topic: "out", QoS: mqtt.AtLeastOnce})
		p := fc.expectPublish()
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: p.PacketID})
		fc.send(&packet.Publish{Topic: "fast/1"})
		synctest.Wait()
		select {
		case <-pub.Done():
		default:
			t.Error("the PUBACK for the client's publish is not processed while the application holds Receive Maximum messages")
		}
		select {
		case <-fast.Messages():
		default:
			t.Error("a QoS 0 message for another subscription is held back by the slow subscription")
		}
		fakeRecv(t, slow.Messages())
		fakeRecv(t, slow.Messages())
	})
}
