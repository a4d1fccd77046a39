package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/packet"
)

// fakeExpectPingAt waits for a PINGREQ and checks that it arrived at offset
// from start on the bubble's clock.
func fakeExpectPingAt(t *testing.T, fc *fakeConn, start time.Time, offset time.Duration) {
	t.Helper()
	fc.expect(packet.PINGREQ)
	if got := time.Since(start); got != offset {
		t.Errorf("PINGREQ at %v, want %v", got, offset)
	}
}

// TestFakeKeepAlive checks that an idle client sends PINGREQ when it has
// been silent for the keepalive interval [MQTT-3.1.2-23], again one interval
// after the last PINGREQ once PINGRESP arrived, and that it declares the
// connection lost when PINGRESP does not come within PingTimeout: Done
// closes, Err wraps ErrConnectionLost and ErrKeepAliveTimeout, waiting calls
// fail and the connection is closed.
func TestFakeKeepAlive(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "ka", Version: v, KeepAlive: 10 * time.Second}, &packet.Connack{})
		start := time.Now()
		sub := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "x/#", QoS: 1})
		fakeExpectPingAt(t, fc, start, 10*time.Second)
		fc.send(&packet.Pingresp{})
		fakeExpectPingAt(t, fc, start, 20*time.Second)
		fc.send(&packet.Pingresp{})
		fakeExpectPingAt(t, fc, start, 30*time.Second)
		// The broker stops answering; it still reads.
		pub := c.PublishAsync(mqtt.Message{Topic: "x/y", QoS: mqtt.AtLeastOnce})
		fc.expectPublish()
		err := fakeWaitDone(t, c, fakeTimeout)
		// PingTimeout defaults to KeepAlive (at most 30 s).
		if got := time.Since(start); got != 40*time.Second {
			t.Errorf("connection declared lost at %v, want 40s (the last PINGREQ plus PingTimeout)", got)
		}
		if !errors.Is(err, mqtt.ErrConnectionLost) || !errors.Is(err, mqtt.ErrKeepAliveTimeout) {
			t.Errorf("Err = %v, want ErrConnectionLost and ErrKeepAliveTimeout", err)
		}
		if err := pub.Wait(context.Background()); !errors.Is(err, mqtt.ErrConnectionLost) {
			t.Errorf("in-flight publish completed with %v, want ErrConnectionLost", err)
		}
		if !fakeChanClosed(sub.Messages()) {
			t.Error("subscription channel still open after the connection was lost")
		}
		if got := fc.expectClosed(); len(got) != 0 {
			t.Errorf("after the keepalive timeout the client sent %d packets, first %v", len(got), got[0].Type())
		}
	})
}

// TestFakeKeepAlivePingTimeout checks that a configured PingTimeout, not
// the keepalive interval, bounds the wait for PINGRESP.
func TestFakeKeepAlivePingTimeout(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "ka", Version: mqtt.Version5, KeepAlive: 10 * time.Second,
			PingTimeout: 3 * time.Second}, &packet.Connack{})
		start := time.Now()
		fakeExpectPingAt(t, fc, start, 10*time.Second)
		err := fakeWaitDone(t, c, fakeTimeout)
		if got := time.Since(start); got != 13*time.Second {
			t.Errorf("connection declared lost at %v, want 13s", got)
		}
		if !errors.Is(err, mqtt.ErrKeepAliveTimeout) {
			t.Errorf("Err = %v, want ErrKeepAliveTimeout", err)
		}
	})
}

// TestFakeKeepAliveAnyPacketCounts checks that any packet from the broker
// after PINGREQ, not only PINGRESP, shows the connection is alive.
func TestFakeKeepAliveAnyPacketCounts(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "ka", Version: mqtt.Version5, KeepAlive: 10 * time.Second}, &packet.Connack{})
		start := time.Now()
		fakeExpectPingAt(t, fc, start, 10*time.Second)
		fakeAdvance(9 * time.Second)
		fc.send(&packet.Publish{Topic: "news", Payload: []byte("alive")})
		fakeAdvance(5 * time.Second)
		if err := c.Err(); err != nil {
			t.Fatalf("Err at 24s = %v; a PUBLISH arrived 5s ago", err)
		}
		fakeRecv(t, c.Messages())
	})
}

// TestFakeKeepAlivePostponedBySending checks that what the client sends
// restarts the keepalive interval [MQTT-3.1.2-23]: a publish at 4 s moves the
// PINGREQ to 14 s. What the broker sends does not: the client must still
// send something every interval.
func TestFakeKeepAlivePostponedBySending(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "ka", Version: v, KeepAlive: 10 * time.Second}, &packet.Connack{})
		start := time.Now()
		fakeAdvance(4 * time.Second)
		if err := c.Publish(context.Background(), mqtt.Message{Topic: "t", Payload: []byte("p")}); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		fc.expectPublish()
		fakeExpectPingAt(t, fc, start, 14*time.Second)
		fc.send(&packet.Pingresp{})

		// A QoS 1 exchange at 20 s: the PUBLISH is the client's last packet.
		fakeAdvance(6 * time.Second)
		pub := c.PublishAsync(mqtt.Message{Topic: "t", QoS: mqtt.AtLeastOnce})
		p := fc.expectPublish()
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: p.PacketID})
		if err := pub.Wait(context.Background()); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		fakeExpectPingAt(t, fc, start, 30*time.Second)
		fc.send(&packet.Pingresp{})

		// Inbound traffic at 35 s does not postpone the next PINGREQ.
		fakeAdvance(5 * time.Second)
		fc.send(&packet.Publish{Topic: "in", Payload: []byte("x")})
		fakeExpectPingAt(t, fc, start, 40*time.Second)
		fc.send(&packet.Pingresp{})
		fakeRecv(t, c.Messages())
	})
}

// TestFakeServerKeepAlive checks that an MQTT 5.0 Server Keep Alive in
// CONNACK replaces the configured keepalive [MQTT-3.2.2-21], and that a
// Server Keep Alive of 0 turns PINGREQ off.
func TestFakeServerKeepAlive(t *testing.T) {
	t.Parallel()
	t.Run("5s", func(t *testing.T) {
		fakeBubble(t, func(t *testing.T) {
			ack := &packet.Connack{}
			ack.Props.ServerKeepAlive = 5
			ack.Props.Set(packet.PropServerKeepAlive)
			c, fc, cp := fakeClient(t, mqtt.Config{ClientID: "ska", Version: mqtt.Version5, KeepAlive: time.Minute}, ack)
			start := time.Now()
			if cp.KeepAlive != 60 {
				t.Errorf("CONNECT Keep Alive = %d, want 60", cp.KeepAlive)
			}
			fakeExpectPingAt(t, fc, start, 5*time.Second)
			fc.send(&packet.Pingresp{})
			fakeExpectPingAt(t, fc, start, 10*time.Second)
			fc.send(&packet.Pingresp{})
			if err := c.Err(); err != nil {
				t.Errorf("Err = %v", err)
			}
		})
	})
	t.Run("0", func(t *testing.T) {
		fakeBubble(t, func(t *testing.T) {
			ack := &packet.Connack{}
			ack.Props.Set(packet.PropServerKeepAlive)
			c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "ska", Version: mqtt.Version5, KeepAlive: 10 * time.Second}, ack)
			fakeAdvance(time.Hour)
			fc.expectNothing()
			if err := c.Err(); err != nil {
				t.Errorf("Err = %v", err)
			}
		})
	})
}

// TestFakePing checks that Ping sends PINGREQ and returns the time until
// PINGRESP arrived, and that Ping's ctx bounds the wait.
func TestFakePing(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "ping", Version: v, KeepAlive: time.Hour}, &packet.Connack{})
		var rtt time.Duration
		call := fakeAsync(t, func() (err error) {
			rtt, err = c.Ping(context.Background())
			return err
		})
		fc.expect(packet.PINGREQ)
		fakeAdvance(3 * time.Second)
		if call.returned() {
			t.Fatal("Ping returned before PINGRESP")
		}
		fc.send(&packet.Pingresp{})
		if err := call.wait(); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		if rtt != 3*time.Second {
			t.Errorf("Ping = %v, want 3s", rtt)
		}

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.Ping(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Ping with an expiring ctx and no PINGRESP = %v, want DeadlineExceeded", err)
		}
		fc.expect(packet.PINGREQ)
		// The late PINGRESP is harmless.
		fc.send(&packet.Pingresp{})
		if err := c.Err(); err != nil {
			t.Errorf("Err = %v", err)
		}
	})
}

// TestFakeKeepAliveWhileHeldBack checks that while the client holds reading
// back for a slow application (OverflowPolicy Block), it still sends a
// PINGREQ every keepalive interval [MQTT-3.1.2-23], although the answers to
// the earlier ones sit unread behind the messages it is holding back; and
// that once the application reads, the connection is still there and the
// answers are taken in order.
func TestFakeKeepAliveWhileHeldBack(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "ka", Version: mqtt.Version5, KeepAlive: 10 * time.Second,
			QoS0Overflow: mqtt.Block, MemoryLimit: 1}, &packet.Connack{})
		start := time.Now()
		// The application reads nothing: one message is held, one waits
		// for room, and the reader stops with the rest unread.
		var flood []packet.Packet
		for i := range 8 {
			flood = append(flood, &packet.Publish{Topic: "f", Payload: []byte{byte(i)}})
		}
		sent := fc.sendAsync(flood...)
		var answers []<-chan error
		for k := 1; k <= 5; k++ {
			fakeExpectPingAt(t, fc, start, time.Duration(k)*10*time.Second)
			answers = append(answers, fc.sendAsync(&packet.Pingresp{}))
		}
		if err := c.Err(); err != nil {
			t.Fatalf("client stopped while held back: %v", err)
		}
		for i := range 8 {
			if m := fakeRecv(t, c.Messages()); m.Payload[0] != byte(i) {
				t.Fatalf("message %d has payload %d", i, m.Payload[0])
			}
		}
		<-sent
		for _, a := range answers {
			if err := <-a; err != nil {
				t.Fatal(err)
			}
		}
		pinged := make(chan error, 1)
		go func() {
			_, err := c.Ping(context.Background())
			pinged <- err
		}()
		fc.expect(packet.PINGREQ)
		fc.send(&packet.Pingresp{})
		if err := <-pinged; err != nil {
			t.Errorf("Ping after the stall: %v", err)
		}
	})
}

// latencyConn delays each write by latency, as a network does; the
// keepalive tests need writes that complete after they were queued.
type latencyConn struct {
	net.Conn
	latency time.Duration
}

func (c latencyConn) Write(b []byte) (int, error) {
	<-time.After(c.latency)
	return c.Conn.Write(b)
}

// TestFakeKeepAliveSpacingWhileStalled checks keepalive while the
// application takes nothing for ten keepalive intervals under a flood: a
// PINGREQ leaves exactly one interval after the previous packet the client
// sent [MQTT-3.1.2-23] (the broker sees it that plus the network's 1 ms
// later), whatever the reader does: held back (QoS 0 under OverflowPolicy
// Block, or QoS 1, with a memory limit that holds one message), or reading
// on and dropping (QoS 0 under DropNewest). The broker answers each
// PINGREQ, but a client holding reading back cannot see the answer; it
// must not count that time against the broker, so the connection is kept.
// Once the application reads, every QoS 1 message and every held-back QoS
// 0 message arrives in order.
func TestFakeKeepAliveSpacingWhileStalled(t *testing.T) {
	t.Parallel()
	const (
		keepAlive = 2 * time.Second
		latency   = time.Millisecond
	)
	for _, tc := range []struct {
		name   string
		qos    byte
		policy mqtt.OverflowPolicy
	}{
		{"qos0-block", 0, mqtt.Block},
		{"qos1", 1, mqtt.DropNewest},
		{"qos0-drop", 0, mqtt.DropNewest},
	} {
		for _, ver := range fakeVersions {
			t.Run(tc.name+"/"+ver.name, func(t *testing.T) {
				fakeBubble(t, func(t *testing.T) {
					b := fakebroker.New(t)
					cfg := mqtt.Config{ClientID: "ka", Version: ver.v, KeepAlive: keepAlive,
						QoS0Overflow: tc.policy, MemoryLimit: 1, MessageBuffer: 1,
						Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
							nc, err := b.Dial(ctx, network, addr)
							return latencyConn{nc, latency}, err
						}}
					res := fakeStartConnect(t, context.Background(), b, cfg)
					bc := fakeAccept(t, b, fakeTimeout)
					bc.ExpectConnect(t)
					bc.Send(t, &packet.Connack{})
					c, err := fakeConnectDone(t, res, fakeTimeout)
					if err != nil {
						t.Fatal(err)
					}
					fc := fakeWatch(t, bc, fakeTimeout)
					sub := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "f/#", QoS: mqtt.QoS(tc.qos)})
					last := time.Now() // the SUBSCRIBE was the client's last packet
					// A message every 100 ms for the whole stall.
					const n = 200
					flood := make(chan error, 1)
					go func() {
						for i := range n {
							p := &packet.Publish{Topic: "f/x", QoS: tc.qos, Payload: []byte{byte(i)}}
							if tc.qos > 0 {
								p.PacketID = uint16(i + 1)
							}
							if err := fc.bc.SendErr(p); err != nil {
								flood <- err
								return
							}
							<-time.After(100 * time.Millisecond)
						}
						flood <- nil
					}()
					var answers []<-chan error
					var acks int
					for k := 1; k <= 10; {
						p := fc.next()
						switch p.Type() {
						case packet.PINGREQ:
							if gap := time.Since(last); gap != keepAlive+latency {
								t.Errorf("PINGREQ %d came %v after the previous packet, want %v", k, gap, keepAlive+latency)
							}
							answers = append(answers, fc.sendAsync(&packet.Pingresp{}))
							k++
						case packet.PUBACK:
							acks++ // the one message the client could hold
						default:
							t.Fatalf("unexpected %v while the application stalls", p.Type())
						}
						last = time.Now()
					}
					if err := c.Err(); err != nil {
						t.Fatalf("the connection ended while the application stalled: %v", err)
					}
					if st := c.Stats(); st.Connects != 1 || st.ConnectionLosses != 0 {
						t.Fatalf("stats: %d connects, %d losses", st.Connects, st.ConnectionLosses)
					}
					got := 0
					for want := 0; want < n; want++ {
						if tc.policy == mqtt.DropNewest && tc.qos == 0 && uint64(got)+c.Stats().Dropped >= n {
							break
						}
						m := fakeRecv(t, sub.Messages())
						if tc.qos > 0 || tc.policy == mqtt.Block {
							if int(m.Payload[0]) != want {
								t.Fatalf("message %d arrived when %d was expected", m.Payload[0], want)
							}
						}
						got++
					}
					if err := <-flood; err != nil {
						t.Fatal(err)
					}
					for _, a := range answers {
						if err := <-a; err != nil {
							t.Fatal(err)
						}
					}
					if err := c.Err(); err != nil {
						t.Fatalf("Err = %v", err)
					}
				})
			})
		}
	}
}

func TestMosquittoPing(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	c := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: uniqueID(t)})
	rtt, err := c.Ping(testContext(t))
	if err != nil || rtt <= 0 || rtt > time.Second {
		t.Fatalf("Ping = %v, %v; want a positive round trip under 1 s", rtt, err)
	}
}

func TestMosquittoKeepAlive(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			c := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: uniqueID(t), Version: ver.v, KeepAlive: time.Second})
			// An idle client stays connected for several keepalive periods:
			// without PINGREQ the broker would drop it after 1.5 s [MQTT-3.1.2-24].
			select {
			case <-c.Done():
				t.Fatalf("connection ended: %v", c.Err())
			case <-time.After(3500 * time.Millisecond):
			}
			if _, err := c.Ping(testContext(t)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestFakeKeepAliveTimerDoesNotSpin: session.keepAlive re-arms its timer with
// max(next, time.Millisecond), where next = KeepAlive - idle turns negative
// once a PINGREQ has been outstanding for a whole interval. Whenever the
// ping deadline keeps moving (packets arrive but no PINGRESP, or the session
// holds reading back under OverflowPolicy Block, where the deadline is
// pushed on every run), the session goroutine wakes every millisecond: in
// a 10 minute stall of the application, 580,000 wake-ups. The timer should
// be set to the ping deadline (or the next keepalive) only. The test stalls
// the application for 10 minutes of fake time and checks the real time the
// bubble took: about 8 s with -race now, milliseconds without the spin.
func TestFakeKeepAliveTimerDoesNotSpin(t *testing.T) {
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
