package mqtt_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

type fakeSubResult struct {
	sub *mqtt.Subscription
	err error
}

// fakeStartSubscribe runs SubscribeFilters in its own goroutine.
func fakeStartSubscribe(c *mqtt.Client, filters ...mqtt.Filter) <-chan fakeSubResult {
	ch := make(chan fakeSubResult, 1)
	go func() {
		sub, err := c.SubscribeFilters(context.Background(), filters...)
		ch <- fakeSubResult{sub, err}
	}()
	return ch
}

// TestFakeSubscribePacket checks the SUBSCRIBE: fixed header flags 0010
// [MQTT-3.8.1-1] (the fake broker's decoder enforces them), a non-zero
// packet identifier, every topic filter with its maximum QoS, in MQTT 5.0
// the No Local, Retain As Published and Retain Handling options
// [MQTT-3.8.3-*] and one Subscription Identifier; and that Granted reports
// the SUBACK's codes.
func TestFakeSubscribePacket(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, wire packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "s", Version: v}, &packet.Connack{})
		res := fakeStartSubscribe(c,
			mqtt.Filter{Topic: "a/+", QoS: mqtt.AtLeastOnce, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
			mqtt.Filter{Topic: "b/#", QoS: mqtt.ExactlyOnce, RetainHandling: 1},
			mqtt.Filter{Topic: "c", QoS: mqtt.AtMostOnce},
		)
		got := fc.expectSubscribe()
		if got.PacketID == 0 {
			t.Error("SUBSCRIBE with packet identifier 0 [MQTT-2.2.1-3]")
		}
		want := []packet.Subscription{
			{Filter: "a/+", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
			{Filter: "b/#", QoS: 2, RetainHandling: 1},
			{Filter: "c", QoS: 0},
		}
		if wire == packet.V311 {
			// 3.1.1 has only the QoS bits; the others are reserved [MQTT-3.8.3-4].
			want = []packet.Subscription{{Filter: "a/+", QoS: 1}, {Filter: "b/#", QoS: 2}, {Filter: "c", QoS: 0}}
		}
		if diff := cmp.Diff(want, got.Subscriptions); diff != "" {
			t.Errorf("SUBSCRIBE filters (-want +got):\n%s", diff)
		}
		if wire == packet.V5 {
			if ids := got.Props.SubscriptionIDs; len(ids) != 1 || ids[0] == 0 {
				t.Errorf("SUBSCRIBE Subscription Identifiers = %v, want one non-zero", ids)
			}
		} else if !got.Props.IsZero() {
			t.Errorf("3.1.1 SUBSCRIBE carries properties %+v", got.Props)
		}
		fc.send(&packet.Suback{PacketID: got.PacketID, ReasonCodes: []packet.ReasonCode{1, 1, 0}})
		r := <-res
		if r.err != nil {
			t.Fatalf("Subscribe: %v", r.err)
		}
		wantGranted := []mqtt.FilterResult{{Filter: "a/+", Code: 1}, {Filter: "b/#", Code: 1}, {Filter: "c", Code: 0}}
		if diff := cmp.Diff(wantGranted, r.sub.Granted(), ignoreAck); diff != "" {
			t.Errorf("Granted (-want +got):\n%s", diff)
		}
	})
}

// TestFakeSubscribeWaitsForSuback checks that Subscribe returns only once
// the SUBACK arrived, and that matching messages the broker delivers before
// it, as it may (MQTT 3.1.1 section 3.8.4), reach the subscription.
func TestFakeSubscribeWaitsForSuback(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "s", Version: v, KeepAlive: -1}, &packet.Connack{})
		res := fakeStartSubscribe(c, mqtt.Filter{Topic: "early/#", QoS: 1})
		sp := fc.expectSubscribe()
		fc.send(&packet.Publish{Topic: "early/bird", QoS: 1, PacketID: 9})
		synctest.Wait()
		select {
		case r := <-res:
			t.Fatalf("Subscribe returned %v, %v before the SUBACK", r.sub, r.err)
		default:
		}
		fc.send(&packet.Suback{PacketID: sp.PacketID, ReasonCodes: []packet.ReasonCode{1}})
		r := <-res
		if r.err != nil {
			t.Fatalf("Subscribe: %v", r.err)
		}
		if m := fakeRecv(t, r.sub.Messages()); m.Topic != "early/bird" {
			t.Errorf("got %s, want the message sent before the SUBACK", m.Topic)
		}
		fc.expectAck(packet.PUBACK)
	})
}

// TestFakeSubscribePartlyRefused checks that a SUBACK refusing one of two
// filters (0x80 [MQTT-3.9.3-*]) gives the subscription for the granted one
// together with a *SubscribeError naming the refused one, and that
// messages for the refused filter do not reach the subscription.
func TestFakeSubscribePartlyRefused(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "s", Version: v}, &packet.Connack{})
		res := fakeStartSubscribe(c, mqtt.Filter{Topic: "ok/#", QoS: 1}, mqtt.Filter{Topic: "secret/#", QoS: 1})
		sp := fc.expectSubscribe()
		fc.send(&packet.Suback{PacketID: sp.PacketID, ReasonCodes: []packet.ReasonCode{1, packet.UnspecifiedError}})
		r := <-res
		if r.sub == nil {
			t.Fatalf("Subscribe = nil, %v; want the subscription for ok/#", r.err)
		}
		var se *mqtt.SubscribeError
		if !errors.As(r.err, &se) {
			t.Fatalf("Subscribe error = %v, want a *mqtt.SubscribeError", r.err)
		}
		if diff := cmp.Diff(mqtt.SubscribeError{Refused: []mqtt.FilterResult{{Filter: "secret/#", Code: 0x80}}}, *se, ignoreAck); diff != "" {
			t.Errorf("SubscribeError (-want +got):\n%s", diff)
		}
		wantGranted := []mqtt.FilterResult{{Filter: "ok/#", Code: 1}, {Filter: "secret/#", Code: 0x80}}
		if diff := cmp.Diff(wantGranted, r.sub.Granted(), ignoreAck); diff != "" {
			t.Errorf("Granted (-want +got):\n%s", diff)
		}
		fc.send(&packet.Publish{Topic: "secret/x", Payload: []byte("s")})
		fc.send(&packet.Publish{Topic: "ok/x", Payload: []byte("o")})
		if m := fakeRecv(t, r.sub.Messages()); m.Topic != "ok/x" {
			t.Errorf("subscription got %s, want ok/x", m.Topic)
		}
		if m := fakeRecv(t, c.Messages()); m.Topic != "secret/x" {
			t.Errorf("Client.Messages got %s, want secret/x", m.Topic)
		}
	})
}

// TestFakeSubscribeAllRefused checks that a SUBACK refusing every filter
// gives no subscription and a *SubscribeError listing them all, with the
// MQTT 5.0 Reason String.
func TestFakeSubscribeAllRefused(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, wire packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "s", Version: v}, &packet.Connack{})
		res := fakeStartSubscribe(c, mqtt.Filter{Topic: "x/#"}, mqtt.Filter{Topic: "y"})
		sp := fc.expectSubscribe()
		codes := []packet.ReasonCode{0x80, 0x80}
		want := mqtt.SubscribeError{Refused: []mqtt.FilterResult{{Filter: "x/#", Code: 0x80}, {Filter: "y", Code: 0x80}}}
		ack := &packet.Suback{PacketID: sp.PacketID, ReasonCodes: codes}
		if wire == packet.V5 {
			ack.ReasonCodes = []packet.ReasonCode{packet.NotAuthorized, packet.TopicFilterInvalid}
			ack.Props.ReasonString = "denied"
			ack.Props.Set(packet.PropReasonString)
			want = mqtt.SubscribeError{Refused: []mqtt.FilterResult{{Filter: "x/#", Code: 0x87}, {Filter: "y", Code: 0x8F}}, Reason: "denied"}
		}
		fc.send(ack)
		r := <-res
		if r.sub != nil {
			t.Errorf("Subscribe returned a subscription although every filter was refused")
		}
		var se *mqtt.SubscribeError
		if !errors.As(r.err, &se) {
			t.Fatalf("Subscribe error = %v, want a *mqtt.SubscribeError", r.err)
		}
		if diff := cmp.Diff(want, *se, ignoreAck); diff != "" {
			t.Errorf("SubscribeError (-want +got):\n%s", diff)
		}
		fc.send(&packet.Publish{Topic: "y", Payload: []byte("z")})
		if m := fakeRecv(t, c.Messages()); m.Topic != "y" {
			t.Errorf("Client.Messages got %s, want y", m.Topic)
		}
	})
}

// TestFakeSubackWrongCount checks that a SUBACK whose number of reason codes
// differs from the number of filters [MQTT-3.8.4-6] ends the connection as a
// protocol violation, which Subscribe returns.
func TestFakeSubackWrongCount(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, wire packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "s", Version: v}, &packet.Connack{})
		res := fakeStartSubscribe(c, mqtt.Filter{Topic: "a"}, mqtt.Filter{Topic: "b"})
		sp := fc.expectSubscribe()
		fc.send(&packet.Suback{PacketID: sp.PacketID, ReasonCodes: []packet.ReasonCode{0}})
		fakeExpectViolationClose(t, c, fc, wire, packet.ProtocolError)
		r := <-res
		if r.sub != nil || !errors.Is(r.err, mqtt.ErrProtocolViolation) {
			t.Errorf("Subscribe = %v, %v; want nil and ErrProtocolViolation", r.sub, r.err)
		}
	})
}

// TestFakeUnsubscribe checks the UNSUBSCRIBE (fixed header flags 0010
// [MQTT-3.10.1-1], packet identifier, filters), that Unsubscribe waits for
// the UNSUBACK, that a subscription keeps its other filters and closes its
// channel when the last one goes, and that messages then matching no
// subscription arrive on Client.Messages.
func TestFakeUnsubscribe(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "u", Version: v}, &packet.Connack{})
		sub := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "a/+"}, mqtt.Filter{Topic: "b/#"})

		unsub := func(filters ...string) {
			t.Helper()
			call := fakeAsync(t, func() error { return c.Unsubscribe(context.Background(), filters...) })
			up := fc.expect(packet.UNSUBSCRIBE).(*packet.Unsubscribe)
			if up.PacketID == 0 {
				t.Error("UNSUBSCRIBE with packet identifier 0")
			}
			if diff := cmp.Diff(filters, up.Filters, ignoreAck); diff != "" {
				t.Errorf("UNSUBSCRIBE filters (-want +got):\n%s", diff)
			}
			if call.returned() {
				t.Fatal("Unsubscribe returned before UNSUBACK")
			}
			codes := make([]packet.ReasonCode, len(filters))
			fc.send(&packet.Unsuback{PacketID: up.PacketID, ReasonCodes: codes})
			if err := call.wait(); err != nil {
				t.Fatalf("Unsubscribe: %v", err)
			}
		}
		unsub("a/+")
		fc.send(&packet.Publish{Topic: "a/1", Payload: []byte("1")})
		fc.send(&packet.Publish{Topic: "b/1", Payload: []byte("2")})
		if m := fakeRecv(t, c.Messages()); m.Topic != "a/1" {
			t.Errorf("Client.Messages got %s, want a/1", m.Topic)
		}
		if m := fakeRecv(t, sub.Messages()); m.Topic != "b/1" {
			t.Errorf("subscription got %s, want b/1", m.Topic)
		}
		if fakeChanClosed(sub.Messages()) {
			t.Fatal("subscription closed while it still has the filter b/#")
		}
		unsub("b/#")
		if !fakeChanClosed(sub.Messages()) {
			t.Error("subscription channel open after its last filter was unsubscribed")
		}
		fc.send(&packet.Publish{Topic: "b/2", Payload: []byte("3")})
		if m := fakeRecv(t, c.Messages()); m.Topic != "b/2" {
			t.Errorf("Client.Messages got %s, want b/2", m.Topic)
		}
	})
}

// TestFakeUnsubscribeRefused checks that an MQTT 5.0 UNSUBACK with a failure
// code gives a *SubscribeError for the unsubscription and keeps that filter,
// while No subscription existed (0x11) is no error.
func TestFakeUnsubscribeRefused(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "u", Version: mqtt.Version5}, &packet.Connack{})
		sub := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "keep"}, mqtt.Filter{Topic: "drop"})
		call := fakeAsync(t, func() error { return c.Unsubscribe(context.Background(), "keep", "drop", "never") })
		up := fc.expect(packet.UNSUBSCRIBE).(*packet.Unsubscribe)
		fc.send(&packet.Unsuback{PacketID: up.PacketID,
			ReasonCodes: []packet.ReasonCode{packet.NotAuthorized, packet.Success, packet.NoSubscriptionExisted}})
		err := call.wait()
		var se *mqtt.SubscribeError
		if !errors.As(err, &se) {
			t.Fatalf("Unsubscribe = %v, want a *mqtt.SubscribeError", err)
		}
		want := mqtt.SubscribeError{Unsubscribe: true, Refused: []mqtt.FilterResult{{Filter: "keep", Code: packet.NotAuthorized}}}
		if diff := cmp.Diff(want, *se, ignoreAck); diff != "" {
			t.Errorf("SubscribeError (-want +got):\n%s", diff)
		}
		fc.send(&packet.Publish{Topic: "keep", Payload: []byte("k")})
		if m := fakeRecv(t, sub.Messages()); m.Topic != "keep" {
			t.Errorf("subscription got %s, want keep", m.Topic)
		}
		fc.send(&packet.Publish{Topic: "drop", Payload: []byte("d")})
		if m := fakeRecv(t, c.Messages()); m.Topic != "drop" {
			t.Errorf("Client.Messages got %s, want drop", m.Topic)
		}
	})
}

// TestFakeWildcardRouting checks how received messages are routed by topic:
// '+' matches one level, '#' any number including the parent level (section
// 4.7.1.2), filters starting with a wildcard do not match topics
// starting with '$' [MQTT-4.7.2-1], overlapping subscriptions each get the
// message, and messages matching nothing go to Client.Messages.
func TestFakeWildcardRouting(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, _ packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "w", Version: v, KeepAlive: -1}, &packet.Connack{})
		filters := []string{"sport/+/score", "sport/#", "#", "+/+", "$SYS/#", "+/tennis/#"}
		subs := map[string]*mqtt.Subscription{}
		for _, f := range filters {
			subs[f] = fakeSubscribe(t, c, fc, mqtt.Filter{Topic: f})
		}
		topics := []string{"sport/tennis/score", "sport", "sport/tennis", "$SYS/broker/load", "$SYS", "a/tennis/b/c", "/finance"}
		for _, topic := range topics {
			fc.send(&packet.Publish{Topic: topic})
		}
		want := map[string][]string{
			"sport/+/score": {"sport/tennis/score"},
			"sport/#":       {"sport/tennis/score", "sport", "sport/tennis"},
			"#":             {"sport/tennis/score", "sport", "sport/tennis", "a/tennis/b/c", "/finance"},
			"+/+":           {"sport/tennis", "/finance"},
			"$SYS/#":        {"$SYS/broker/load", "$SYS"},
			"+/tennis/#":    {"sport/tennis/score", "sport/tennis", "a/tennis/b/c"},
		}
		got := map[string][]string{}
		for f, sub := range subs {
			for range want[f] {
				got[f] = append(got[f], fakeRecv(t, sub.Messages()).Topic)
			}
			fakeNoMsg(t, sub.Messages())
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), ignoreAck); diff != "" {
			t.Errorf("topics per subscription (-want +got):\n%s", diff)
		}
		fakeNoMsg(t, c.Messages())

		// Without "#" and "$SYS/#", a $SYS topic matches nothing.
		fc2c, fc2, _ := fakeClient(t, mqtt.Config{ClientID: "w2", Version: v, KeepAlive: -1}, &packet.Connack{})
		all := fakeSubscribe(t, fc2c, fc2, mqtt.Filter{Topic: "#"}, mqtt.Filter{Topic: "+/broker/#"})
		fc2.send(&packet.Publish{Topic: "$SYS/broker/uptime"})
		if m := fakeRecv(t, fc2c.Messages()); m.Topic != "$SYS/broker/uptime" {
			t.Errorf("Client.Messages got %s", m.Topic)
		}
		fakeNoMsg(t, all.Messages())
	})
}

// TestFakeRoutingBySubscriptionID checks that in MQTT 5.0 a message tagged
// with Subscription Identifiers goes to exactly the subscriptions they name
// [MQTT-3.3.4-3], even where topic matching would say otherwise.
func TestFakeRoutingBySubscriptionID(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "sid", Version: mqtt.Version5, KeepAlive: -1}, &packet.Connack{})
		ids := map[string]uint32{}
		subs := map[string]*mqtt.Subscription{}
		for _, f := range []string{"x/#", "x/+"} {
			res := fakeStartSubscribe(c, mqtt.Filter{Topic: f, QoS: 1})
			sp := fc.expectSubscribe()
			if len(sp.Props.SubscriptionIDs) != 1 {
				t.Fatalf("SUBSCRIBE %s has Subscription Identifiers %v, want one", f, sp.Props.SubscriptionIDs)
			}
			ids[f] = sp.Props.SubscriptionIDs[0]
			fc.send(&packet.Suback{PacketID: sp.PacketID, ReasonCodes: []packet.ReasonCode{1}})
			r := <-res
			if r.err != nil {
				t.Fatalf("Subscribe %s: %v", f, r.err)
			}
			subs[f] = r.sub
		}
		if ids["x/#"] == ids["x/+"] {
			t.Fatalf("both subscriptions have Subscription Identifier %d", ids["x/#"])
		}
		// Two copies, one per subscription, as a broker may send them.
		for _, f := range []string{"x/#", "x/+"} {
			p := &packet.Publish{Topic: "x/y", Payload: []byte(f)}
			p.Props.SubscriptionIDs = []uint32{ids[f]}
			fc.send(p)
		}
		for _, f := range []string{"x/#", "x/+"} {
			if m := fakeRecv(t, subs[f].Messages()); string(m.Payload) != f {
				t.Errorf("subscription %s got the copy for %s", f, m.Payload)
			}
			fakeNoMsg(t, subs[f].Messages())
		}
		// One copy naming both.
		p := &packet.Publish{Topic: "x/z", Payload: []byte("both")}
		p.Props.SubscriptionIDs = []uint32{ids["x/#"], ids["x/+"]}
		fc.send(p)
		for _, f := range []string{"x/#", "x/+"} {
			if m := fakeRecv(t, subs[f].Messages()); string(m.Payload) != "both" {
				t.Errorf("subscription %s got %q", f, m.Payload)
			}
		}
	})
}

// TestFakeSubscriptionIDChosen checks a Subscription Identifier the caller
// chooses (MQTT 5.0): the SUBSCRIBE carries it, Subscription.ID returns it,
// messages the broker tags with it reach that subscription, and the
// identifier the client chooses for the next subscription is not it. Over
// 3.1.1 a chosen identifier is refused before anything is sent, and so are
// filters of one call that disagree.
func TestFakeSubscriptionIDChosen(t *testing.T) {
	t.Run("v5", func(t *testing.T) {
		fakeBubble(t, func(t *testing.T) {
			c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "sid", Version: mqtt.Version5, KeepAlive: -1}, &packet.Connack{})
			chosen := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "a/#", QoS: 1, SubscriptionID: 1})
			if chosen.ID() != 1 {
				t.Errorf("ID = %d, want 1", chosen.ID())
			}
			auto := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "a/#", QoS: 1})
			if auto.ID() == 0 || auto.ID() == 1 {
				t.Errorf("the client chose identifier %d, which is taken or none", auto.ID())
			}
			p := &packet.Publish{Topic: "a/b", Payload: []byte("x")}
			p.Props.SubscriptionIDs = []uint32{1}
			fc.send(p)
			if m := fakeRecv(t, chosen.Messages()); !slices.Equal(m.SubscriptionIDs, []uint32{1}) {
				t.Errorf("SubscriptionIDs = %v", m.SubscriptionIDs)
			}
			fakeNoMsg(t, auto.Messages())
			if _, err := c.SubscribeFilters(context.Background(), mqtt.Filter{Topic: "x", SubscriptionID: 2}, mqtt.Filter{Topic: "y", SubscriptionID: 3}); !errors.Is(err, mqtt.ErrInvalidArgument) {
				t.Errorf("filters with different identifiers: %v, want ErrInvalidArgument", err)
			}
			fc.expectNothing()
		})
	})
	t.Run("v311", func(t *testing.T) {
		fakeBubble(t, func(t *testing.T) {
			c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "sid", Version: mqtt.Version311, KeepAlive: -1}, &packet.Connack{})
			if _, err := c.SubscribeFilters(context.Background(), mqtt.Filter{Topic: "a", SubscriptionID: 5}); !errors.Is(err, mqtt.ErrInvalidArgument) {
				t.Errorf("a chosen identifier over 3.1.1: %v, want ErrInvalidArgument", err)
			}
			fc.expectNothing()
		})
	})
}

func TestMosquittoUnsubscribeAndWildcards(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			id := uniqueID(t)
			c := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id, Version: ver.v})
			plus, err := c.Subscribe(ctx, id+"/+/x", 0)
			if err != nil {
				t.Fatal(err)
			}
			hash, err := c.Subscribe(ctx, id+"/#", 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Publish(ctx, mqtt.Message{Topic: id + "/a/x", Payload: []byte("1")}); err != nil {
				t.Fatal(err)
			}
			// Both overlapping subscriptions see it.
			receive(t, plus.Messages())
			receive(t, hash.Messages())
			if err := c.Publish(ctx, mqtt.Message{Topic: id + "/a/y", Payload: []byte("2")}); err != nil {
				t.Fatal(err)
			}
			if got := receive(t, hash.Messages()); string(got.Payload) != "2" {
				t.Fatalf("# got %q", got.Payload)
			}
			if err := c.Unsubscribe(ctx, id+"/+/x"); err != nil {
				t.Fatal(err)
			}
			// The unsubscribed channel is closed.
			select {
			case _, ok := <-plus.Messages():
				if ok {
					t.Fatal("message after Unsubscribe")
				}
			case <-time.After(testTimeout):
				t.Fatal("channel not closed after Unsubscribe")
			}
			if err := c.Publish(ctx, mqtt.Message{Topic: id + "/b/x", Payload: []byte("3")}); err != nil {
				t.Fatal(err)
			}
			if got := receive(t, hash.Messages()); string(got.Payload) != "3" {
				t.Fatalf("# got %q", got.Payload)
			}
		})
	}
}

// TestFakeSubscribeDoesNotWaitForPublishQuota: Subscribe and Unsubscribe queue
// behind QoS 1 and 2 publishes waiting for the broker's Receive Maximum
// (session.subscribeReq.handle appends to s.waiting whenever it is not
// empty), although Receive Maximum limits only PUBLISH packets
// [MQTT-4.9.0-2]. With Receive Maximum 1 and a publish in flight, a second
// publish waits, and so does a Subscribe, until the broker acknowledges the
// first publish.
func TestFakeSubscribeDoesNotWaitForPublishQuota(t *testing.T) {
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

// TestFakeOverlappingSubscriptions checks what a message matching two
// subscriptions of the client becomes: by default each subscription
// receives it (over MQTT 5.0 the copy tagged with its identifier, over
// 3.1.1 the one copy, routed by topic); with Config.OncePerClient only the
// earlier subscription does, and a 5.0 copy tagged for the other is
// acknowledged and dropped.
func TestFakeOverlappingSubscriptions(t *testing.T) {
	t.Parallel()
	for _, once := range []bool{false, true} {
		for _, ver := range fakeVersions {
			t.Run(fmt.Sprintf("%s/once=%v", ver.name, once), func(t *testing.T) {
				fakeBubble(t, func(t *testing.T) {
					c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "ov", Version: ver.v, KeepAlive: -1, OncePerClient: once}, &packet.Connack{})
					hash := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "o/#", QoS: 1})
					plus := fakeSubscribe(t, c, fc, mqtt.Filter{Topic: "o/+", QoS: 1})
					copies := []*packet.Publish{{Topic: "o/x", QoS: 1, PacketID: 1, Payload: []byte("m")}}
					if ver.wire == packet.V5 { // mosquitto's way: one copy per subscription, tagged
						copies[0].Props.SubscriptionIDs = []uint32{hash.ID()}
						second := &packet.Publish{Topic: "o/x", QoS: 1, PacketID: 2, Payload: []byte("m")}
						second.Props.SubscriptionIDs = []uint32{plus.ID()}
						copies = append(copies, second)
					}
					for _, p := range copies {
						fc.send(p)
					}
					fakeRecv(t, hash.Messages())
					if once {
						fakeNoMsg(t, plus.Messages())
					} else {
						fakeRecv(t, plus.Messages())
					}
					for range copies {
						fc.expectAck(packet.PUBACK)
					}
					fakeNoMsg(t, hash.Messages())
					fc.expectNothing()
				})
			})
		}
	}
}

// TestMosquittoOverlappingSubscriptions runs two overlapping subscriptions
// on mosquitto 2.0 and counts the deliveries of each message: mosquitto
// sends one copy per client over 3.1.1 and one tagged copy per subscription
// over 5.0, and either way each subscription receives every message once;
// with OncePerClient the application receives each message once in all.
func TestMosquittoOverlappingSubscriptions(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	for _, once := range []bool{false, true} {
		for _, ver := range versions {
			t.Run(fmt.Sprintf("%s/once=%v", ver.name, once), func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				id := uniqueID(t)
				c := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id, Version: ver.v, OncePerClient: once})
				hash, err := c.Subscribe(ctx, id+"/#", mqtt.AtLeastOnce)
				if err != nil {
					t.Fatal(err)
				}
				plus, err := c.Subscribe(ctx, id+"/+", mqtt.AtLeastOnce)
				if err != nil {
					t.Fatal(err)
				}
				const n = 20
				for i := range n {
					if err := c.Publish(ctx, mqtt.Message{Topic: id + "/x", Payload: []byte{byte(i)}, QoS: mqtt.AtLeastOnce}); err != nil {
						t.Fatal(err)
					}
				}
				for i := range n {
					if m := receive(t, hash.Messages()); m.Payload[0] != byte(i) {
						t.Fatalf("first subscription: message %d, want %d", m.Payload[0], i)
					}
					if !once {
						if m := receive(t, plus.Messages()); m.Payload[0] != byte(i) {
							t.Fatalf("second subscription: message %d, want %d", m.Payload[0], i)
						}
					}
				}
				expectNone(t, hash.Messages(), 200*time.Millisecond)
				expectNone(t, plus.Messages(), 50*time.Millisecond)
			})
		}
	}
}

// sharedEnv starts the test binary as a shared-subscription consumer (see
// sharedConsumer): "url clientID filter version".
const sharedEnv = "MQTT_TEST_SHARED_CONSUMER"

// TestMosquittoSharedSubscriptionProcesses spreads a QoS 1 stream of
// 20,000 messages over four consumer processes sharing a subscription
// ($share/group/filter) on mosquitto, kills one of them with SIGKILL
// mid-stream and starts it again with its persistent session. Every
// message must reach some consumer (duplicates, which QoS 1 allows, are
// counted), and the load must be spread. Each consumer acknowledges a
// message only after reporting it (Config.ManualAck), so what a killed
// consumer took but did not report comes again.
//
// What mosquitto 2.0 does with the killed member's messages: its session
// stays subscribed, so its share of the stream is queued for it while it
// is away and delivered when it comes back, together with the messages
// it had in flight, unacknowledged.
func TestMosquittoSharedSubscriptionProcesses(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Extra: []string{"max_queued_messages 0", "max_inflight_messages 20"}})
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			const (
				consumers = 4
				n         = 20000
			)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			id := uniqueID(t)
			filter := "$share/g/" + id + "/jobs"
			got := make(chan sharedGot, 1024)
			start := func(i int) *exec.Cmd {
				return startSharedConsumer(ctx, t, b.URL(), fmt.Sprintf("%s-c%d", id, i), filter, ver.v, i, got)
			}
			cmds := make([]*exec.Cmd, consumers)
			for i := range cmds {
				cmds[i] = start(i)
			}
			// Every consumer has subscribed before the stream starts.
			ready := 0
			for ready < consumers {
				select {
				case g := <-got:
					if g.seq == -1 {
						ready++
					}
				case <-ctx.Done():
					t.Fatalf("%d of %d consumers subscribed", ready, consumers)
				}
			}
			pub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-pub", Version: ver.v, MaxInflight: 16})
			published := make(chan error, 1)
			go func() {
				for i := range n {
					if err := pub.Publish(ctx, mqtt.Message{Topic: id + "/jobs", Payload: []byte(strconv.Itoa(i)), QoS: mqtt.AtLeastOnce}); err != nil {
						published <- err
						return
					}
				}
				published <- nil
			}()
			seen := make([]int, n)
			share := make([]int, consumers)
			distinct, killed, before := 0, false, 0
			for distinct < n {
				select {
				case g := <-got:
					if g.seq < 0 {
						continue
					}
					if seen[g.seq] == 0 {
						distinct++
					}
					seen[g.seq]++
					share[g.consumer]++
					if !killed && distinct >= n/4 {
						// Kill a consumer mid-stream, and start it again with
						// its persistent session.
						killed = true
						_ = cmds[0].Process.Kill()
						t.Logf("consumer 0 killed after %d messages (%v)", share[0], cmds[0].Wait())
						before = share[0]
						cmds[0] = start(0)
					}
				case <-ctx.Done():
					t.Fatalf("%d of %d messages received; shares %v", distinct, n, share)
				}
			}
			if err := <-published; err != nil {
				t.Fatal(err)
			}
			dups := 0
			for _, c := range seen {
				dups += c - 1
			}
			t.Logf("%d messages over %d consumers, shares %v (consumer 0: %d after its restart), %d duplicates (QoS 1 redeliveries)",
				n, consumers, share, share[0]-before, dups)
			if !killed || share[0] == before {
				t.Errorf("consumer 0 was not killed mid-stream, or got nothing after its restart")
			}
			for i, s := range share {
				if s < n/(4*consumers) {
					t.Errorf("consumer %d took %d of %d messages: the load is not spread", i, s, n)
				}
			}
			for _, cmd := range cmds {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		})
	}
}

// sharedGot is what a consumer process reported: a message's sequence
// number, or -1 once it has subscribed.
type sharedGot struct {
	consumer, seq int
}

// startSharedConsumer starts a consumer process and forwards what it
// reports to got.
func startSharedConsumer(ctx context.Context, t *testing.T, url, clientID, filter string, v mqtt.ProtocolVersion, i int, got chan<- sharedGot) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %s %d", sharedEnv, url, clientID, filter, v))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			seq, err := strconv.Atoi(sc.Text())
			if err != nil {
				continue
			}
			select {
			case got <- sharedGot{consumer: i, seq: seq}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return cmd
}

// sharedConsumer runs a shared-subscription consumer when the test binary
// was started by startSharedConsumer, reporting whether it was: it prints
// -1 once subscribed, then each message's sequence number, and
// acknowledges a message only after printing it. It reads Client.Messages
// too: a resumed session delivers what was queued for it as soon as it
// connects, before Subscribe has returned.
func sharedConsumer() bool {
	spec := os.Getenv(sharedEnv)
	if spec == "" {
		return false
	}
	var url, clientID, filter string
	var v int
	if _, err := fmt.Sscan(spec, &url, &clientID, &filter, &v); err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{url}, ClientID: clientID, Version: mqtt.ProtocolVersion(v),
		SessionExpiry: time.Hour, ManualAck: true, ReceiveMaximum: 20})
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
	defer c.Close()
	sub, err := c.Subscribe(ctx, filter, mqtt.AtLeastOnce)
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
	fmt.Println(-1)
	for {
		var m mqtt.Message
		select {
		case m = <-sub.Messages():
		case m = <-c.Messages():
			// A resumed session's messages that arrived before Subscribe
			// returned: they match no live subscription yet.
		case <-c.Done():
			return true
		case <-ctx.Done():
			return true
		}
		fmt.Println(string(m.Payload))
		if err := m.Ack(); err != nil {
			return true
		}
	}
}
