package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/sink"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestFakeDisconnectWaitsForInflight checks the graceful Disconnect: it
// refuses new QoS 1 and 2 publishes at once, lets the QoS 1 and 2 publishes
// in flight complete, then sends DISCONNECT (reason Normal disconnection,
// so the broker discards the will [MQTT-3.14.4-3]) as the last packet
// [MQTT-3.14.4-1] and closes the connection [MQTT-3.14.4-2].
func TestFakeDisconnectWaitsForInflight(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "d", Version: v, Will: &mqtt.Message{Topic: "will"}}, &packet.Connack{})
		sub := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "s/#"})
		p1 := c.PublishAsync(mqtt.Message{Topic: "a", QoS: mqtt.AtLeastOnce})
		p2 := c.PublishAsync(mqtt.Message{Topic: "b", QoS: mqtt.ExactlyOnce})
		pub1, pub2 := fc.expectPublish(), fc.expectPublish()
		disc := fakeAsync(t, func() error { return c.Disconnect(context.Background()) })
		fakeAdvance(time.Second)
		if disc.returned() {
			t.Fatalf("Disconnect returned %v with publishes in flight", disc.err)
		}
		fc.expectNothing()
		if err := c.Publish(context.Background(), mqtt.Message{Topic: "late", QoS: mqtt.AtLeastOnce}); !errors.Is(err, mqtt.ErrClosed) {
			t.Errorf("QoS 1 Publish during Disconnect = %v, want ErrClosed", err)
		}

		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: pub1.PacketID})
		fc.send(&packet.Ack{PacketType: packet.PUBREC, PacketID: pub2.PacketID})
		fc.expectAck(packet.PUBREL)
		if disc.returned() {
			t.Fatal("Disconnect returned before PUBCOMP")
		}
		fc.send(&packet.Ack{PacketType: packet.PUBCOMP, PacketID: pub2.PacketID})
		got := fc.expectClosed()
		if diff := cmp.Diff([]packet.Packet{&packet.Disconnect{}}, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("packets before the close (-want +got):\n%s", diff)
		}
		if err := disc.wait(); err != nil {
			t.Errorf("Disconnect = %v, want nil", err)
		}
		for i, p := range []*mqtt.Pending{p1, p2} {
			if err := p.Wait(context.Background()); err != nil {
				t.Errorf("publish %d: %v", i+1, err)
			}
		}
		if err := c.Err(); !errors.Is(err, mqtt.ErrClosed) {
			t.Errorf("Err = %v, want ErrClosed", err)
		}
		select {
		case <-c.Done():
		default:
			t.Error("Done not closed after Disconnect")
		}
		if !fakeChanClosed(sub.Messages()) || !fakeChanClosed(c.Messages()) {
			t.Error("receiving channels open after Disconnect")
		}
	})
}

// TestFakeDisconnectIdle checks that Disconnect with nothing in flight sends
// DISCONNECT at once and closes.
func TestFakeDisconnectIdle(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "d", Version: v}, &packet.Connack{})
		start := time.Now()
		if err := c.Disconnect(context.Background()); err != nil {
			t.Fatalf("Disconnect: %v", err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Disconnect took %v", d)
		}
		if diff := cmp.Diff([]packet.Packet{&packet.Disconnect{}}, fc.expectClosed()); diff != "" {
			t.Errorf("packets before the close (-want +got):\n%s", diff)
		}
	})
}

// TestFakeDisconnectContextExpires checks that when Disconnect's ctx ends
// before the broker acknowledged the publishes in flight, Disconnect returns
// ctx's error, still sends DISCONNECT and closes, and the publishes fail
// with ErrClosed.
func TestFakeDisconnectContextExpires(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "d", Version: mqtt.Version5, KeepAlive: -1}, &packet.Connack{})
		pub := c.PublishAsync(mqtt.Message{Topic: "a", QoS: mqtt.AtLeastOnce})
		fc.expectPublish()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start := time.Now()
		err := c.Disconnect(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Disconnect = %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("Disconnect returned after %v, want 3s", d)
		}
		if diff := cmp.Diff([]packet.Packet{&packet.Disconnect{}}, fc.expectClosed()); diff != "" {
			t.Errorf("packets before the close (-want +got):\n%s", diff)
		}
		if err := pub.Wait(context.Background()); !errors.Is(err, mqtt.ErrClosed) {
			t.Errorf("unacknowledged publish completed with %v, want ErrClosed", err)
		}
	})
}

// TestFakeCloseSendsNoDisconnect checks that Close closes the connection
// without a DISCONNECT, so that the broker publishes the will
// [MQTT-3.1.2-8], and fails what is waiting with ErrClosed.
func TestFakeCloseSendsNoDisconnect(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "c", Version: v, Will: &mqtt.Message{Topic: "will", Payload: []byte("gone")}}, &packet.Connack{})
		sub := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "s/#", QoS: 1})
		fc.send(&packet.Publish{Topic: "s/1", QoS: 1, PacketID: 5})
		pub := c.PublishAsync(mqtt.Message{Topic: "a", QoS: mqtt.AtLeastOnce})
		fc.expectPublish()
		ping := fakeAsync(t, func() error { _, err := c.Ping(context.Background()); return err })
		fc.expect(packet.PINGREQ)
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if got := fc.expectClosed(); len(got) != 0 {
			t.Errorf("Close sent %v before closing; want nothing (no DISCONNECT)", got)
		}
		if err := pub.Wait(context.Background()); !errors.Is(err, mqtt.ErrClosed) {
			t.Errorf("in-flight publish completed with %v, want ErrClosed", err)
		}
		if err := ping.wait(); !errors.Is(err, mqtt.ErrClosed) {
			t.Errorf("Ping = %v, want ErrClosed", err)
		}
		if !fakeChanClosed(sub.Messages()) || !fakeChanClosed(c.Messages()) {
			t.Error("receiving channels open after Close")
		}
		if err := c.Err(); !errors.Is(err, mqtt.ErrClosed) || errors.Is(err, mqtt.ErrConnectionLost) {
			t.Errorf("Err = %v, want ErrClosed only", err)
		}
	})
}

// TestFakeCloseDuringDisconnect checks that Close ends a Disconnect that is
// waiting for acknowledgements, without a DISCONNECT.
func TestFakeCloseDuringDisconnect(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "c", Version: mqtt.Version5}, &packet.Connack{})
		c.PublishAsync(mqtt.Message{Topic: "a", QoS: mqtt.AtLeastOnce})
		fc.expectPublish()
		disc := fakeAsync(t, func() error { return c.Disconnect(context.Background()) })
		if disc.returned() {
			t.Fatal("Disconnect returned with a publish in flight")
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := disc.wait(); !errors.Is(err, mqtt.ErrClosed) {
			t.Errorf("Disconnect = %v, want ErrClosed", err)
		}
		if got := fc.expectClosed(); len(got) != 0 {
			t.Errorf("sent %v before closing; want nothing", got)
		}
	})
}

// TestFakeServerDisconnect checks that an MQTT 5.0 DISCONNECT from the broker
// ends the client with an error wrapping ErrConnectionLost and a
// *ReasonError carrying the reason code and string, and that the client
// sends nothing after it [MQTT-3.14.4-1] but closes the connection.
func TestFakeServerDisconnect(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "sd", Version: mqtt.Version5}, &packet.Connack{})
		pub := c.PublishAsync(mqtt.Message{Topic: "a", QoS: mqtt.AtLeastOnce})
		fc.expectPublish()
		d := &packet.Disconnect{ReasonCode: packet.ServerShuttingDown}
		d.Props.ReasonString = "maintenance"
		d.Props.Set(packet.PropReasonString)
		fc.send(d)
		err := fakeWaitDone(t, c, fakeTimeout)
		var re *mqtt.ReasonError
		if !errors.As(err, &re) {
			t.Fatalf("Err = %v, want a *mqtt.ReasonError", err)
		}
		if diff := cmp.Diff(mqtt.ReasonError{Packet: "DISCONNECT", Code: packet.ServerShuttingDown, Reason: "maintenance"}, *re); diff != "" {
			t.Errorf("ReasonError (-want +got):\n%s", diff)
		}
		if !errors.Is(err, mqtt.ErrConnectionLost) {
			t.Errorf("Err = %v, want it to wrap ErrConnectionLost", err)
		}
		if got := fc.expectClosed(); len(got) != 0 {
			t.Errorf("after the broker's DISCONNECT the client sent %v", got)
		}
		if err := pub.Wait(context.Background()); !errors.As(err, &re) || re.Code != packet.ServerShuttingDown {
			t.Errorf("in-flight publish completed with %v, want the broker's DISCONNECT", err)
		}
	})
}

// TestFakeDisconnectContextAlreadyDone checks that Disconnect with a context
// that has already ended still ends the client (it used to return the
// context's error and leave the client connected): it waits for nothing,
// writes DISCONNECT since the connection takes it at once, and closes. With
// nothing in flight it returns nil; with a publish in flight it returns an
// error wrapping the context's, and the publish fails with ErrClosed.
func TestFakeDisconnectContextAlreadyDone(t *testing.T) {
	t.Parallel()
	for _, inFlight := range []bool{false, true} {
		t.Run(fmt.Sprintf("in-flight=%v", inFlight), func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) {
				c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "d", Version: mqtt.Version5, KeepAlive: -1}, &packet.Connack{})
				var pub *mqtt.Pending
				if inFlight {
					pub = c.PublishAsync(mqtt.Message{Topic: "a", QoS: mqtt.AtLeastOnce})
					fc.expectPublish()
				}
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				start := time.Now()
				err := c.Disconnect(ctx)
				if d := time.Since(start); d > 10*time.Millisecond {
					t.Errorf("Disconnect with an ended context took %v", d)
				}
				if inFlight != errors.Is(err, context.Canceled) || (!inFlight && err != nil) {
					t.Errorf("Disconnect = %v; want nil with nothing in flight, context.Canceled otherwise", err)
				}
				select {
				case <-c.Done():
				default:
					t.Fatal("the client still runs after Disconnect")
				}
				if diff := cmp.Diff([]packet.Packet{&packet.Disconnect{}}, fc.expectClosed()); diff != "" {
					t.Errorf("packets before the close (-want +got):\n%s", diff)
				}
				if pub != nil {
					if err := pub.Wait(context.Background()); !errors.Is(err, mqtt.ErrClosed) {
						t.Errorf("the publish in flight completed with %v, want ErrClosed", err)
					}
				}
			})
		})
	}
}

// TestFakeDisconnectBrokerNotReading checks that Disconnect ends the client
// within its context when the broker does not read, so that the DISCONNECT
// cannot be written: it returns an error saying so.
func TestFakeDisconnectBrokerNotReading(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, bc := fakeClientConn(t, mqtt.Config{ClientID: "d", Version: mqtt.Version311, KeepAlive: -1}, &packet.Connack{})
		_ = bc // the broker reads nothing
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		err := c.Disconnect(ctx)
		if d := time.Since(start); d != time.Second {
			t.Errorf("Disconnect returned after %v, want its context's 1 s", d)
		}
		if err == nil || !strings.Contains(err.Error(), "DISCONNECT may not have reached the broker") {
			t.Errorf("Disconnect = %v, want it to say the DISCONNECT may not have reached the broker", err)
		}
		if err := c.Err(); !errors.Is(err, mqtt.ErrClosed) {
			t.Errorf("Err = %v, want ErrClosed", err)
		}
	})
}

// TestFakeEventsClosedWhenStopped checks that the Events channel is closed
// when the client stops, so that a goroutine ranging over it ends: after
// Close, after Disconnect, and after the connection is lost for good.
func TestFakeEventsClosedWhenStopped(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"Close", "Disconnect", "lost"} {
		t.Run(how, func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) {
				c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "e", Version: mqtt.Version311, KeepAlive: -1}, &packet.Connack{})
				ranged := make(chan int)
				go func() {
					n := 0
					for range c.Events() {
						n++
					}
					ranged <- n
				}()
				switch how {
				case "Close":
					c.Close()
				case "Disconnect":
					if err := c.Disconnect(context.Background()); err != nil {
						t.Error(err)
					}
				case "lost":
					fc.bc.Close()
				}
				n := <-ranged
				if how == "lost" && n < 2 {
					t.Errorf("%d events before the channel closed; want EventConnected and EventConnectionLost", n)
				}
				if st := c.Stats(); how == "lost" && st.ConnectionLosses != 1 {
					t.Errorf("ConnectionLosses = %d, want 1", st.ConnectionLosses)
				}
			})
		})
	}
}

// TestPublishRacingClose checks that publishes racing Close, from many
// goroutines at QoS 0, 1 and 2, fail with ErrClosed, never with
// ErrConnectionLost (the connection ended because the application closed
// the client), and that each returns.
func TestPublishRacingClose(t *testing.T) {
	t.Parallel()
	s := startSink(t, sink.Options{})
	for round := range 20 {
		c, err := mqtt.Connect(testContext(t), mqtt.Config{Servers: []string{s.URL()}, ClientID: fmt.Sprint("race", round)})
		if err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, 9)
		for g := range 9 {
			go func() {
				m := mqtt.Message{Topic: "race", Payload: make([]byte, 64), QoS: mqtt.QoS(g % 3)}
				for {
					if err := c.Publish(testContext(t), m); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		<-time.After(time.Duration(round%5) * time.Millisecond)
		c.Close()
		for range 9 {
			if err := <-errs; !errors.Is(err, mqtt.ErrClosed) || errors.Is(err, mqtt.ErrConnectionLost) {
				t.Fatalf("round %d: publish racing Close = %v, want ErrClosed", round, err)
			}
		}
	}
}

// TestFakeQoS0PublishDuringDisconnectRefused: Disconnect documents that "new
// publishes are refused", and QoS 1 and 2 publishes are (session.refusing).
// A QoS 0 Publish goes straight to the connection's writer
// (Client.publishQoS0), so it is accepted and sent while Disconnect waits
// for acknowledgements; racing with finishDisconnect it can even be written
// after the DISCONNECT, which [MQTT-3.14.4-1] forbids.
func TestFakeQoS0PublishDuringDisconnectRefused(t *testing.T) {
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

// TestFakeShutdownWithStuckWrite: nothing interrupts the writer
// goroutine's nc.Write when the connection ends. With a broker that stopped
// reading (a black-holed TCP peer once the socket buffer is full; any
// pending write on a pipe), the keepalive timeout cancels the connection,
// session.connectionEnded calls connection.close, and g.Wait() waits for
// ever: the writer is blocked in Write, and the reader in Read until the
// writer closes nc. The client never reports the loss (Done stays open) and
// Close never returns. connection.close (or a context.AfterFunc in start)
// should expire the deadlines of nc when the connection's context ends:
// the write deadline only after finalFlushTimeout when flushing.
func TestFakeShutdownWithStuckWrite(t *testing.T) {
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
