package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestMosquittoPublishSubscribeEachQoS(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	for _, ver := range versions {
		for _, qos := range []mqtt.QoS{0, 1, 2} {
			t.Run(fmt.Sprintf("%s/qos%d", ver.name, qos), func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				id := uniqueID(t)
				sub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-sub", Version: ver.v})
				pub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-pub", Version: ver.v})
				if got := sub.Connection().Version; got != ver.v {
					t.Fatalf("ProtocolVersion = %v, want %v", got, ver.v)
				}
				s, err := sub.Subscribe(ctx, id+"/+/temp", qos)
				if err != nil {
					t.Fatalf("Subscribe: %v", err)
				}
				if diff := cmp.Diff([]mqtt.FilterResult{{Filter: id + "/+/temp", Code: mqtt.ReasonCode(qos)}}, s.Granted(), ignoreAck); diff != "" {
					t.Errorf("Granted (-want +got):\n%s", diff)
				}
				const n = 50
				for i := range n {
					m := mqtt.Message{Topic: fmt.Sprintf("%s/%d/temp", id, i), Payload: []byte(fmt.Sprint(i)), QoS: qos}
					if err := pub.Publish(ctx, m); err != nil {
						t.Fatalf("Publish %d: %v", i, err)
					}
				}
				for i := range n {
					got := receive(t, s.Messages())
					want := mqtt.Message{Topic: fmt.Sprintf("%s/%d/temp", id, i), Payload: []byte(fmt.Sprint(i)), QoS: qos}
					if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(mqtt.Message{}, "SubscriptionIDs"), ignoreAck); diff != "" {
						t.Fatalf("message %d (-want +got):\n%s", i, diff)
					}
				}
				if err := pub.Disconnect(ctx); err != nil {
					t.Errorf("Disconnect: %v", err)
				}
				if err := pub.Err(); !errors.Is(err, mqtt.ErrClosed) {
					t.Errorf("Err after Disconnect = %v, want ErrClosed", err)
				}
			})
		}
	}
}

func TestMosquittoRetained(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			id := uniqueID(t)
			pub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-pub", Version: ver.v})
			if err := pub.Publish(ctx, mqtt.Message{Topic: id + "/state", Payload: []byte("on"), QoS: 1, Retain: true}); err != nil {
				t.Fatal(err)
			}
			sub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-sub", Version: ver.v})
			s, err := sub.Subscribe(ctx, id+"/#", 1)
			if err != nil {
				t.Fatal(err)
			}
			got := receive(t, s.Messages())
			if got.Topic != id+"/state" || string(got.Payload) != "on" || !got.Retain {
				t.Fatalf("got %v retain=%t payload %q; want the retained message", got.Topic, got.Retain, got.Payload)
			}
			// A live publish arrives without the retain flag [MQTT-3.3.1-9].
			if err := pub.Publish(ctx, mqtt.Message{Topic: id + "/state", Payload: []byte("off"), QoS: 1, Retain: true}); err != nil {
				t.Fatal(err)
			}
			if got := receive(t, s.Messages()); got.Retain || string(got.Payload) != "off" {
				t.Fatalf("live message retain=%t payload %q; want retain=false, off", got.Retain, got.Payload)
			}
			// An empty retained payload clears it [MQTT-3.3.1-10].
			if err := pub.Publish(ctx, mqtt.Message{Topic: id + "/state", QoS: 1, Retain: true}); err != nil {
				t.Fatal(err)
			}
			receive(t, s.Messages())
			late := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-late", Version: ver.v})
			ls, err := late.Subscribe(ctx, id+"/#", 1)
			if err != nil {
				t.Fatal(err)
			}
			expectNone(t, ls.Messages(), 200*time.Millisecond)
		})
	}
}

// TestFakePublishQoS0 checks the PUBLISH of a QoS 0 message: no packet
// identifier [MQTT-2.2.1-2], DUP 0 [MQTT-3.3.1-2], the retain flag, topic and
// payload; and that Publish returns without any acknowledgement.
func TestFakePublishQoS0(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "p0", Version: v}, &packet.Connack{})
		if err := c.Publish(context.Background(), mqtt.Message{Topic: "a/b", Payload: []byte("zero"), Retain: true}); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		got := fc.expectPublish()
		want := &packet.Publish{Topic: "a/b", Payload: []byte("zero"), Retain: true}
		if diff := cmp.Diff(want, got, ignoreAck); diff != "" {
			t.Errorf("PUBLISH (-want +got):\n%s", diff)
		}
	})
}

// TestFakePublishQoS1 checks the PUBLISH of a QoS 1 message (a non-zero
// packet identifier [MQTT-2.2.1-3], QoS 1, DUP 0 on first delivery
// [MQTT-3.3.1-1], retain, MQTT 5.0 properties) and that Publish returns only
// after the PUBACK [MQTT-4.3.2-1].
func TestFakePublishQoS1(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, wire packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "p1", Version: v}, &packet.Connack{})
		m := mqtt.Message{Topic: "sensors/1", Payload: []byte("21.5"), QoS: mqtt.AtLeastOnce, Retain: true,
			ContentType: "text/plain", Expiry: 90 * time.Second,
			UserProperties: []mqtt.UserProperty{{Key: "unit", Value: "C"}}}
		call := fakeAsync(t, func() error { return c.Publish(context.Background(), m) })
		got := fc.expectPublish()
		if got.PacketID == 0 {
			t.Fatal("QoS 1 PUBLISH with packet identifier 0")
		}
		want := &packet.Publish{Topic: "sensors/1", Payload: []byte("21.5"), QoS: 1, Retain: true, PacketID: got.PacketID}
		if wire == packet.V5 {
			want.Props.ContentType = "text/plain"
			want.Props.Set(packet.PropContentType)
			want.Props.MessageExpiry = 90
			want.Props.Set(packet.PropMessageExpiry)
			want.Props.User = []packet.UserProperty{{Key: "unit", Value: "C"}}
		}
		if diff := cmp.Diff(want, got, ignoreAck); diff != "" {
			t.Errorf("PUBLISH (-want +got):\n%s", diff)
		}
		fakeAdvance(time.Second)
		if call.returned() {
			t.Fatal("Publish returned before PUBACK")
		}
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: got.PacketID})
		if err := call.wait(); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		fc.expectNothing()
	})
}

// TestFakePublishQoS1Refused checks that an MQTT 5.0 PUBACK with a failure
// reason code gives a *ReasonError with the code and reason string, and
// that a success code such as No matching subscribers (0x10) is no error.
func TestFakePublishQoS1Refused(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "p1", Version: mqtt.Version5}, &packet.Connack{})
		pub := c.PublishAsync(mqtt.Message{Topic: "secret/x", QoS: mqtt.AtLeastOnce})
		p := fc.expectPublish()
		ack := &packet.Ack{PacketType: packet.PUBACK, PacketID: p.PacketID, ReasonCode: packet.NotAuthorized}
		ack.Props.ReasonString = "acl"
		ack.Props.Set(packet.PropReasonString)
		fc.send(ack)
		err := pub.Wait(context.Background())
		var re *mqtt.ReasonError
		if !errors.As(err, &re) {
			t.Fatalf("Publish error = %v, want a *mqtt.ReasonError", err)
		}
		if diff := cmp.Diff(mqtt.ReasonError{Packet: "PUBACK", Code: packet.NotAuthorized, Reason: "acl"}, *re); diff != "" {
			t.Errorf("ReasonError (-want +got):\n%s", diff)
		}

		pub = c.PublishAsync(mqtt.Message{Topic: "nobody/listens", QoS: mqtt.AtLeastOnce})
		p = fc.expectPublish()
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: p.PacketID, ReasonCode: packet.NoMatchingSubscribers})
		if err := pub.Wait(context.Background()); err != nil {
			t.Errorf("Publish answered with No matching subscribers = %v, want nil", err)
		}
		if err := c.Err(); err != nil {
			t.Errorf("Err = %v; a refused publish must not end the connection", err)
		}
	})
}

// TestFakePublishQoS2 checks the QoS 2 exchange [MQTT-4.3.3-*]: PUBLISH with
// QoS 2, PUBREC, then PUBREL with the same packet identifier and fixed header
// flags 0010 [MQTT-3.6.1-1], PUBCOMP, and only then does Publish return.
func TestFakePublishQoS2(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, bc := fakeClientConn(t, mqtt.Config{ClientID: "p2", Version: v}, &packet.Connack{})
		call := fakeAsync(t, func() error {
			return c.Publish(context.Background(), mqtt.Message{Topic: "orders", Payload: []byte("#1"), QoS: mqtt.ExactlyOnce})
		})
		p := bc.ExpectPublish(t)
		want := &packet.Publish{Topic: "orders", Payload: []byte("#1"), QoS: 2, PacketID: p.PacketID}
		if diff := cmp.Diff(want, p, ignoreAck); diff != "" || p.PacketID == 0 {
			t.Fatalf("PUBLISH (-want +got):\n%s", diff)
		}
		fakeAdvance(time.Second)
		if call.returned() {
			t.Fatal("Publish returned before PUBREC")
		}
		bc.Send(t, &packet.Ack{PacketType: packet.PUBREC, PacketID: p.PacketID})
		// The PUBREL's bytes: type 6, flags 0010, remaining length 2, the ID.
		raw := bc.ReadRaw(t, 4)
		if want := []byte{0x62, 0x02, byte(p.PacketID >> 8), byte(p.PacketID)}; !cmp.Equal(want, raw) {
			t.Fatalf("PUBREL bytes = % x, want % x", raw, want)
		}
		fakeAdvance(time.Second)
		if call.returned() {
			t.Fatal("Publish returned before PUBCOMP")
		}
		bc.Send(t, &packet.Ack{PacketType: packet.PUBCOMP, PacketID: p.PacketID})
		if err := call.wait(); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	})
}

// TestFakePublishQoS2Refused checks that a PUBREC with a failure code ends
// the exchange (PUBREL answers only a PUBREC below 0x80 [MQTT-4.3.3-4]):
// Publish fails with a *ReasonError, no PUBREL is sent and the packet
// identifier is free again.
func TestFakePublishQoS2Refused(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "p2", Version: mqtt.Version5}, &packet.Connack{})
		pub := c.PublishAsync(mqtt.Message{Topic: "orders", QoS: mqtt.ExactlyOnce})
		p := fc.expectPublish()
		fc.send(&packet.Ack{PacketType: packet.PUBREC, PacketID: p.PacketID, ReasonCode: packet.QuotaExceeded})
		var re *mqtt.ReasonError
		if err := pub.Wait(context.Background()); !errors.As(err, &re) || re.Code != packet.QuotaExceeded || re.Packet != "PUBREC" {
			t.Fatalf("Publish = %v, want a PUBREC ReasonError with code 0x97", err)
		}
		fc.expectNothing()
		// The packet identifier is free again: the next publish may use it.
		pub = c.PublishAsync(mqtt.Message{Topic: "orders", QoS: mqtt.ExactlyOnce})
		p2 := fc.expectPublish()
		fc.send(&packet.Ack{PacketType: packet.PUBREC, PacketID: p2.PacketID})
		fc.expectAck(packet.PUBREL)
		fc.send(&packet.Ack{PacketType: packet.PUBCOMP, PacketID: p2.PacketID})
		if err := pub.Wait(context.Background()); err != nil {
			t.Fatalf("second Publish: %v", err)
		}
	})
}

// TestFakePublishAcksOutOfOrder checks that acknowledgements are matched by
// packet identifier, not by order: the broker acknowledges the second of
// two publishes first.
func TestFakePublishAcksOutOfOrder(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "ooo", Version: v}, &packet.Connack{})
		p1 := c.PublishAsync(mqtt.Message{Topic: "a", Payload: []byte("1"), QoS: mqtt.AtLeastOnce})
		p2 := c.PublishAsync(mqtt.Message{Topic: "a", Payload: []byte("2"), QoS: mqtt.AtLeastOnce})
		q1 := c.PublishAsync(mqtt.Message{Topic: "b", Payload: []byte("3"), QoS: mqtt.ExactlyOnce})
		q2 := c.PublishAsync(mqtt.Message{Topic: "b", Payload: []byte("4"), QoS: mqtt.ExactlyOnce})
		ids := map[string]uint16{}
		for range 4 {
			p := fc.expectPublish()
			ids[string(p.Payload)] = p.PacketID
		}
		if len(ids) != 4 || ids["1"] == ids["2"] || ids["3"] == ids["4"] {
			t.Fatalf("packet identifiers %v are not distinct", ids)
		}
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: ids["2"]})
		fakePendingDone(t, p2, true)
		fakePendingDone(t, p1, false)
		fc.send(&packet.Ack{PacketType: packet.PUBREC, PacketID: ids["4"]})
		fc.send(&packet.Ack{PacketType: packet.PUBREC, PacketID: ids["3"]})
		if a := fc.expectAck(packet.PUBREL); a.PacketID != ids["4"] {
			t.Errorf("first PUBREL for ID %d, want %d", a.PacketID, ids["4"])
		}
		if a := fc.expectAck(packet.PUBREL); a.PacketID != ids["3"] {
			t.Errorf("second PUBREL for ID %d, want %d", a.PacketID, ids["3"])
		}
		fc.send(&packet.Ack{PacketType: packet.PUBCOMP, PacketID: ids["3"]})
		fakePendingDone(t, q1, true)
		fakePendingDone(t, q2, false)
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: ids["1"]})
		fc.send(&packet.Ack{PacketType: packet.PUBCOMP, PacketID: ids["4"]})
		for i, p := range []*mqtt.Pending{p1, p2, q1, q2} {
			if err := p.Wait(context.Background()); err != nil {
				t.Errorf("publish %d: %v", i+1, err)
			}
		}
	})
}

// fakePendingDone checks, inside a bubble, whether p has completed once
// every goroutine settled, and that it completed without error.
func fakePendingDone(t *testing.T, p *mqtt.Pending, want bool) {
	t.Helper()
	c := fakeAsync(t, func() error { <-p.Done(); return p.Err() })
	if got := c.returned(); got != want {
		t.Fatalf("publish completed = %v, want %v", got, want)
	}
	if want {
		if err := c.wait(); err != nil {
			t.Fatalf("publish completed with %v", err)
		}
	}
}

// TestFakePublishCancelAfterSend checks that a Publish whose ctx ends after
// the PUBLISH was written returns ctx's error, and that the later PUBACK is
// still matched: no protocol violation, and the packet identifier is reused
// only after it.
func TestFakePublishCancelAfterSend(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "cancel", Version: mqtt.Version5}, &packet.Connack{})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := c.Publish(ctx, mqtt.Message{Topic: "a", QoS: mqtt.AtLeastOnce})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Publish = %v, want DeadlineExceeded", err)
		}
		p := fc.expectPublish()
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: p.PacketID})
		fc.expectNothing()
		if err := c.Err(); err != nil {
			t.Fatalf("Err after the late PUBACK = %v", err)
		}
	})
}

// TestFakePacketIDsExhausted checks packet identifier allocation
// [MQTT-2.2.1-3]: with a broker that acknowledges nothing,
// 65535 QoS 1 publishes get the distinct identifiers 1 to 65535; the next
// publish waits without sending anything until its ctx expires; after one
// PUBACK, a new publish goes out with the freed identifier.
func TestFakePacketIDsExhausted(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "ids", Version: mqtt.Version311, KeepAlive: -1,
			MemoryLimit: 64 << 20}, &packet.Connack{}) // room for 65535 publishes in flight
		const n = 65535
		pending := make([]*mqtt.Pending, 0, n)
		seen := make([]bool, n+1)
		m := mqtt.Message{Topic: "t", QoS: mqtt.AtLeastOnce}
		for range n {
			pending = append(pending, c.PublishAsync(m))
			select {
			case p := <-fc.pkts:
				fakeMarkID(t, seen, p)
			default:
			}
		}
		for got := fakeCountTrue(seen); got < n; got++ {
			fakeMarkID(t, seen, fc.next())
		}
		if seen[0] {
			t.Fatal("packet identifier 0 was used")
		}

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		err := c.Publish(ctx, m)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Publish with every identifier in flight = %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("Publish returned after %v, want 5s", d)
		}
		fc.expectNothing()

		const freed = 4242
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: freed})
		if err := pending[freed-1].Wait(context.Background()); err != nil {
			t.Fatalf("publish %d: %v", freed, err)
		}
		// The expired publish is dropped, not sent.
		fc.expectNothing()
		next := c.PublishAsync(m)
		if p := fc.expectPublish(); p.PacketID != freed {
			t.Errorf("next PUBLISH has ID %d, want the freed %d", p.PacketID, freed)
		}
		fc.expectNothing()
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: freed})
		if err := next.Wait(context.Background()); err != nil {
			t.Errorf("publish with the reused ID: %v", err)
		}
		if err := c.Err(); err != nil {
			t.Errorf("Err = %v", err)
		}
	})
}

func fakeMarkID(t *testing.T, seen []bool, p packet.Packet) {
	t.Helper()
	pub, ok := p.(*packet.Publish)
	if !ok {
		t.Fatalf("want PUBLISH, got %v", p.Type())
	}
	if seen[pub.PacketID] {
		t.Fatalf("packet identifier %d used twice while in flight", pub.PacketID)
	}
	seen[pub.PacketID] = true
}

func fakeCountTrue(b []bool) int {
	n := 0
	for _, x := range b {
		if x {
			n++
		}
	}
	return n
}

// TestFakePacketIDsDistinctAcrossKinds checks that SUBSCRIBE, UNSUBSCRIBE
// and QoS 1 and 2 PUBLISH in flight at once never share a packet identifier
// [MQTT-2.2.1-3], and that a QoS 2 identifier stays in use until PUBCOMP.
func TestFakePacketIDsDistinctAcrossKinds(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "ids", Version: mqtt.Version5}, &packet.Connack{})
		inFlight := map[uint16]packet.Packet{}
		take := func(p packet.Packet, id uint16) {
			t.Helper()
			if other, dup := inFlight[id]; dup {
				t.Fatalf("%s uses packet identifier %d, in flight for %s", fakebroker.Describe(p), id, fakebroker.Describe(other))
			}
			inFlight[id] = p
		}
		var calls []*fakeCall
		for i := range 4 {
			calls = append(calls, fakeAsync(t, func() error {
				_, err := c.Subscribe(context.Background(), fmt.Sprintf("s/%d", i), mqtt.AtLeastOnce)
				return err
			}))
			sp := fc.expectSubscribe()
			take(sp, sp.PacketID)
			calls = append(calls, fakeAsync(t, func() error {
				return c.Publish(context.Background(), mqtt.Message{Topic: "p", QoS: mqtt.QoS(1 + i%2)})
			}))
			pp := fc.expectPublish()
			take(pp, pp.PacketID)
			calls = append(calls, fakeAsync(t, func() error { return c.Unsubscribe(context.Background(), "u/x") }))
			up := fc.expect(packet.UNSUBSCRIBE).(*packet.Unsubscribe)
			take(up, up.PacketID)
		}
		// Move every QoS 2 publish to its second step: its identifier stays
		// in use, so new work must not take it.
		for id, p := range inFlight {
			if p, ok := p.(*packet.Publish); ok && p.QoS == 2 {
				fc.send(&packet.Ack{PacketType: packet.PUBREC, PacketID: id})
				fc.expectAck(packet.PUBREL)
			}
		}
		for i := range 4 {
			calls = append(calls, fakeAsync(t, func() error {
				return c.Publish(context.Background(), mqtt.Message{Topic: "more", QoS: mqtt.QoS(1 + i%2)})
			}))
			pp := fc.expectPublish()
			take(pp, pp.PacketID)
		}
		for id, p := range inFlight {
			switch p := p.(type) {
			case *packet.Subscribe:
				fc.send(&packet.Suback{PacketID: id, ReasonCodes: []packet.ReasonCode{1}})
			case *packet.Unsubscribe:
				fc.send(&packet.Unsuback{PacketID: id, ReasonCodes: []packet.ReasonCode{packet.NoSubscriptionExisted}})
			case *packet.Publish:
				if p.QoS == 1 {
					fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: id})
				} else if p.Topic == "p" {
					fc.send(&packet.Ack{PacketType: packet.PUBCOMP, PacketID: id})
				} else {
					fc.send(&packet.Ack{PacketType: packet.PUBREC, PacketID: id})
					fc.expectAck(packet.PUBREL)
					fc.send(&packet.Ack{PacketType: packet.PUBCOMP, PacketID: id})
				}
			}
		}
		for i, cl := range calls {
			if err := cl.wait(); err != nil {
				t.Errorf("call %d: %v", i, err)
			}
		}
	})
}

// TestFakeReceiveMaximumFromBroker checks the broker's Receive Maximum
// [MQTT-4.9.0-2] [MQTT-3.3.4-7]: with Receive Maximum 2 in CONNACK, at most two
// QoS 1 and 2 publishes are unacknowledged at once; the others wait, in
// order, and QoS 0 publishes are not held back.
func TestFakeReceiveMaximumFromBroker(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		ack := &packet.Connack{}
		ack.Props.ReceiveMaximum = 2
		ack.Props.Set(packet.PropReceiveMaximum)
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "rm", Version: mqtt.Version5}, ack)
		var pending []*mqtt.Pending
		for i := range 5 {
			pending = append(pending, c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte{byte('0' + i)}, QoS: mqtt.QoS(1 + i%2)}))
		}
		p0, p1 := fc.expectPublish(), fc.expectPublish()
		fc.expectNothing()
		if err := c.Publish(context.Background(), mqtt.Message{Topic: "zero", Payload: []byte("z")}); err != nil {
			t.Fatalf("QoS 0 Publish: %v", err)
		}
		if p := fc.expectPublish(); p.Topic != "zero" {
			t.Fatalf("want the QoS 0 PUBLISH, got %s", p.Topic)
		}
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: p0.PacketID})
		p2 := fc.expectPublish()
		fc.expectNothing()
		// A QoS 2 publish counts until PUBCOMP, not PUBREC.
		fc.send(&packet.Ack{PacketType: packet.PUBREC, PacketID: p1.PacketID})
		fc.expectAck(packet.PUBREL)
		fc.expectNothing()
		fc.send(&packet.Ack{PacketType: packet.PUBCOMP, PacketID: p1.PacketID})
		p3 := fc.expectPublish()
		fc.expectNothing()
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: p2.PacketID})
		p4 := fc.expectPublish()
		fc.send(&packet.Ack{PacketType: packet.PUBREC, PacketID: p3.PacketID})
		fc.expectAck(packet.PUBREL)
		fc.expectNothing()
		fc.send(&packet.Ack{PacketType: packet.PUBCOMP, PacketID: p3.PacketID})
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: p4.PacketID})
		var payloads []string
		for _, p := range []*packet.Publish{p0, p1, p2, p3, p4} {
			payloads = append(payloads, string(p.Payload))
		}
		if diff := cmp.Diff([]string{"0", "1", "2", "3", "4"}, payloads, ignoreAck); diff != "" {
			t.Errorf("publish order (-want +got):\n%s", diff)
		}
		for i, p := range pending {
			if err := p.Wait(context.Background()); err != nil {
				t.Errorf("publish %d: %v", i, err)
			}
		}
	})
}

// TestFakePendingKeepsItsOutcome checks that a Pending is the caller's for
// good: 500 asynchronous publishes, half refused by the broker (PUBACK
// Not authorized), are held and read over and over, from another goroutine,
// while 5,000 later publishes run through the client; each keeps the
// outcome it completed with. Under -race, any write to a completed Pending
// (a record reused for a later publish) is reported.
func TestFakePendingKeepsItsOutcome(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "pk", Version: mqtt.Version5, KeepAlive: -1}, &packet.Connack{})
		stop := make(chan struct{})
		acked := make(chan struct{})
		go func() { // the broker: refuses publishes whose payload starts with an odd byte
			defer close(acked)
			for {
				p, err := fc.tryNext()
				if err != nil {
					return
				}
				pub, ok := p.(*packet.Publish)
				if !ok {
					continue
				}
				code := packet.Success
				if len(pub.Payload) > 0 && pub.Payload[0]%2 == 1 {
					code = packet.NotAuthorized
				}
				if fc.bc.SendErr(&packet.Ack{PacketType: packet.PUBACK, PacketID: pub.PacketID, ReasonCode: code}) != nil {
					return
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
		const held = 500
		pendings := make([]*mqtt.Pending, held)
		for i := range held {
			pendings[i] = c.PublishAsync(mqtt.Message{Topic: "held", QoS: mqtt.AtLeastOnce, Payload: []byte{byte(i)}})
		}
		check := func() {
			for i, p := range pendings {
				select {
				case <-p.Done():
				default:
					t.Fatalf("pending %d not done", i)
				}
				re, refused := errors.AsType[*mqtt.ReasonError](p.Err())
				if refused != (i%2 == 1) || (refused && re.Code != packet.NotAuthorized) || (!refused && p.Err() != nil) {
					t.Fatalf("pending %d: Err = %v", i, p.Err())
				}
			}
		}
		for _, p := range pendings {
			<-p.Done()
		}
		reads := make(chan struct{})
		go func() {
			defer close(reads)
			for range 50 {
				check()
				<-time.After(time.Millisecond)
			}
		}()
		for i := range 5000 {
			m := mqtt.Message{Topic: "later", QoS: mqtt.AtLeastOnce, Payload: []byte{byte(2 * i)}}
			var err error
			if i%2 == 0 {
				err = c.Publish(context.Background(), m)
			} else {
				err = c.PublishAsync(m).Wait(context.Background())
			}
			if err != nil {
				t.Fatalf("later publish %d: %v", i, err)
			}
		}
		<-reads
		check()
		close(stop)
	})
}
