package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/google/go-cmp/cmp"
)

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

// fakeRcResult returns the next durable delivery result.
func fakeRcResult(t *testing.T, c *mqtt.Client) mqtt.DeliveryResult {
	t.Helper()
	select {
	case r, ok := <-c.DeliveryResults():
		if !ok {
			t.Fatal("DeliveryResults closed")
		}
		return r
	case <-time.After(fakeTimeout):
		t.Fatalf("no delivery result within %v", fakeTimeout)
		return mqtt.DeliveryResult{}
	}
}

// fakeRcNoResult checks, inside a bubble, that no delivery result is ready
// once every goroutine has settled.
func fakeRcNoResult(t *testing.T, c *mqtt.Client) {
	t.Helper()
	synctest.Wait()
	select {
	case r := <-c.DeliveryResults():
		t.Fatalf("unexpected delivery result %+v", r)
	default:
	}
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
// an ID at once, increasing from one call to the next; the outcome arrives
// on DeliveryResults as {ID, nil} only after the PUBACK (QoS 1) or PUBCOMP
// (QoS 2).
func TestFakeDurableResult(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "du", Version: v, KeepAlive: -1}
		c, _, fc := fakeRcClient(t, cfg, &packet.Connack{})
		ctx := context.Background()
		id1, err := c.PublishDurable(ctx, mqtt.Message{Topic: "d", Payload: []byte("1"), QoS: mqtt.AtLeastOnce})
		if err != nil || id1 == 0 {
			t.Fatalf("PublishDurable = %d, %v; want an ID", id1, err)
		}
		pub1 := fc.expectPublish()
		id2, err := c.PublishDurable(ctx, mqtt.Message{Topic: "d", Payload: []byte("2"), QoS: mqtt.ExactlyOnce})
		if err != nil || id2 <= id1 {
			t.Fatalf("second PublishDurable = %d, %v; want an ID above %d", id2, err, id1)
		}
		pub2 := fc.expectPublish()
		fakeRcNoResult(t, c)
		fc.fakeRcAck(packet.PUBACK, pub1.PacketID)
		if diff := cmp.Diff(mqtt.DeliveryResult{ID: id1}, fakeRcResult(t, c)); diff != "" {
			t.Errorf("result (-want +got):\n%s", diff)
		}
		fc.fakeRcAck(packet.PUBREC, pub2.PacketID)
		fc.expectAck(packet.PUBREL)
		fakeRcNoResult(t, c)
		fc.fakeRcAck(packet.PUBCOMP, pub2.PacketID)
		if diff := cmp.Diff(mqtt.DeliveryResult{ID: id2}, fakeRcResult(t, c)); diff != "" {
			t.Errorf("result (-want +got):\n%s", diff)
		}
		fakeRcNoResult(t, c)
	})
}

// TestFakeDurableRefused checks that an MQTT 5.0 PUBACK or PUBREC with a
// failure reason code gives a delivery result whose Err is the
// *ReasonError, and that the message is not sent again [MQTT-4.4.0-2].
func TestFakeDurableRefused(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "dr", Version: mqtt.Version5, KeepAlive: -1}
		c, _, fc := fakeRcClient(t, cfg, &packet.Connack{})
		for _, tc := range []struct {
			qos  mqtt.QoS
			ack  packet.Type
			code packet.ReasonCode
		}{{1, packet.PUBACK, packet.UnspecifiedError}, {2, packet.PUBREC, packet.QuotaExceeded}} {
			id, err := c.PublishDurable(context.Background(), mqtt.Message{Topic: "d", QoS: tc.qos})
			if err != nil {
				t.Fatal(err)
			}
			pub := fc.expectPublish()
			fc.send(&packet.Ack{PacketType: tc.ack, PacketID: pub.PacketID, ReasonCode: tc.code})
			r := fakeRcResult(t, c)
			var re *mqtt.ReasonError
			if r.ID != id || !errors.As(r.Err, &re) || re.Code != tc.code || re.Packet != tc.ack.String() {
				t.Errorf("result = %+v, want ID %d with a *ReasonError %v %v", r, id, tc.ack, tc.code)
			}
			fc.expectNothing()
		}
	})
}

// TestFakeDurableReconnect checks that durable publishes survive a
// reconnection: one in flight is sent again with DUP and its packet
// identifier [MQTT-4.4.0-1], one made while reconnecting is accepted at
// once and sent after it; both outcomes arrive on DeliveryResults.
func TestFakeDurableReconnect(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		cfg := mqtt.Config{ClientID: "dc", Version: v, KeepAlive: -1, SessionExpiry: time.Hour}
		c, b, fc := fakeRcClient(t, cfg, &packet.Connack{})
		ctx := context.Background()
		id1, err := c.PublishDurable(ctx, mqtt.Message{Topic: "d", Payload: []byte("in flight"), QoS: mqtt.AtLeastOnce})
		if err != nil {
			t.Fatal(err)
		}
		pub1 := fc.expectPublish()
		b.SetDialError(errors.New("unreachable"))
		fakeRcDrop(t, c, fc)
		var id2 uint64
		call := fakeAsync(t, func() error {
			var err error
			id2, err = c.PublishDurable(ctx, mqtt.Message{Topic: "d", Payload: []byte("offline"), QoS: mqtt.ExactlyOnce})
			return err
		})
		if !call.returned() || call.err != nil || id2 <= id1 {
			t.Fatalf("PublishDurable while reconnecting: returned %v, ID %d, err %v; want a new ID at once", call.returned(), id2, call.err)
		}
		fakeRcNoResult(t, c)
		fc2 := fakeRcOnline(t, c, b)
		if diff := cmp.Diff(fakeRcResent(pub1, true), fc2.expectPublish()); diff != "" {
			t.Errorf("re-sent PUBLISH (-want +got):\n%s", diff)
		}
		pub2 := fc2.expectPublish()
		if pub2.Dup || string(pub2.Payload) != "offline" {
			t.Errorf("publish made while reconnecting sent as %s", fakebroker.Describe(pub2))
		}
		fc2.fakeRcAck(packet.PUBACK, pub1.PacketID)
		if diff := cmp.Diff(mqtt.DeliveryResult{ID: id1}, fakeRcResult(t, c)); diff != "" {
			t.Errorf("result (-want +got):\n%s", diff)
		}
		fc2.fakeRcAck(packet.PUBREC, pub2.PacketID)
		fc2.expectAck(packet.PUBREL)
		fc2.fakeRcAck(packet.PUBCOMP, pub2.PacketID)
		if diff := cmp.Diff(mqtt.DeliveryResult{ID: id2}, fakeRcResult(t, c)); diff != "" {
			t.Errorf("result (-want +got):\n%s", diff)
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
		fakeRcNoResult(t, c)
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
