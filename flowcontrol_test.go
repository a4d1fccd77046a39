package mqtt_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"testing"
	"testing/synctest"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/google/go-cmp/cmp"
)

// TestFakeQueueWaitAdmittedSent checks that a publish that waited for room
// in the offline queue (QueueWait) is sent as soon as the reconnection
// makes room, without waiting for an acknowledgement of another publish.
//
// Bug: drainWaiting (session_publish.go) calls admitOverflow last: the
// publishes it admits land in s.waiting and stay there until something
// else calls drainWaiting (an acknowledgement). With only QoS 0 traffic
// they are never sent, and their Publish calls wait for ever. Fix: drain
// again after admitOverflow admitted anything (loop until neither sends
// nor admits).
func TestFakeQueueWaitAdmittedSent(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "qa", Version: v, KeepAlive: -1, Queue: mqtt.QueueConfig{MaxMessages: 1}}
		c, b := fakeRcOffline(t, cfg)
		c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte("1"), QoS: mqtt.AtLeastOnce})
		c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte("2"), QoS: mqtt.AtLeastOnce})
		synctest.Wait()
		fc := fakeRcOnline(t, c, b)
		if diff := cmp.Diff([]string{"1", "2"}, fakeRcPayloads(fc, 2, false)); diff != "" {
			t.Fatalf("payloads (-want +got):\n%s", diff)
		}
	})
}

// TestFakeQueueOversizedWaits checks a publish whose payload alone exceeds
// Queue.MaxBytes, made while reconnecting under QueueWait: it can never
// fit, so it must either be sent once the client is connected or fail
// (ErrQueueFull) — not stay pending for ever, which also makes Disconnect
// wait for it until its context ends.
//
// Bug: enqueue and admitOverflow (session_publish.go) keep it in
// s.overflow for good; since it heads the overflow list, nothing behind it
// is admitted either. Fix: admit a message into an empty queue whatever
// its size, or refuse it at once.
func TestFakeQueueOversizedWaits(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "qo", Version: mqtt.Version5, KeepAlive: -1, Queue: mqtt.QueueConfig{MaxBytes: 8}}
		c, b := fakeRcOffline(t, cfg)
		p := c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte("0123456789abcdef"), QoS: mqtt.AtLeastOnce})
		synctest.Wait()
		fc := fakeRcOnline(t, c, b)
		for _, pk := range fakeRcDrain(fc) {
			if pub, ok := pk.(*packet.Publish); ok {
				fc.fakeRcAck(packet.PUBACK, pub.PacketID)
			}
		}
		if !fakeRcDone(p) {
			t.Fatal("a publish larger than Queue.MaxBytes is still pending after the reconnection, and nothing was sent")
		}
		if err := p.Err(); err != nil && !errors.Is(err, mqtt.ErrQueueFull) {
			t.Errorf("publish: %v", err)
		}
	})
}

// fakeRcOffline connects a client configured by cfg, makes the broker
// unreachable and drops the connection: what the client is asked to do
// next waits for a reconnection, which fakeRcOnline lets happen.
func fakeRcOffline(t *testing.T, cfg mqtt.Config) (*mqtt.Client, *fakebroker.Broker) {
	t.Helper()
	c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
	b.SetDialError(errors.New("unreachable"))
	fakeRcDrop(t, c, fc)
	return c, b
}

// fakeRcOnline makes the broker reachable again and accepts the client's
// reconnection with session present 1.
func fakeRcOnline(t *testing.T, c *mqtt.Client, b *fakebroker.Broker) *fakeConn {
	t.Helper()
	b.SetDialError(nil)
	fc, _ := fakeRcAccept(t, b, &packet.Connack{SessionPresent: true})
	return fc
}

// fakeRcPayloads returns the payloads of the next n PUBLISHes the client
// sends. With ack set it acknowledges them (PUBACK; PUBREC, then PUBCOMP
// for the PUBREL) and expects no other packets; without, it expects
// nothing but PUBLISHes.
func fakeRcPayloads(fc *fakeConn, n int, ack bool) []string {
	fc.t.Helper()
	var got []string
	rels := 0 // PUBRELs still to come
	for len(got) < n || rels > 0 {
		switch p := fc.next().(type) {
		case *packet.Publish:
			got = append(got, string(p.Payload))
			switch {
			case !ack:
			case p.QoS == 1:
				fc.fakeRcAck(packet.PUBACK, p.PacketID)
			case p.QoS == 2:
				fc.fakeRcAck(packet.PUBREC, p.PacketID)
				rels++
			}
		case *packet.Ack:
			if p.PacketType != packet.PUBREL || rels == 0 {
				fc.t.Fatalf("fake broker: want PUBLISH, got %s", fakebroker.Describe(p))
			}
			rels--
			fc.fakeRcAck(packet.PUBCOMP, p.PacketID)
		default:
			fc.t.Fatalf("fake broker: want PUBLISH, got %s", fakebroker.Describe(p))
		}
	}
	return got
}

// TestFakeQueueFailMaxMessages checks Queue.MaxMessages with QueueFail:
// while the client reconnects, publishes (of every QoS) queue up to the
// bound; the next one fails at once with ErrQueueFull, synchronously or
// through its Pending. Everything accepted is sent after the reconnection,
// in order, and the queue has room again.
func TestFakeQueueFailMaxMessages(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "qf", Version: v, KeepAlive: -1,
			Queue: mqtt.QueueConfig{MaxMessages: 3, Full: mqtt.QueueFail}}
		c, b := fakeRcOffline(t, cfg)
		bg := context.Background()
		p1 := c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte("1"), QoS: mqtt.AtLeastOnce})
		p2 := c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte("2"), QoS: mqtt.ExactlyOnce})
		p3 := c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte("3"), QoS: mqtt.AtLeastOnce})
		synctest.Wait()
		for _, qos := range []mqtt.QoS{0, 1, 2} {
			call := fakeAsync(t, func() error { return c.Publish(bg, mqtt.Message{Topic: "q", Payload: []byte("x"), QoS: qos}) })
			if !call.returned() {
				t.Fatalf("Publish QoS %d into a full queue did not fail at once", qos)
			}
			if !errors.Is(call.err, mqtt.ErrQueueFull) {
				t.Errorf("Publish QoS %d into a full queue: %v, want ErrQueueFull", qos, call.err)
			}
		}
		p4 := c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte("4"), QoS: mqtt.AtLeastOnce})
		if !fakeRcDone(p4) || !errors.Is(p4.Err(), mqtt.ErrQueueFull) {
			t.Errorf("PublishAsync into a full queue: done %v, err %v; want ErrQueueFull at once", fakeRcDone(p4), p4.Err())
		}
		fakeRcRunning(t, c)

		fc := fakeRcOnline(t, c, b)
		if diff := cmp.Diff([]string{"1", "2", "3"}, fakeRcPayloads(fc, 3, true)); diff != "" {
			t.Errorf("payloads sent after the reconnection (-want +got):\n%s", diff)
		}
		fc.expectNothing()
		for i, p := range []*mqtt.Pending{p1, p2, p3} {
			if err := p.Wait(bg); err != nil {
				t.Errorf("queued publish %d: %v", i+1, err)
			}
		}
		p5 := c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte("5"), QoS: mqtt.AtLeastOnce})
		fakeRcPayloads(fc, 1, true)
		if err := p5.Wait(bg); err != nil {
			t.Errorf("publish after the queue drained: %v", err)
		}
	})
}

// TestFakeQueueFailMaxBytes checks Queue.MaxBytes with QueueFail: a publish
// whose payload would take the queued bytes over the bound fails at once
// with ErrQueueFull, one that fills it exactly is accepted, and the
// accepted ones are sent in order after the reconnection.
func TestFakeQueueFailMaxBytes(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "qb", Version: mqtt.Version5, KeepAlive: -1,
			Queue: mqtt.QueueConfig{MaxBytes: 10, Full: mqtt.QueueFail}}
		c, b := fakeRcOffline(t, cfg)
		var ps []*mqtt.Pending
		for _, payload := range []string{"aaaa", "bbbb", "cccc", "dd", "e"} {
			ps = append(ps, c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte(payload), QoS: mqtt.AtLeastOnce}))
			synctest.Wait()
		}
		for i, wantFull := range []bool{false, false, true, false, true} {
			done := fakeRcDone(ps[i])
			if wantFull && (!done || !errors.Is(ps[i].Err(), mqtt.ErrQueueFull)) || !wantFull && done {
				t.Errorf("publish %d: done %v, err %v; want ErrQueueFull %v", i+1, done, ps[i].Err(), wantFull)
			}
		}
		fc := fakeRcOnline(t, c, b)
		if diff := cmp.Diff([]string{"aaaa", "bbbb", "dd"}, fakeRcPayloads(fc, 3, true)); diff != "" {
			t.Errorf("payloads sent after the reconnection (-want +got):\n%s", diff)
		}
		fc.expectNothing()
		for _, i := range []int{0, 1, 3} {
			if err := ps[i].Wait(context.Background()); err != nil {
				t.Errorf("publish %d: %v", i+1, err)
			}
		}
	})
}

// TestFakeQueueWaitDeadline checks QueueWait (the default): a publish that
// finds the queue full, by count or by bytes, waits until its context
// ends and then returns context.DeadlineExceeded, exactly at the deadline;
// it is not sent after the reconnection. The client keeps running.
func TestFakeQueueWaitDeadline(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		queue mqtt.QueueConfig
	}{
		{"MaxMessages", mqtt.QueueConfig{MaxMessages: 2}},
		{"MaxBytes", mqtt.QueueConfig{MaxBytes: 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) {
				cfg := mqtt.Config{ClientID: "qw", Version: mqtt.Version311, KeepAlive: -1, Queue: tc.queue}
				c, b := fakeRcOffline(t, cfg)
				p1 := c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte("1111"), QoS: mqtt.AtLeastOnce})
				p2 := c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte("2222"), QoS: mqtt.AtLeastOnce})
				for _, qos := range []mqtt.QoS{1, 2} {
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					start := time.Now()
					err := c.Publish(ctx, mqtt.Message{Topic: "q", Payload: []byte("late"), QoS: qos})
					cancel()
					if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 3*time.Second {
						t.Errorf("Publish QoS %d into a full queue: %v after %v, want DeadlineExceeded after 3s", qos, err, time.Since(start))
					}
				}
				fakeRcRunning(t, c)
				fc := fakeRcOnline(t, c, b)
				if diff := cmp.Diff([]string{"1111", "2222"}, fakeRcPayloads(fc, 2, true)); diff != "" {
					t.Errorf("payloads sent after the reconnection (-want +got):\n%s", diff)
				}
				fc.expectNothing()
				for i, p := range []*mqtt.Pending{p1, p2} {
					if err := p.Wait(context.Background()); err != nil {
						t.Errorf("queued publish %d: %v", i+1, err)
					}
				}
			})
		})
	}
}

// TestFakeQueueWaitNothingDropped checks that with QueueWait nothing is
// dropped: publishes beyond the bound wait for room and every one reaches
// the broker after the reconnection, in the order made; a synchronous
// Publish waiting for room completes too.
func TestFakeQueueWaitNothingDropped(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "qn", Version: v, KeepAlive: -1, Queue: mqtt.QueueConfig{MaxMessages: 3}}
		c, b := fakeRcOffline(t, cfg)
		var ps []*mqtt.Pending
		var want []string
		for i := range 6 {
			payload := fmt.Sprint(i + 1)
			want = append(want, payload)
			ps = append(ps, c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte(payload), QoS: mqtt.QoS(1 + i%2)}))
			synctest.Wait()
		}
		want = append(want, "sync")
		call := fakeAsync(t, func() error {
			return c.Publish(context.Background(), mqtt.Message{Topic: "q", Payload: []byte("sync"), QoS: mqtt.AtLeastOnce})
		})
		fakeAdvance(time.Minute)
		for i, p := range ps {
			if fakeRcDone(p) {
				t.Fatalf("publish %d completed while offline: %v", i+1, p.Err())
			}
		}
		if call.returned() {
			t.Fatalf("Publish into a full queue returned while offline: %v", call.err)
		}
		fc := fakeRcOnline(t, c, b)
		if diff := cmp.Diff(want, fakeRcPayloads(fc, len(want), true)); diff != "" {
			t.Errorf("payloads sent after the reconnection (-want +got):\n%s", diff)
		}
		for i, p := range ps {
			if err := p.Wait(context.Background()); err != nil {
				t.Errorf("publish %d: %v", i+1, err)
			}
		}
		if err := call.wait(); err != nil {
			t.Errorf("Publish that waited for room: %v", err)
		}
		fc.expectNothing()
	})
}

// TestFakeQueueFlowControl checks that the queue also bounds publishes
// waiting for the broker's flow control (MQTT 5.0 Receive Maximum): with
// Receive Maximum 1 and room for one message, a third publish fails with
// ErrQueueFull; the queued one goes out when the first is acknowledged
// [MQTT-4.9.0-2].
func TestFakeQueueFlowControl(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		ack := &packet.Connack{}
		ack.Props.ReceiveMaximum = 1
		ack.Props.Set(packet.PropReceiveMaximum)
		cfg := mqtt.Config{ClientID: "fq", Version: mqtt.Version5, KeepAlive: -1,
			Queue: mqtt.QueueConfig{MaxMessages: 1, Full: mqtt.QueueFail}}
		c, _, fc := fakeRcClient(t, cfg, ack)
		p1 := c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte("1"), QoS: mqtt.AtLeastOnce})
		pub1 := fc.expectPublish()
		p2 := c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte("2"), QoS: mqtt.AtLeastOnce})
		p3 := c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte("3"), QoS: mqtt.AtLeastOnce})
		fc.expectNothing()
		if !fakeRcDone(p3) || !errors.Is(p3.Err(), mqtt.ErrQueueFull) {
			t.Errorf("third publish: done %v, err %v; want ErrQueueFull", fakeRcDone(p3), p3.Err())
		}
		fc.fakeRcAck(packet.PUBACK, pub1.PacketID)
		if got := fakeRcPayloads(fc, 1, true); got[0] != "2" {
			t.Errorf("sent %q after the PUBACK, want \"2\"", got[0])
		}
		for i, p := range []*mqtt.Pending{p1, p2} {
			if err := p.Wait(context.Background()); err != nil {
				t.Errorf("publish %d: %v", i+1, err)
			}
		}
	})
}

// TestFakeDurableResult checks PublishDurable without a Store: it returns
// a Pending at once whose ID increases from one call to the next; the
// Pending completes with nil only after the PUBACK (QoS 1) or PUBCOMP
// (QoS 2).
func TestFakeDurableResult(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "du", Version: v, KeepAlive: -1}
		c, _, fc := fakeRcClient(t, cfg, &packet.Connack{})
		ctx := context.Background()
		p1, err := c.PublishDurable(ctx, mqtt.Message{Topic: "d", Payload: []byte("1"), QoS: mqtt.AtLeastOnce})
		if err != nil || p1.ID() == 0 {
			t.Fatalf("PublishDurable = %v, %v; want a Pending with an ID", p1, err)
		}
		pub1 := fc.expectPublish()
		p2, err := c.PublishDurable(ctx, mqtt.Message{Topic: "d", Payload: []byte("2"), QoS: mqtt.ExactlyOnce})
		if err != nil || p2.ID() <= p1.ID() {
			t.Fatalf("second PublishDurable = %v, %v; want an ID above %d", p2, err, p1.ID())
		}
		pub2 := fc.expectPublish()
		if fakeRcDone(p1) || fakeRcDone(p2) {
			t.Fatal("a durable publish completed before its acknowledgement")
		}
		fc.fakeRcAck(packet.PUBACK, pub1.PacketID)
		if err := p1.Wait(ctx); err != nil {
			t.Errorf("QoS 1 durable publish: %v", err)
		}
		fc.fakeRcAck(packet.PUBREC, pub2.PacketID)
		fc.expectAck(packet.PUBREL)
		if fakeRcDone(p2) {
			t.Fatal("the QoS 2 durable publish completed before PUBCOMP")
		}
		fc.fakeRcAck(packet.PUBCOMP, pub2.PacketID)
		if err := p2.Wait(ctx); err != nil {
			t.Errorf("QoS 2 durable publish: %v", err)
		}
		if len(c.Restored()) != 0 {
			t.Errorf("Restored = %d Pendings without a Store", len(c.Restored()))
		}
	})
}

// TestFakeDurableRefused checks that an MQTT 5.0 PUBACK or PUBREC with a
// failure reason code completes the durable publish with the *ReasonError,
// and that the message is not sent again [MQTT-4.4.0-2].
func TestFakeDurableRefused(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "dr", Version: mqtt.Version5, KeepAlive: -1}
		c, _, fc := fakeRcClient(t, cfg, &packet.Connack{})
		for _, tc := range []struct {
			qos  mqtt.QoS
			ack  packet.Type
			code packet.ReasonCode
		}{{1, packet.PUBACK, packet.UnspecifiedError}, {2, packet.PUBREC, packet.QuotaExceeded}} {
			p, err := c.PublishDurable(context.Background(), mqtt.Message{Topic: "d", QoS: tc.qos})
			if err != nil {
				t.Fatal(err)
			}
			pub := fc.expectPublish()
			fc.send(&packet.Ack{PacketType: tc.ack, PacketID: pub.PacketID, ReasonCode: tc.code})
			err = p.Wait(context.Background())
			var re *mqtt.ReasonError
			if !errors.As(err, &re) || re.Code != tc.code || re.Packet != tc.ack.String() {
				t.Errorf("durable publish %d: %v, want a *ReasonError %v %v", p.ID(), err, tc.ack, tc.code)
			}
			fc.expectNothing()
		}
	})
}

// TestFakeDurableReconnect checks that durable publishes survive a
// reconnection: one in flight is sent again with DUP and its packet
// identifier [MQTT-4.4.0-1], one made while reconnecting is accepted at
// once and sent after it; both Pendings complete after their
// acknowledgements.
func TestFakeDurableReconnect(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "dc", Version: v, KeepAlive: -1, SessionExpiry: time.Hour}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		ctx := context.Background()
		p1, err := c.PublishDurable(ctx, mqtt.Message{Topic: "d", Payload: []byte("in flight"), QoS: mqtt.AtLeastOnce})
		if err != nil {
			t.Fatal(err)
		}
		pub1 := fc.expectPublish()
		b.SetDialError(errors.New("unreachable"))
		fakeRcDrop(t, c, fc)
		var p2 *mqtt.Pending
		call := fakeAsync(t, func() error {
			var err error
			p2, err = c.PublishDurable(ctx, mqtt.Message{Topic: "d", Payload: []byte("offline"), QoS: mqtt.ExactlyOnce})
			return err
		})
		if !call.returned() || call.err != nil || p2.ID() <= p1.ID() {
			t.Fatalf("PublishDurable while reconnecting: returned %v, err %v; want a new ID at once", call.returned(), call.err)
		}
		if fakeRcDone(p1) || fakeRcDone(p2) {
			t.Fatal("a durable publish completed while reconnecting")
		}
		fc2 := fakeRcOnline(t, c, b)
		if diff := cmp.Diff(fakeRcResent(pub1, true), fc2.expectPublish()); diff != "" {
			t.Errorf("re-sent PUBLISH (-want +got):\n%s", diff)
		}
		pub2 := fc2.expectPublish()
		if pub2.Dup || string(pub2.Payload) != "offline" {
			t.Errorf("publish made while reconnecting sent as %s", fakebroker.Describe(pub2))
		}
		fc2.fakeRcAck(packet.PUBACK, pub1.PacketID)
		if err := p1.Wait(ctx); err != nil {
			t.Errorf("in-flight durable publish: %v", err)
		}
		fc2.fakeRcAck(packet.PUBREC, pub2.PacketID)
		fc2.expectAck(packet.PUBREL)
		fc2.fakeRcAck(packet.PUBCOMP, pub2.PacketID)
		if err := p2.Wait(ctx); err != nil {
			t.Errorf("durable publish made while reconnecting: %v", err)
		}
		fc2.expectNothing()
	})
}

// TestFakeDurableQoS0 checks that PublishDurable refuses QoS 0, which has
// no acknowledgement to report, before anything is sent.
func TestFakeDurableQoS0(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, _, fc := fakeRcClient(t, mqtt.Config{ClientID: "d0", Version: mqtt.Version5, KeepAlive: -1}, &packet.Connack{})
		var ae *mqtt.ArgumentError
		if _, err := c.PublishDurable(context.Background(), mqtt.Message{Topic: "d"}); !errors.Is(err, mqtt.ErrInvalidArgument) || !errors.As(err, &ae) {
			t.Errorf("PublishDurable QoS 0: %v, want an *ArgumentError", err)
		}
		fc.expectNothing()
	})
}

// TestFakeQueueMaxInflight: Config.MaxInflight bounds the QoS 1 publishes in
// flight when the broker announces no Receive Maximum (3.1.1); the next one
// goes out when an acknowledgement frees a place, in order.
func TestFakeQueueMaxInflight(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "m", Version: mqtt.Version311, MaxInflight: 2, KeepAlive: -1}, &packet.Connack{})
		var pending []*mqtt.Pending
		for i := range 3 {
			pending = append(pending, c.PublishAsync(mqtt.Message{Topic: "t", Payload: []byte{byte(i)}, QoS: mqtt.AtLeastOnce}))
		}
		first, second := fc.expectPublish(), fc.expectPublish()
		fc.expectNothing()
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: first.PacketID})
		third := fc.expectPublish()
		if third.Payload[0] != 2 || second.Payload[0] != 1 {
			t.Fatalf("publishes out of order: %v %v %v", first.Payload, second.Payload, third.Payload)
		}
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: second.PacketID})
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: third.PacketID})
		for i, p := range pending {
			if err := p.Wait(context.Background()); err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		}
	})
}

// The stalled-consumer tests allow the live heap to grow beyond
// Config.MemoryLimit by a few messages and a few MiB:
//   - at the end of the stall, when nothing moves any more, by two messages
//     (the one waiting for room and the one the reader holds) and
//     settledSlack for the read and write buffers;
//   - at its peak, sampled while the flood runs, by four messages and
//     peakSlack, since a collection counts as live what is allocated while
//     it marks: under DropNewest, messages dropped as fast as they arrive.
const (
	settledSlack = 2 << 20
	peakSlack    = 4 << 20
)

// TestMosquittoStalledConsumerMemory stalls the application for five
// keepalive periods while a publisher floods it through mosquitto, whose
// in-flight window and queue are unlimited, with 64-byte and 1 MiB
// messages. The heap, sampled throughout, must stay within the client's
// MemoryLimit plus a small constant; the connection must survive (no false
// keepalive timeout, no reconnection); and once the application reads
// again, every QoS 1/2 message (and every QoS 0 message under Block) must
// arrive, in order, while every QoS 0 message under DropNewest either
// arrives or is counted as dropped. The test is not parallel so that the
// heap it measures is its own.
func TestMosquittoStalledConsumerMemory(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Extra: []string{
		"max_inflight_messages 0", "max_queued_messages 0", "max_queued_bytes 0"}})
	const keepAlive = time.Second
	cases := []struct {
		name   string
		v      mqtt.ProtocolVersion
		qos    mqtt.QoS
		policy mqtt.OverflowPolicy
		size   int
		n      int
	}{
		{"64B/qos0-drop", mqtt.Version5, 0, mqtt.DropNewest, 64, 50000},
		{"64B/qos0-block", mqtt.Version5, 0, mqtt.Block, 64, 50000},
		{"64B/qos1", mqtt.Version311, 1, mqtt.DropNewest, 64, 50000},
		{"4KiB/qos2", mqtt.Version311, 2, mqtt.DropNewest, 4096, 5000},
		{"1MiB/qos0-drop", mqtt.Version5, 0, mqtt.DropNewest, 1 << 20, 40},
		{"1MiB/qos1", mqtt.Version5, 1, mqtt.DropNewest, 1 << 20, 40},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			id := uniqueID(t)
			// MessageBuffer does not bound QoS 0 here: MemoryLimit does.
			// A generous PingTimeout: what is tested is that the stall costs
			// neither memory nor the connection, not how fast a loaded
			// machine answers pings.
			sub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-sub", Version: tc.v,
				KeepAlive: keepAlive, PingTimeout: 5 * time.Second, QoS0Overflow: tc.policy, MessageBuffer: 1 << 20})
			s, err := sub.Subscribe(ctx, id+"/flood", tc.qos)
			if err != nil {
				t.Fatal(err)
			}
			before := liveHeap()
			sampler := sampleHeap()
			// The publisher runs in a process of its own, so that the heap
			// measured here is the subscriber's.
			published := floodFrom(ctx, t, b.URL(), id+"/flood", tc.v, tc.qos, tc.size, tc.n)
			// The application does not read for five keepalive periods.
			select {
			case <-sub.Done():
				t.Fatalf("subscriber lost its connection while stalled: %v", sub.Err())
			case <-time.After(5 * keepAlive):
			}
			peak := sampler.stop() - before
			settled := liveHeap() - before
			st := sub.Stats()
			t.Logf("heap growth while stalled: peak %.1f MiB, at the end %.1f MiB (MemoryLimit 8 MiB); held %d bytes, dropped %d, deferred %d",
				float64(peak)/(1<<20), float64(settled)/(1<<20), st.HeldBytes[0], st.Dropped, st.Deferred)
			const limit = 8 << 20
			if bound := int64(limit + 2*tc.size + settledSlack); settled > bound {
				t.Errorf("heap grew by %.1f MiB over the stall; want at most %.1f MiB: MemoryLimit, two messages and %d MiB",
					float64(settled)/(1<<20), float64(bound)/(1<<20), settledSlack>>20)
			}
			if bound := int64(limit + 4*tc.size + peakSlack); peak > bound {
				t.Errorf("heap grew by %.1f MiB at its peak while the consumer stalled; want at most %.1f MiB: MemoryLimit, four messages and %d MiB",
					float64(peak)/(1<<20), float64(bound)/(1<<20), peakSlack>>20)
			}
			if st.HeldBytes[0] > 8<<20+int64(tc.size)+4096 {
				t.Errorf("Stats().HeldBytes[0] = %d, more than MemoryLimit and one message", st.HeldBytes[0])
			}

			got, next := 0, uint32(0)
			for got < tc.n && (tc.qos > 0 || tc.policy == mqtt.Block || uint64(got)+sub.Stats().Dropped < uint64(tc.n)) {
				var m mqtt.Message
				select {
				case m = <-s.Messages():
				case err := <-published:
					if err != nil {
						t.Fatal(err)
					}
					published = nil // it finished; messages may still be on their way
					continue
				case <-ctx.Done():
					t.Fatalf("%d of %d messages arrived (dropped %d); client error %v, stats %+v, events %s", got, tc.n, sub.Stats().Dropped, sub.Err(), sub.Stats(), drainEvents(sub))
				}
				seq := binary.BigEndian.Uint32(m.Payload)
				if seq < next || (seq != next && (tc.qos > 0 || tc.policy == mqtt.Block)) {
					t.Fatalf("message %d arrived when %d was expected", seq, next)
				}
				if len(m.Payload) != tc.size || !bytes.Equal(m.Payload[4:], make([]byte, tc.size-4)) {
					t.Fatalf("message %d: payload of %d bytes, want %d zero-padded", seq, len(m.Payload), tc.size)
				}
				next = seq + 1
				got++
			}
			if published != nil {
				if err := <-published; err != nil {
					t.Fatal(err)
				}
			}
			st = sub.Stats()
			if tc.qos > 0 || tc.policy == mqtt.Block {
				if st.Dropped != 0 || st.Deferred != 0 {
					t.Errorf("Dropped = %d, Deferred = %d; want 0", st.Dropped, st.Deferred)
				}
			} else if uint64(got)+st.Dropped != uint64(tc.n) {
				t.Errorf("%d received + %d dropped, want %d", got, st.Dropped, tc.n)
			}
			if st.Connects != 1 || st.ConnectionLosses != 0 {
				t.Errorf("the subscriber connected %d times and lost %d connections; the stall must not cost the connection", st.Connects, st.ConnectionLosses)
			}
		})
	}
}

// liveHeap returns the bytes of heap objects found live by a collection,
// not counting what other goroutines allocate after it.
func liveHeap() int64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// heapSampler records the largest live heap seen, sampling every 100 ms.
type heapSampler struct {
	done chan struct{}
	peak chan int64
}

func sampleHeap() *heapSampler {
	h := &heapSampler{done: make(chan struct{}), peak: make(chan int64, 1)}
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		peak := liveHeap()
		for {
			select {
			case <-tick.C:
				peak = max(peak, liveHeap())
			case <-h.done:
				h.peak <- max(peak, liveHeap())
				return
			}
		}
	}()
	return h
}

// stop ends the sampling and returns the peak.
func (h *heapSampler) stop() int64 {
	close(h.done)
	return <-h.peak
}

// TestMosquittoKeepAliveWhileStalled stalls the application for ten
// keepalive intervals (keepalive 1 s; mosquitto closes a connection after
// 1.5 intervals of silence) while a publisher floods it, with a memory
// limit small enough that the client holds reading back: QoS 0 under
// OverflowPolicy Block, and QoS 1. The client must keep the connection
// (keepalive PINGREQs go out although their answers sit unread, and the
// client does not time out the broker for answers it chose not to read),
// and every message must then arrive in order.
func TestMosquittoKeepAliveWhileStalled(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Extra: []string{"max_inflight_messages 0", "max_queued_messages 0"}})
	const (
		keepAlive = time.Second
		n         = 2000
		size      = 4096
	)
	for _, ver := range versions {
		for _, tc := range []struct {
			name   string
			qos    mqtt.QoS
			policy mqtt.OverflowPolicy
		}{{"qos0-block", 0, mqtt.Block}, {"qos1", 1, mqtt.DropNewest}} {
			t.Run(ver.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				id := uniqueID(t)
				// The broker must hear from the client every interval; a
				// generous PingTimeout keeps a loaded machine's slow answers
				// from ending the connection on the client's side.
				sub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-sub", Version: ver.v,
					KeepAlive: keepAlive, PingTimeout: 5 * time.Second, QoS0Overflow: tc.policy, MemoryLimit: 64 << 10})
				s, err := sub.Subscribe(ctx, id+"/flood", tc.qos)
				if err != nil {
					t.Fatal(err)
				}
				pub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-pub", Version: ver.v})
				published := make(chan error, 1)
				go func() {
					payload := make([]byte, size)
					for i := range n {
						binary.BigEndian.PutUint32(payload, uint32(i))
						if err := pub.Publish(ctx, mqtt.Message{Topic: id + "/flood", Payload: payload, QoS: tc.qos}); err != nil {
							published <- err
							return
						}
					}
					published <- nil
				}()
				select {
				case <-sub.Done():
					t.Fatalf("subscriber stopped while stalled: %v", sub.Err())
				case <-time.After(10 * keepAlive):
				}
				if st := sub.Stats(); st.ConnectionLosses != 0 {
					t.Fatalf("the subscriber lost its connection %d times while stalled: %s", st.ConnectionLosses, drainEvents(sub))
				}
				for i := range n {
					var m mqtt.Message
					select {
					case m = <-s.Messages():
					case <-ctx.Done():
						t.Fatalf("message %d of %d did not arrive; stats %+v, events %s", i, n, sub.Stats(), drainEvents(sub))
					}
					if got := binary.BigEndian.Uint32(m.Payload); got != uint32(i) {
						t.Fatalf("message %d arrived when %d was expected", got, i)
					}
				}
				if err := <-published; err != nil {
					t.Fatal(err)
				}
				st := sub.Stats()
				if st.Connects != 1 || st.ConnectionLosses != 0 || st.Dropped != 0 || st.Deferred != 0 {
					t.Errorf("stats %+v: want one connection, nothing lost, dropped or deferred", st)
				}
			})
		}
	}
}

// TestFakeAcksFlowWhileMessagesAreHeld: when the application holds ReceiveMaximum
// unacknowledged messages, session.receive sets pauseInflight and stops
// taking packets from the reader, on MQTT 5.0 connections too, although
// its comment says the pause is what a 3.1.1 client has instead of Receive
// Maximum. Over 5.0 the broker's flow control already stops QoS 1 and 2
// messages, so the pause only stalls what must go on while the application
// is not reading: PUBACKs for the client's own
// publishes, PINGRESP, QoS 0 messages for other subscriptions. It also makes
// the Receive Maximum exceeded check (0x93) unreachable for QoS 1.
func TestFakeAcksFlowWhileMessagesAreHeld(t *testing.T) {
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

// TestFakeDeferredWhileCallWaits checks what happens when received QoS 1
// messages reach MemoryLimit while a call waits for the broker (here a QoS
// 1 publish from the receive loop): the client keeps reading, so the call
// completes; the message that does not fit, and every later one on the
// connection, is left unacknowledged (Stats.Deferred, one EventOverflow
// wrapping ErrOverflow), while the ones before it are acknowledged as the
// application takes them. Once the application has caught up, the client
// sends DISCONNECT and reconnects at once, resuming the session, and the
// broker sends the deferred messages again: every message arrives once, in
// order.
func TestFakeDeferredWhileCallWaits(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "def", Version: v, KeepAlive: -1, SessionExpiry: time.Hour, MemoryLimit: 1}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		sub := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "in/#", QoS: 1})

		reply := c.PublishAsync(mqtt.Message{Topic: "reply", QoS: mqtt.AtLeastOnce})
		rp := fc.expectPublish()
		// MemoryLimit 1 holds one message: 1 is held, 2 and 3 are deferred.
		for id := uint16(1); id <= 3; id++ {
			fc.send(&packet.Publish{Topic: "in/x", QoS: 1, PacketID: id, Payload: []byte{byte(id)}})
		}
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: rp.PacketID})
		if err := reply.Wait(context.Background()); err != nil {
			t.Fatalf("the publish waiting while messages overflowed: %v", err)
		}
		ev := fakeRcExpectEvent(t, c, mqtt.EventOverflow)
		if !errors.Is(ev.Err, mqtt.ErrOverflow) {
			t.Errorf("EventOverflow.Err = %v, want ErrOverflow", ev.Err)
		}
		if st := c.Stats(); st.Deferred != 2 {
			t.Errorf("Stats().Deferred = %d, want 2", st.Deferred)
		}
		fc.expectNothing() // no PUBACK for 2 or 3

		if m := fakeRecv(t, sub.Messages()); m.Payload[0] != 1 {
			t.Fatalf("first message has payload %d", m.Payload[0])
		}
		if a := fc.expectAck(packet.PUBACK); a.PacketID != 1 {
			t.Fatalf("PUBACK for %d, want 1", a.PacketID)
		}
		// Caught up: DISCONNECT (the will stays unpublished), then at once a
		// new connection that resumes the session.
		if got := fc.expectClosed(); len(got) != 1 || got[0].Type() != packet.DISCONNECT {
			t.Fatalf("packets before the connection was replaced: %v, want one DISCONNECT", got)
		}
		lost := fakeRcExpectEvent(t, c, mqtt.EventConnectionLost)
		if !errors.Is(lost.Err, mqtt.ErrOverflow) {
			t.Errorf("EventConnectionLost.Err = %v, want ErrOverflow", lost.Err)
		}
		if e := fakeRcExpectEvent(t, c, mqtt.EventReconnecting); e.Delay != 0 {
			t.Errorf("reconnect after catching up waits %v, want 0", e.Delay)
		}
		fc2, cp := fakeRcAccept(t, b, &packet.Connack{SessionPresent: true})
		if cp.CleanStart {
			t.Error("the new connection does not resume the session")
		}
		fakeRcExpectEvent(t, c, mqtt.EventConnected)
		for id := uint16(2); id <= 3; id++ {
			fc2.send(&packet.Publish{Topic: "in/x", QoS: 1, PacketID: id, Dup: true, Payload: []byte{byte(id)}})
		}
		for id := uint16(2); id <= 3; id++ {
			if m := fakeRecv(t, sub.Messages()); m.Payload[0] != byte(id) {
				t.Fatalf("message %d arrived when %d was expected", m.Payload[0], id)
			}
			if a := fc2.expectAck(packet.PUBACK); a.PacketID != id {
				t.Fatalf("PUBACK for %d, want %d", a.PacketID, id)
			}
		}
		fc2.expectNothing()
		if st := c.Stats(); st.Connects != 2 || st.Dropped != 0 {
			t.Errorf("Stats: %d connects, %d dropped; want 2 and 0", st.Connects, st.Dropped)
		}
	})
}

// TestFakeHeldBackWithoutWaitingCall checks that received QoS 1 messages
// over MemoryLimit, with no call waiting for the broker, hold reading back
// instead (nothing deferred, no reconnection), and that a call made while
// the reading is held back still completes: the client reads on, deferring
// what does not fit.
func TestFakeHeldBackWithoutWaitingCall(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "hb", Version: mqtt.Version311, KeepAlive: -1, MemoryLimit: 1}
		c, _, fc := fakeRcClient(t, cfg, &packet.Connack{})
		sub := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "in/#", QoS: 1})
		var flood []packet.Packet
		for id := uint16(1); id <= 20; id++ {
			flood = append(flood, &packet.Publish{Topic: "in/x", QoS: 1, PacketID: id, Payload: []byte{byte(id)}})
		}
		sent := fc.sendAsync(flood...)
		fakeAdvance(time.Minute)
		select {
		case err := <-sent:
			t.Fatalf("the broker wrote all 20 messages (%v) while the client should hold reading back", err)
		default:
		}
		if st := c.Stats(); st.Deferred != 0 {
			t.Fatalf("Deferred = %d with no call waiting", st.Deferred)
		}
		// A ping now must be answered: reading resumes.
		pinged := make(chan error, 1)
		go func() {
			_, err := c.Ping(context.Background())
			pinged <- err
		}()
		fc.expect(packet.PINGREQ)
		answered := fc.sendAsync(&packet.Pingresp{})
		if err := <-pinged; err != nil {
			t.Fatalf("Ping while reading was held back: %v", err)
		}
		<-answered
		<-sent
		if st := c.Stats(); st.Deferred == 0 {
			t.Error("nothing was deferred, although the messages did not fit while a call waited")
		}
		if m := fakeRecv(t, sub.Messages()); m.Payload[0] != 1 {
			t.Fatalf("first message has payload %d", m.Payload[0])
		}
	})
}

// TestMosquittoReplyFromReceiveLoop is the most common way services use
// MQTT: take a message from the subscription, publish a reply at QoS 1 and
// wait for its PUBACK, take the next one. A publisher floods the
// subscription with QoS 1 messages and, alongside, QoS 0 messages, while
// mosquitto's in-flight window is 20 (its default), 1000 or unlimited, so
// the broker sends far more unacknowledged messages than the client's
// Receive Maximum (mosquitto 2.0 overshoots it on MQTT 5.0 too). Every
// reply must be acknowledged while the application waits inside the loop,
// no QoS 1 message may be lost, and the connection must be kept.
func TestMosquittoReplyFromReceiveLoop(t *testing.T) {
	t.Parallel()
	const (
		n     = 5000 // QoS 1 messages
		n0    = 5000 // QoS 0 messages alongside
		limit = 20 * time.Second
	)
	for _, inflight := range []int{20, 1000, 0} {
		b := brokertest.Start(t, brokertest.Options{Extra: []string{
			fmt.Sprintf("max_inflight_messages %d", inflight),
			"max_queued_messages 0", // no broker-side drops: a loss is the client's
		}})
		for _, ver := range versions {
			t.Run(fmt.Sprintf("inflight%d/%s", inflight, ver.name), func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), 2*limit)
				defer cancel()
				id := uniqueID(t)
				sub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-sub", Version: ver.v,
					ReceiveMaximum: 16})
				s, err := sub.Subscribe(ctx, id+"/flood/#", mqtt.AtLeastOnce)
				if err != nil {
					t.Fatal(err)
				}
				pub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-pub", Version: ver.v})
				flood := func(qos mqtt.QoS, count int) chan error {
					done := make(chan error, 1)
					go func() {
						payload := make([]byte, 64)
						for i := range count {
							binary.BigEndian.PutUint32(payload, uint32(i))
							m := mqtt.Message{Topic: fmt.Sprintf("%s/flood/%d", id, qos), Payload: payload, QoS: qos}
							if err := pub.PublishAsync(m).Wait(ctx); err != nil {
								done <- fmt.Errorf("publish %d at %v: %w", i, qos, err)
								return
							}
						}
						done <- nil
					}()
					return done
				}
				flood1, flood0 := flood(mqtt.AtLeastOnce, n), flood(mqtt.AtMostOnce, n0)

				// The receive loop: every message is answered with a QoS 1
				// publish that is waited for before the next is taken.
				deadline := time.After(limit)
				var got1, got0, replies int
				next1 := uint32(0)
				// The loop ends when every QoS 1 message arrived and every QoS 0
				// one either arrived or was dropped and counted by the client
				// (the broker is configured to drop none).
				for got1 < n || uint64(got0)+sub.Stats().Dropped < n0 {
					var m mqtt.Message
					select {
					case m = <-s.Messages():
					case <-deadline:
						t.Fatalf("after %v: %d of %d QoS 1 messages, %d QoS 0, %d replies; stats %+v", limit, got1, n, got0, replies, sub.Stats())
					}
					seq := binary.BigEndian.Uint32(m.Payload)
					if m.QoS == mqtt.AtLeastOnce {
						if seq != next1 {
							t.Fatalf("QoS 1 message %d arrived when %d was expected", seq, next1)
						}
						next1++
						got1++
					} else {
						got0++
					}
					rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
					err := sub.Publish(rctx, mqtt.Message{Topic: id + "/reply", Payload: m.Payload[:4], QoS: mqtt.AtLeastOnce})
					rcancel()
					if err != nil {
						t.Fatalf("reply %d (after %d QoS 1, %d QoS 0 messages): %v; stats %+v", replies, got1, got0, err, sub.Stats())
					}
					replies++
				}
				for _, f := range []chan error{flood1, flood0} {
					if err := <-f; err != nil {
						t.Fatal(err)
					}
				}
				st := sub.Stats()
				t.Logf("%d QoS 1 and %d QoS 0 received, %d replies acknowledged; stats: dropped %d, receive maximum exceeded %d",
					got1, got0, replies, st.Dropped, st.ReceiveMaximumExceeded)
				if st.Connects != 1 {
					t.Errorf("the subscriber connected %d times; want 1 (no reconnection)", st.Connects)
				}
				if uint64(got0)+st.Dropped != n0 {
					t.Errorf("QoS 0: %d received + %d dropped, want %d", got0, st.Dropped, n0)
				}
				if st.Deferred != 0 {
					t.Errorf("%d QoS 1 messages deferred; the memory limit was never near", st.Deferred)
				}
			})
		}
	}
}

// TestMosquittoReplyFromReceiveLoopOverflow is the receive loop of
// TestMosquittoReplyFromReceiveLoop with a memory limit far below what the
// broker sends at once (mosquitto with an unlimited in-flight window sends
// all 2,000 messages of 4 KiB; MemoryLimit is 256 KiB). While the loop
// waits for its reply's PUBACK, the client keeps reading and defers what
// does not fit (EventOverflow, Stats.Deferred); once the loop has caught
// up, it reconnects, resuming the persistent session, and mosquitto sends
// the deferred messages again. Every reply is acknowledged, and every
// message arrives exactly once, in order.
func TestMosquittoReplyFromReceiveLoopOverflow(t *testing.T) {
	t.Parallel()
	const (
		n    = 2000
		size = 4096
	)
	b := brokertest.Start(t, brokertest.Options{Extra: []string{"max_inflight_messages 0", "max_queued_messages 0"}})
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			id := uniqueID(t)
			sub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-sub", Version: ver.v,
				SessionExpiry: time.Hour, MemoryLimit: 256 << 10,
				Reconnect: mqtt.ReconnectConfig{MinDelay: 10 * time.Millisecond}})
			s, err := sub.Subscribe(ctx, id+"/flood", mqtt.AtLeastOnce)
			if err != nil {
				t.Fatal(err)
			}
			published := floodFrom(ctx, t, b.URL(), id+"/flood", ver.v, mqtt.AtLeastOnce, size, n)
			for i := range n {
				var m mqtt.Message
				select {
				case m = <-s.Messages():
				case <-ctx.Done():
					t.Fatalf("message %d of %d did not arrive; stats %+v", i, n, sub.Stats())
				}
				if seq := binary.BigEndian.Uint32(m.Payload); seq != uint32(i) {
					t.Fatalf("message %d arrived when %d was expected", seq, i)
				}
				rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
				err := sub.Publish(rctx, mqtt.Message{Topic: id + "/reply", Payload: m.Payload[:4], QoS: mqtt.AtLeastOnce})
				rcancel()
				if err != nil {
					t.Fatalf("reply %d: %v; stats %+v", i, err, sub.Stats())
				}
			}
			if err := <-published; err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-s.Messages():
				t.Fatalf("an extra message %d arrived", binary.BigEndian.Uint32(m.Payload))
			case <-time.After(200 * time.Millisecond):
			}
			st := sub.Stats()
			t.Logf("%d messages and replies; %d deferred, %d connections", n, st.Deferred, st.Connects)
			if st.Deferred == 0 || st.Connects < 2 {
				t.Errorf("Deferred = %d, Connects = %d: the memory limit was never reached", st.Deferred, st.Connects)
			}
			var overflow bool
			for len(sub.Events()) > 0 {
				if e := <-sub.Events(); e.Kind == mqtt.EventOverflow && errors.Is(e.Err, mqtt.ErrOverflow) {
					overflow = true
				}
			}
			if !overflow && st.EventsDropped == 0 {
				t.Error("no EventOverflow")
			}
		})
	}
}
