package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/google/go-cmp/cmp"
)

// MQTT 5.0 features the scripted broker shows exactly: topic aliases both
// ways, payload format checks, problem information, subscription
// availability, redirection and enhanced authentication.

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
