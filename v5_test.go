package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func v5Connack(set func(pr *packet.Properties)) *packet.Connack {
	ack := &packet.Connack{}
	if set != nil {
		set(&ack.Props)
	}
	return ack
}

func aliasPublish(topic string, alias uint16, payload string) *packet.Publish {
	p := &packet.Publish{Topic: topic, Payload: []byte(payload)}
	p.Props.TopicAlias = alias
	p.Props.Set(packet.PropTopicAlias)
	return p
}

// TestFakeTopicAliasInbound checks inbound topic aliases: a PUBLISH with a
// topic and an alias defines the alias, one with the alias alone uses it,
// and a new topic for the same alias redefines it [MQTT-3.3.2-12]; the
// application always sees the full topic.
func TestFakeTopicAliasInbound(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, cp := fakeClient(t, mqtt.Config{ClientID: "a", Version: mqtt.Version5, TopicAliasMaximum: 2}, v5Connack(nil))
		if cp.Props.TopicAliasMaximum != 2 {
			t.Fatalf("CONNECT Topic Alias Maximum = %d, want 2", cp.Props.TopicAliasMaximum)
		}
		fc.send(aliasPublish("s/1/temp", 1, "a"))
		fc.send(aliasPublish("", 1, "b"))
		fc.send(aliasPublish("s/2/temp", 2, "c"))
		fc.send(aliasPublish("s/3/temp", 1, "d"))
		fc.send(aliasPublish("", 1, "e"))
		fc.send(aliasPublish("", 2, "f"))
		want := []string{"s/1/temp a", "s/1/temp b", "s/2/temp c", "s/3/temp d", "s/3/temp e", "s/2/temp f"}
		for _, w := range want {
			m := fakeRecv(t, c.Messages())
			if got := m.Topic + " " + string(m.Payload); got != w {
				t.Errorf("received %q, want %q", got, w)
			}
		}
	})
}

// TestFakeTopicAliasInboundInvalid checks that an alias above the client's
// Topic Alias Maximum ends the connection with Topic Alias invalid (0x94)
// [MQTT-3.3.2-9], and that alias 0, which no sender may use [MQTT-3.3.2-8],
// and an alias never defined on the connection end it with Protocol Error
// (0x82).
func TestFakeTopicAliasInboundInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		pub  *packet.Publish
		code packet.ReasonCode
	}{
		{"zero", aliasPublish("t", 0, "x"), packet.ProtocolError},
		{"above maximum", aliasPublish("t", 3, "x"), packet.TopicAliasInvalid},
		{"undefined", aliasPublish("", 1, "x"), packet.ProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) {
				c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "a", Version: mqtt.Version5, TopicAliasMaximum: 2}, v5Connack(nil))
				fc.send(tc.pub)
				fakeExpectViolationClose(t, c, fc, packet.V5, tc.code)
			})
		})
	}
}

// TestFakeTopicAliasInboundNone checks that by default (TopicAliasMaximum
// 0) the CONNECT announces no aliases and any alias is invalid
// [MQTT-3.3.2-9].
func TestFakeTopicAliasInboundNone(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, cp := fakeClient(t, mqtt.Config{ClientID: "a", Version: mqtt.Version5}, v5Connack(nil))
		if cp.Props.Has(packet.PropTopicAliasMaximum) {
			t.Errorf("CONNECT announces Topic Alias Maximum %d, want none", cp.Props.TopicAliasMaximum)
		}
		fc.send(aliasPublish("t", 1, "x"))
		fakeExpectViolationClose(t, c, fc, packet.V5, packet.TopicAliasInvalid)
	})
}

// aliasOf describes how a PUBLISH named its topic: "topic", "topic+N" (full
// topic defining alias N) or "@N" (alias alone).
func aliasOf(p *packet.Publish) string {
	switch {
	case !p.Props.Has(packet.PropTopicAlias):
		return p.Topic
	case p.Topic == "":
		return "@" + string(rune('0'+p.Props.TopicAlias))
	}
	return p.Topic + "+" + string(rune('0'+p.Props.TopicAlias))
}

// TestFakeTopicAliasOutbound checks the client's own aliases within the
// broker's Topic Alias Maximum of 2 [MQTT-3.2.2-17]: a topic's first
// publish carries topic and alias, later ones the alias alone; when both
// aliases are taken, a topic published once goes without an alias and does
// not evict a hot one, while a topic published more often than the least
// used aliased topic takes over its alias. QoS 0 (written by the
// application's goroutine) and QoS 1 (by the session) share the table.
func TestFakeTopicAliasOutbound(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "a", Version: mqtt.Version5},
			v5Connack(func(pr *packet.Properties) { pr.TopicAliasMaximum = 2; pr.Set(packet.PropTopicAliasMaximum) }))
		ctx := context.Background()
		topics := []string{"hot", "hot", "warm", "hot", "warm", "cold", "x", "x", "x", "x", "hot"}
		want := []string{"hot+1", "@1", "warm+2", "@1", "@2", "cold", "x", "x", "x+2", "@2", "@1"}
		for i, topic := range topics {
			qos := mqtt.QoS(i % 2)
			p := c.PublishAsync(mqtt.Message{Topic: topic, Payload: []byte{byte(i)}, QoS: qos})
			pub := fc.expectPublish()
			if got := aliasOf(pub); got != want[i] {
				t.Errorf("publish %d to %q sent as %q, want %q", i, topic, got, want[i])
			}
			if qos == 1 {
				fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: pub.PacketID})
			}
			if err := p.Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestFakeTopicAliasOutboundOff checks that no alias is sent when the
// broker allows none (no Topic Alias Maximum in CONNACK means 0,
// [MQTT-3.2.2-17]) or when DisableTopicAliases is set.
func TestFakeTopicAliasOutboundOff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		disable bool
		max     uint16
	}{{"broker allows none", false, 0}, {"disabled", true, 10}} {
		t.Run(tc.name, func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) {
				c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "a", Version: mqtt.Version5, DisableTopicAliases: tc.disable},
					v5Connack(func(pr *packet.Properties) {
						if tc.max > 0 {
							pr.TopicAliasMaximum = tc.max
							pr.Set(packet.PropTopicAliasMaximum)
						}
					}))
				for range 3 {
					if err := c.Publish(context.Background(), mqtt.Message{Topic: "t"}); err != nil {
						t.Fatal(err)
					}
					if got := aliasOf(fc.expectPublish()); got != "t" {
						t.Errorf("sent as %q, want the plain topic", got)
					}
				}
			})
		})
	}
}

// TestFakeTopicAliasResend checks that a QoS 1 publish re-sent on a new
// connection carries its full topic, since aliases belong to one
// connection [MQTT-3.3.2-7].
func TestFakeTopicAliasResend(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		b := fakebroker.New(t)
		res := fakeStartConnect(t, context.Background(), b, mqtt.Config{ClientID: "r", Version: mqtt.Version5,
			Reconnect: mqtt.ReconnectConfig{MinDelay: time.Second, MaxDelay: time.Second}})
		ack := v5Connack(func(pr *packet.Properties) { pr.TopicAliasMaximum = 5; pr.Set(packet.PropTopicAliasMaximum) })
		bc := fakeAccept(t, b, fakeTimeout)
		bc.ExpectConnect(t)
		bc.Send(t, ack)
		c, err := fakeConnectDone(t, res, fakeTimeout)
		if err != nil {
			t.Fatal(err)
		}
		fc := fakeWatch(t, bc, fakeTimeout)
		if err := c.Publish(context.Background(), mqtt.Message{Topic: "t"}); err != nil {
			t.Fatal(err)
		}
		fc.expectPublish()
		p := c.PublishAsync(mqtt.Message{Topic: "t", QoS: mqtt.AtLeastOnce})
		if got := aliasOf(fc.expectPublish()); got != "@1" {
			t.Fatalf("first send as %q, want @1", got)
		}
		bc.Close()
		bc2 := fakeAccept(t, b, fakeTimeout)
		bc2.ExpectConnect(t)
		bc2.Send(t, &packet.Connack{SessionPresent: true, Props: ack.Props})
		pub := bc2.ExpectPublish(t)
		if got := aliasOf(pub); got != "t+1" || !pub.Dup {
			t.Errorf("re-sent as %q (DUP %v), want the full topic with DUP", got, pub.Dup)
		}
		bc2.Send(t, &packet.Ack{PacketType: packet.PUBACK, PacketID: pub.PacketID})
		if err := p.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		bc2.Close()
	})
}

// TestFakePayloadFormat checks the Payload Format Indicator (MQTT 5.0
// section 3.3.2.3.2): a publish marked UTF-8 whose payload is not is
// refused before it is sent; a received one is not delivered and is
// refused with Payload format invalid (0x99): in the PUBACK at QoS 1, in
// the PUBREC at QoS 2, in a DISCONNECT at QoS 0. Valid UTF-8 is delivered
// with PayloadUTF8 set.
func TestFakePayloadFormat(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "p", Version: mqtt.Version5}, v5Connack(nil))
		err := c.Publish(context.Background(), mqtt.Message{Topic: "t", Payload: []byte{0xff, 0xfe}, PayloadUTF8: true})
		if _, ok := errors.AsType[*mqtt.ArgumentError](err); !ok {
			t.Errorf("Publish of invalid UTF-8 marked as UTF-8: %v, want *ArgumentError", err)
		}
		utf8Pub := func(id uint16, qos byte, payload []byte) *packet.Publish {
			p := &packet.Publish{Topic: "in", QoS: qos, PacketID: id, Payload: payload}
			p.Props.PayloadFormat = 1
			p.Props.Set(packet.PropPayloadFormat)
			return p
		}
		fc.send(utf8Pub(1, 1, []byte{0xc3, 0x28}))
		if a := fc.expectAck(packet.PUBACK); a.PacketID != 1 || a.ReasonCode != packet.PayloadFormatInvalid {
			t.Errorf("PUBACK %d %v, want 1 with Payload format invalid", a.PacketID, a.ReasonCode)
		}
		fc.send(utf8Pub(2, 2, []byte{0xed, 0xa0, 0x80}))
		if a := fc.expectAck(packet.PUBREC); a.PacketID != 2 || a.ReasonCode != packet.PayloadFormatInvalid {
			t.Errorf("PUBREC %d %v, want 2 with Payload format invalid", a.PacketID, a.ReasonCode)
		}
		fc.send(utf8Pub(3, 1, []byte("héllo")))
		m := fakeRecv(t, c.Messages())
		if string(m.Payload) != "héllo" || !m.PayloadUTF8 {
			t.Errorf("received %q (PayloadUTF8 %v), want the valid message", m.Payload, m.PayloadUTF8)
		}
		fc.expectAck(packet.PUBACK)
		fc.send(utf8Pub(0, 0, []byte{0x80}))
		fakeExpectViolationClose(t, c, fc, packet.V5, packet.PayloadFormatInvalid)
		select {
		case m, ok := <-c.Messages():
			if ok {
				t.Errorf("an invalid message was delivered: %v", m)
			}
		default:
		}
	})
}

// TestFakeNoProblemInfo checks Request Problem Information 0: a Reason
// String on a SUBACK is then a protocol error [MQTT-3.1.2-29], while one on
// a DISCONNECT is allowed.
func TestFakeNoProblemInfo(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, cp := fakeClient(t, mqtt.Config{ClientID: "p", Version: mqtt.Version5, NoProblemInfo: true}, v5Connack(nil))
		if !cp.Props.Has(packet.PropRequestProblemInfo) || cp.Props.RequestProblemInfo != 0 {
			t.Fatalf("CONNECT does not carry Request Problem Information 0")
		}
		res := make(chan error, 1)
		go func() {
			_, err := c.Subscribe(context.Background(), "a", 1)
			res <- err
		}()
		sub := fc.expectSubscribe()
		sa := &packet.Suback{PacketID: sub.PacketID, ReasonCodes: []packet.ReasonCode{1}}
		sa.Props.ReasonString = "granted"
		sa.Props.Set(packet.PropReasonString)
		fc.send(sa)
		fakeExpectViolationClose(t, c, fc, packet.V5, packet.ProtocolError)
		if err := <-res; !errors.Is(err, mqtt.ErrConnectionLost) {
			t.Errorf("Subscribe: %v, want ErrConnectionLost", err)
		}
	})
}

// TestFakeSubscriptionAvailability checks that filters the broker says it
// does not support (Wildcard Subscription Available 0, Shared Subscription
// Available 0, MQTT 5.0 section 3.2.2.3) are refused before anything is
// sent, and that No Local on a shared subscription is refused as the
// protocol error it would be [MQTT-3.8.3-4].
func TestFakeSubscriptionAvailability(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "s", Version: mqtt.Version5}, v5Connack(func(pr *packet.Properties) {
			pr.WildcardSubAvail = 0
			pr.Set(packet.PropWildcardSubAvailable)
			pr.SharedSubAvail = 0
			pr.Set(packet.PropSharedSubAvailable)
		}))
		ctx := context.Background()
		for _, f := range []mqtt.Filter{{Topic: "a/+"}, {Topic: "a/#"}, {Topic: "$share/g/a"}, {Topic: "$share/g/a", NoLocal: true}} {
			_, err := c.SubscribeFilters(ctx, f)
			if _, ok := errors.AsType[*mqtt.ArgumentError](err); !ok {
				t.Errorf("SubscribeFilters(%+v): %v, want *ArgumentError", f, err)
			}
		}
		fc.expectNothing()
		res := make(chan error, 1)
		go func() {
			_, err := c.Subscribe(ctx, "a/b", 1)
			res <- err
		}()
		sub := fc.expectSubscribe()
		fc.send(&packet.Suback{PacketID: sub.PacketID, ReasonCodes: []packet.ReasonCode{1}})
		if err := <-res; err != nil {
			t.Errorf("Subscribe to a plain filter: %v", err)
		}
	})
}

// redirectDialer records the addresses a client dials and connects them all
// to one fake broker.
type redirectDialer struct {
	b     *fakebroker.Broker
	addrs chan string
}

func (d *redirectDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.addrs <- addr
	return d.b.Dial(ctx, network, addr)
}

// TestFakeRedirectConnack checks server redirection at connect (MQTT 5.0
// section 4.11): with FollowRedirects, a CONNACK refusing with Use another
// server (0x9C) and a Server Reference makes the client connect to the
// referenced server; without it, Connect fails with a *ConnectError that
// carries the reference.
func TestFakeRedirectConnack(t *testing.T) {
	t.Parallel()
	for _, follow := range []bool{true, false} {
		t.Run(fmt.Sprint("follow=", follow), func(t *testing.T) {
			fakeBubble(t, func(t *testing.T) {
				b := fakebroker.New(t)
				d := &redirectDialer{b: b, addrs: make(chan string, 4)}
				res := fakeStartConnect(t, context.Background(), b, mqtt.Config{ClientID: "r", Version: mqtt.Version5,
					Servers: []string{"mqtt://first:1883"}, Dialer: d.dial, FollowRedirects: follow})
				bc := fakeAccept(t, b, fakeTimeout)
				bc.ExpectConnect(t)
				ack := &packet.Connack{ReasonCode: packet.UseAnotherServer}
				ack.Props.ServerReference = "second:1884"
				ack.Props.Set(packet.PropServerReference)
				bc.Send(t, ack)
				if !follow {
					_, err := fakeConnectDone(t, res, fakeTimeout)
					ce, ok := errors.AsType[*mqtt.ConnectError](err)
					if !ok || ce.Code != packet.UseAnotherServer || ce.ServerReference != "second:1884" {
						t.Fatalf("Connect: %v, want a *ConnectError with the reference", err)
					}
					return
				}
				bc2 := fakeAccept(t, b, fakeTimeout)
				bc2.ExpectConnect(t)
				bc2.Send(t, &packet.Connack{})
				if _, err := fakeConnectDone(t, res, fakeTimeout); err != nil {
					t.Fatal(err)
				}
				if got := []string{<-d.addrs, <-d.addrs}; !cmp.Equal(got, []string{"first:1883", "second:1884"}) {
					t.Errorf("dialed %v, want first:1883 then second:1884", got)
				}
				bc2.Close()
			})
		})
	}
}

// TestFakeRedirectDisconnect checks that a DISCONNECT with Server moved
// (0x9D) and a Server Reference makes a client with FollowRedirects
// reconnect to the referenced server at once, and that the reason reaches
// the connection-lost event as a *ReasonError carrying the reference.
func TestFakeRedirectDisconnect(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		b := fakebroker.New(t)
		d := &redirectDialer{b: b, addrs: make(chan string, 4)}
		res := fakeStartConnect(t, context.Background(), b, mqtt.Config{ClientID: "r", Version: mqtt.Version5,
			Servers: []string{"mqtt://first:1883"}, Dialer: d.dial, FollowRedirects: true,
			Reconnect: mqtt.ReconnectConfig{MinDelay: time.Minute, MaxDelay: time.Minute}})
		bc := fakeAccept(t, b, fakeTimeout)
		bc.ExpectConnect(t)
		bc.Send(t, &packet.Connack{})
		c, err := fakeConnectDone(t, res, fakeTimeout)
		if err != nil {
			t.Fatal(err)
		}
		<-d.addrs
		dis := &packet.Disconnect{ReasonCode: packet.ServerMoved}
		dis.Props.ServerReference = "mqtt://moved:2883"
		dis.Props.Set(packet.PropServerReference)
		bc.Send(t, dis)
		start := time.Now()
		bc2 := fakeAccept(t, b, fakeTimeout)
		if waited := time.Since(start); waited >= time.Minute {
			t.Errorf("reconnected after %v, want at once", waited)
		}
		if addr := <-d.addrs; addr != "moved:2883" {
			t.Errorf("reconnected to %q, want moved:2883", addr)
		}
		bc2.ExpectConnect(t)
		bc2.Send(t, &packet.Connack{SessionPresent: true})
		for ev := range c.Events() {
			if ev.Kind == mqtt.EventConnectionLost {
				re, ok := errors.AsType[*mqtt.ReasonError](ev.Err)
				if !ok || re.Code != packet.ServerMoved || re.ServerReference != "mqtt://moved:2883" {
					t.Errorf("connection lost with %v, want the DISCONNECT's reason and reference", ev.Err)
				}
			}
			if ev.Kind == mqtt.EventConnected && ev.Server != "mqtt://first:1883" {
				break
			}
		}
		bc2.Close()
	})
}

// TestFakeSubscriptionIDsUnavailable checks that when the broker announces
// Subscription Identifier Available 0 (MQTT 5.0 section 3.2.2.3.12) the
// SUBSCRIBE carries no identifier, and messages are routed by topic.
func TestFakeSubscriptionIDsUnavailable(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "s", Version: mqtt.Version5}, v5Connack(func(pr *packet.Properties) {
			pr.SubIDAvail = 0
			pr.Set(packet.PropSubIDAvailable)
		}))
		res := make(chan *mqtt.Subscription, 1)
		go func() {
			s, err := c.Subscribe(context.Background(), "a/+", 1)
			if err != nil {
				t.Error(err)
			}
			res <- s
		}()
		sub := fc.expectSubscribe()
		if len(sub.Props.SubscriptionIDs) != 0 {
			t.Errorf("SUBSCRIBE carries identifiers %v, want none", sub.Props.SubscriptionIDs)
		}
		fc.send(&packet.Suback{PacketID: sub.PacketID, ReasonCodes: []packet.ReasonCode{1}})
		s := <-res
		fc.send(&packet.Publish{Topic: "a/b", Payload: []byte("x")})
		if m := fakeRecv(t, s.Messages()); m.Topic != "a/b" {
			t.Errorf("received %q", m.Topic)
		}
	})
}

// TestFakeReceiveMaximumOne checks the tightest flow control a broker can
// announce, Receive Maximum 1 [MQTT-4.9.0-2]: QoS 1 and 2 publishes go out
// strictly one at a time, each after the previous one completed, in order,
// while a subscribe is not held back by it.
func TestFakeReceiveMaximumOne(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "rm1", Version: mqtt.Version5}, v5Connack(func(pr *packet.Properties) {
			pr.ReceiveMaximum = 1
			pr.Set(packet.PropReceiveMaximum)
		}))
		var pending []*mqtt.Pending
		for i := range 6 {
			pending = append(pending, c.PublishAsync(mqtt.Message{Topic: "q", Payload: []byte{byte('0' + i)}, QoS: mqtt.QoS(1 + i%2)}))
		}
		subDone := make(chan error, 1)
		go func() {
			_, err := c.Subscribe(context.Background(), "s", 1)
			subDone <- err
		}()
		var got []string
		sawSubscribe := false
		for len(got) < 6 {
			switch p := fc.next().(type) {
			case *packet.Subscribe:
				sawSubscribe = true
				fc.send(&packet.Suback{PacketID: p.PacketID, ReasonCodes: []packet.ReasonCode{1}})
			case *packet.Publish:
				got = append(got, string(p.Payload))
				fc.expectNothingButSubscribe(&sawSubscribe)
				if p.QoS == 1 {
					fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: p.PacketID})
				} else {
					fc.send(&packet.Ack{PacketType: packet.PUBREC, PacketID: p.PacketID})
					fc.expectAck(packet.PUBREL)
					fc.send(&packet.Ack{PacketType: packet.PUBCOMP, PacketID: p.PacketID})
				}
			default:
				t.Fatalf("unexpected %s", fakebroker.Describe(p))
			}
		}
		if diff := cmp.Diff([]string{"0", "1", "2", "3", "4", "5"}, got); diff != "" {
			t.Errorf("publish order (-want +got):\n%s", diff)
		}
		for i, p := range pending {
			if err := p.Wait(context.Background()); err != nil {
				t.Errorf("publish %d: %v", i, err)
			}
		}
		if !sawSubscribe {
			t.Error("the SUBSCRIBE waited behind the publishes")
		}
		if err := <-subDone; err != nil {
			t.Errorf("Subscribe: %v", err)
		}
	})
}

// TestFakeBlockBeforeSuback checks OverflowPolicy Block on messages the
// broker sends before the SUBACK (which it may, MQTT 5.0 section 3.8.4):
// the application cannot read them before Subscribe returns, so holding
// the reading back would keep the SUBACK out for ever. With a memory limit
// that holds one message, the first is kept and the others are dropped and
// counted; once Subscribe has returned (no call waits for the broker), Block
// holds the reading back and nothing more is dropped.
func TestFakeBlockBeforeSuback(t *testing.T) {
	fakeEachVersion(t, func(t *testing.T, v mqtt.ProtocolVersion, wire packet.Version) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "b", Version: v, QoS0Overflow: mqtt.Block, MemoryLimit: 1}, &packet.Connack{})
		res := make(chan *mqtt.Subscription, 1)
		go func() {
			s, err := c.Subscribe(context.Background(), "f/#", 0)
			if err != nil {
				t.Error(err)
			}
			res <- s
		}()
		sub := fc.expectSubscribe()
		var pubs []packet.Packet
		for i := range 5 {
			pubs = append(pubs, &packet.Publish{Topic: "f/early", Payload: []byte{byte(i)}})
		}
		pubs = append(pubs, &packet.Suback{PacketID: sub.PacketID, ReasonCodes: []packet.ReasonCode{0}})
		<-fc.sendAsync(pubs...)
		s := <-res
		if got := c.Stats().Dropped; got != 4 {
			t.Errorf("Dropped = %d before SUBACK, want 4 (room for 1 of 5 messages)", got)
		}
		if m := fakeRecv(t, s.Messages()); m.Payload[0] != 0 {
			t.Errorf("early message has payload %d, want 0", m.Payload[0])
		}
		var late []packet.Packet
		for i := range 6 {
			late = append(late, &packet.Publish{Topic: "f/late", Payload: []byte{byte(10 + i)}})
		}
		sent := fc.sendAsync(late...)
		for i := range 6 {
			if m := fakeRecv(t, s.Messages()); m.Payload[0] != byte(10+i) {
				t.Errorf("late message %d has payload %d", i, m.Payload[0])
			}
		}
		<-sent
		if got := c.Stats().Dropped; got != 4 {
			t.Errorf("Dropped = %d after SUBACK, want still 4", got)
		}
	})
}

func v5Client(t *testing.T, b *brokertest.Broker, id string, mod ...func(*mqtt.Config)) *mqtt.Client {
	t.Helper()
	cfg := mqtt.Config{Servers: []string{b.URL()}, ClientID: id, Version: mqtt.Version5}
	for _, f := range mod {
		f(&cfg)
	}
	return connect(t, cfg)
}

// TestMosquitto5MessageProperties checks that every message property
// travels publisher → broker → subscriber (MQTT 5.0 section 3.3.2.3):
// Payload Format Indicator, Message Expiry Interval (counted down by the
// broker, so at most what was sent), Content Type, Response Topic,
// Correlation Data, and User Properties in order with a repeated key
// [MQTT-3.3.2-18]; and that each subscription receives the messages its
// Subscription Identifier names.
func TestMosquitto5MessageProperties(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	ctx := testContext(t)
	id := uniqueID(t)
	sub := v5Client(t, b, id+"-sub")
	pub := v5Client(t, b, id+"-pub")
	all, err := sub.Subscribe(ctx, id+"/#", mqtt.AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}
	one, err := sub.Subscribe(ctx, id+"/one", mqtt.AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}
	want := mqtt.Message{
		Topic: id + "/one", Payload: []byte("héllo"), QoS: mqtt.AtLeastOnce,
		ContentType: "text/plain; charset=utf-8", ResponseTopic: id + "/reply", CorrelationData: []byte{1, 2, 3},
		PayloadUTF8: true, Expiry: time.Hour,
		UserProperties: []mqtt.UserProperty{{Key: "k", Value: "1"}, {Key: "a", Value: "x"}, {Key: "k", Value: "2"}},
	}
	if err := pub.Publish(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, mqtt.Message{Topic: id + "/two", Payload: []byte("2"), QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	opts := []cmp.Option{ignoreAck, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(mqtt.Message{}, "SubscriptionIDs", "Expiry")}
	for _, s := range []*mqtt.Subscription{all, one} {
		got := receive(t, s.Messages())
		if diff := cmp.Diff(want, got, opts...); diff != "" {
			t.Errorf("received (-want +got):\n%s", diff)
		}
		if got.Expiry <= 0 || got.Expiry > time.Hour {
			t.Errorf("Expiry = %v, want (0, 1h]", got.Expiry)
		}
	}
	if got := receive(t, all.Messages()); got.Topic != id+"/two" {
		t.Errorf("second message on the wildcard subscription: %q", got.Topic)
	}
	expectNone(t, one.Messages(), 200*time.Millisecond)
}

// TestMosquitto5SubscriptionOptions checks No Local [MQTT-3.8.3-3], Retain
// As Published [MQTT-3.3.1-12] [MQTT-3.3.1-13] and Retain Handling 0, 1 and
// 2 [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11].
func TestMosquitto5SubscriptionOptions(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	ctx := testContext(t)
	id := uniqueID(t)
	c := v5Client(t, b, id)
	other := v5Client(t, b, id+"-other")

	local, err := c.SubscribeFilters(ctx, mqtt.Filter{Topic: id + "/nl", QoS: 1, NoLocal: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, mqtt.Message{Topic: id + "/nl", Payload: []byte("own"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if err := other.Publish(ctx, mqtt.Message{Topic: id + "/nl", Payload: []byte("other"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, local.Messages()); string(m.Payload) != "other" {
		t.Errorf("No Local: received %q first, want only the other client's message", m.Payload)
	}

	if err := other.Publish(ctx, mqtt.Message{Topic: id + "/r", Payload: []byte("kept"), QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		filter       mqtt.Filter
		twice        bool // subscribe a second time to the same filter
		wantRetained []bool
	}{
		{"handling 0 sends the retained message on every subscribe", mqtt.Filter{Topic: id + "/r", QoS: 1, RetainHandling: 0}, true, []bool{true, true}},
		{"handling 1 sends it only to a new subscription", mqtt.Filter{Topic: id + "/+", QoS: 1, RetainHandling: 1}, true, []bool{true, false}},
		{"handling 2 never sends it", mqtt.Filter{Topic: id + "/#", QoS: 1, RetainHandling: 2}, false, []bool{false}},
	} {
		c := v5Client(t, b, uniqueID(t))
		for i, want := range tc.wantRetained {
			s, err := c.SubscribeFilters(ctx, tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			if want {
				if m := receive(t, s.Messages()); !m.Retain || string(m.Payload) != "kept" {
					t.Errorf("%s: subscribe %d got %v", tc.name, i+1, m)
				}
			} else {
				expectNone(t, s.Messages(), 200*time.Millisecond)
			}
		}
	}

	// Retain As Published keeps the RETAIN flag on live messages.
	for _, rap := range []bool{true, false} {
		c := v5Client(t, b, uniqueID(t))
		s, err := c.SubscribeFilters(ctx, mqtt.Filter{Topic: id + "/rap", QoS: 1, RetainAsPublished: rap, RetainHandling: 2})
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Publish(ctx, mqtt.Message{Topic: id + "/rap", Payload: []byte("live"), QoS: 1, Retain: true}); err != nil {
			t.Fatal(err)
		}
		if m := receive(t, s.Messages()); m.Retain != rap {
			t.Errorf("Retain As Published %v: live message has Retain %v", rap, m.Retain)
		}
	}
}

// TestMosquitto5SharedSubscription checks a shared subscription
// ($share/group/filter, MQTT 5.0 section 4.8.2): each message goes to one
// member of the group, every message is delivered, and the members' own
// channels receive them (routing strips the share prefix).
func TestMosquitto5SharedSubscription(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	ctx := testContext(t)
	id := uniqueID(t)
	const members, n = 3, 90
	var subs []*mqtt.Subscription
	for i := range members {
		c := v5Client(t, b, fmt.Sprintf("%s-w%d", id, i))
		s, err := c.Subscribe(ctx, "$share/workers/"+id+"/jobs/+", mqtt.AtLeastOnce)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	pub := v5Client(t, b, id+"-pub")
	for i := range n {
		if err := pub.Publish(ctx, mqtt.Message{Topic: fmt.Sprintf("%s/jobs/%d", id, i), Payload: []byte{byte(i)}, QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	seen := make(map[byte]int)
	per := make([]int, members)
	deadline := time.After(testTimeout)
	for len(seen) < n {
		select {
		case m := <-subs[0].Messages():
			seen[m.Payload[0]]++
			per[0]++
		case m := <-subs[1].Messages():
			seen[m.Payload[0]]++
			per[1]++
		case m := <-subs[2].Messages():
			seen[m.Payload[0]]++
			per[2]++
		case <-deadline:
			t.Fatalf("received %d of %d messages", len(seen), n)
		}
	}
	for k, v := range seen {
		if v != 1 {
			t.Errorf("message %d delivered %d times", k, v)
		}
	}
	if slices.Contains(per, 0) {
		t.Errorf("messages per member %v: want every member to get some", per)
	}
}

// TestMosquitto5RequestResponse checks Request, Reply and Serve: 40
// concurrent requests from two goroutine groups over one shared reply
// subscription each get their own answer (matched by Correlation Data,
// MQTT 5.0 section 4.10).
func TestMosquitto5RequestResponse(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	ctx := testContext(t)
	id := uniqueID(t)
	responder := v5Client(t, b, id+"-resp")
	requests, err := responder.Subscribe(ctx, id+"/double", mqtt.AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}
	srvCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 2)
	for range 2 {
		go func() {
			served <- mqtt.Serve(srvCtx, responder, requests, func(ctx context.Context, req mqtt.Message) (mqtt.Message, error) {
				var n int
				fmt.Sscan(string(req.Payload), &n)
				return mqtt.Message{Payload: fmt.Appendf(nil, "%d", 2*n), QoS: mqtt.AtLeastOnce}, nil
			})
		}()
	}
	requester := v5Client(t, b, id+"-req")
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 40 {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			reply, err := requester.Request(rctx, mqtt.Message{Topic: id + "/double", Payload: fmt.Appendf(nil, "%d", i), QoS: mqtt.AtLeastOnce})
			if err != nil {
				t.Errorf("Request %d: %v", i, err)
				failed.Add(1)
				return
			}
			if got, want := string(reply.Payload), fmt.Sprint(2*i); got != want {
				t.Errorf("Request %d: reply %q, want %q", i, got, want)
			}
		})
	}
	wg.Wait()
	stop()
	for range 2 {
		if err := <-served; !errors.Is(err, context.Canceled) {
			t.Errorf("Serve returned %v, want context.Canceled", err)
		}
	}
	// A request nobody answers ends with its context.
	rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := requester.Request(rctx, mqtt.Message{Topic: id + "/nobody", QoS: 1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("unanswered Request: %v, want context.DeadlineExceeded", err)
	}
	// 3.1.1 has no response topic.
	old := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-311", Version: mqtt.Version311})
	if _, err := old.Request(ctx, mqtt.Message{Topic: id + "/double"}); !errors.As(err, new(*mqtt.ArgumentError)) {
		t.Errorf("Request over 3.1.1: %v, want *ArgumentError", err)
	}
}

// countingDialer counts the bytes a client writes.
type countingDialer struct{ written atomic.Int64 }

type countingConn struct {
	net.Conn
	d *countingDialer
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.d.written.Add(int64(n))
	return n, err
}

func (d *countingDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return countingConn{c, d}, nil
}

// TestMosquitto5TopicAliases checks outbound topic aliases against
// mosquitto's Topic Alias Maximum: messages to a few long topics arrive
// with the right topics, and the client writes fewer bytes than with
// aliases turned off.
func TestMosquitto5TopicAliases(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Extra: []string{"max_topic_alias 4"}})
	ctx := testContext(t)
	id := uniqueID(t)
	sub := v5Client(t, b, id+"-sub")
	s, err := sub.Subscribe(ctx, id+"/#", mqtt.AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	written := make(map[bool]int64)
	for _, disable := range []bool{false, true} {
		d := &countingDialer{}
		pub := v5Client(t, b, fmt.Sprintf("%s-pub-%v", id, disable), func(c *mqtt.Config) {
			c.Dialer = d.dial
			c.DisableTopicAliases = disable
		})
		start := d.written.Load()
		for i := range n {
			topic := fmt.Sprintf("%s/a/rather/long/topic/name/for/sensor/%d", id, i%3)
			if err := pub.Publish(ctx, mqtt.Message{Topic: topic, Payload: []byte{byte(i)}, QoS: mqtt.QoS(i % 2)}); err != nil {
				t.Fatal(err)
			}
		}
		written[disable] = d.written.Load() - start
		for i := range n {
			m := receive(t, s.Messages())
			if want := fmt.Sprintf("%s/a/rather/long/topic/name/for/sensor/%d", id, i%3); m.Topic != want || m.Payload[0] != byte(i) {
				t.Fatalf("aliases off=%v: message %d on %q (%d), want %q", disable, i, m.Topic, m.Payload[0], want)
			}
		}
	}
	if written[false] >= written[true]*2/3 {
		t.Errorf("bytes written with aliases %d, without %d: want aliases to save more than a third", written[false], written[true])
	}
}

// TestMosquitto5BrokerLimits checks that limits mosquitto announces in
// CONNACK are applied before anything is sent: Maximum Packet Size
// [MQTT-3.1.2-24], Maximum QoS [MQTT-3.2.2-11] and Retain Available
// [MQTT-3.2.2-14].
func TestMosquitto5BrokerLimits(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Extra: []string{"max_packet_size 1000", "retain_available false", "max_qos 1"}})
	ctx := testContext(t)
	c := v5Client(t, b, uniqueID(t))
	for _, m := range []mqtt.Message{
		{Topic: "big", Payload: make([]byte, 2000)},
		{Topic: "q", QoS: mqtt.ExactlyOnce},
		{Topic: "r", Retain: true},
	} {
		err := c.Publish(ctx, m)
		if _, ok := errors.AsType[*mqtt.ArgumentError](err); !ok {
			t.Errorf("Publish(%s, %d bytes, QoS %d, retain %v): %v, want *ArgumentError", m.Topic, len(m.Payload), m.QoS, m.Retain, err)
		}
	}
	if err := c.Publish(ctx, mqtt.Message{Topic: "ok", Payload: make([]byte, 500), QoS: 1}); err != nil {
		t.Errorf("Publish within the limits: %v", err)
	}
	if err := c.Err(); err != nil {
		t.Errorf("client stopped: %v", err)
	}
}

// TestMosquittoStatsAndIter checks Stats counters and Subscription.All on
// a real broker.
func TestMosquittoStatsAndIter(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	ctx := testContext(t)
	id := uniqueID(t)
	c := v5Client(t, b, id)
	s, err := c.Subscribe(ctx, id+"/#", mqtt.AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		p := fmt.Appendf(nil, `{"sensor":"s1","value":%d}`, i)
		if err := c.Publish(ctx, mqtt.Message{Topic: id + "/r", Payload: p, QoS: mqtt.QoS(i % 2)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Publish(ctx, mqtt.Message{Topic: id + "/bad", Payload: []byte("{"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range s.All(ctx) {
		got = append(got, string(m.Payload))
		if len(got) == 4 {
			break
		}
	}
	want := []string{`{"sensor":"s1","value":0}`, `{"sensor":"s1","value":1}`, `{"sensor":"s1","value":2}`, "{"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
	st := c.Stats()
	// Two QoS 0 and two QoS 1 messages each way (delivered at the QoS they
	// were published with): 25-byte payloads and the 1-byte "{".
	counts := [3]mqtt.MessageCount{{Messages: 2, Bytes: 50}, {Messages: 2, Bytes: 26}}
	if st.Sent != counts || st.Received != counts {
		t.Errorf("Stats sent %+v received %+v, want %+v both ways", st.Sent, st.Received, counts)
	}
	if st.Connects != 1 || !st.Connected || st.Inflight != 0 || st.Queued != 0 {
		t.Errorf("Stats = %+v", st)
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Stats().LastRTT <= 0 {
		t.Error("LastRTT not set after Ping")
	}
	// All ends with the context.
	actx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	for m := range s.All(actx) {
		t.Errorf("unexpected message %v", m)
	}
}
