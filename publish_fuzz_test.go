package mqtt_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/google/go-cmp/cmp"
)

// fuzzInflight is the broker's Receive Maximum (MQTT 5.0) or the client's
// MaxInflight (3.1.1) in FuzzPublishOptions: small, so that one leaked
// in-flight slot shows.
const fuzzInflight = 2

// fuzzFinalTopic is the topic of the publishes that check, after the fuzzed
// one, that every in-flight slot is free: the broker holds their
// acknowledgements until fuzzInflight of them are in flight at once.
const fuzzFinalTopic = "fuzz/final"

// FuzzPublishOptions publishes a message built from fuzzed fields to the
// fake broker, which acknowledges QoS 1 and 2. The publish must either be
// refused at once with an *ArgumentError, or complete without error with
// the broker receiving the message as it was given (MQTT 5.0 properties
// included, the expiry rounded up to whole seconds); it must never hang.
// Afterwards fuzzInflight QoS 1 publishes must be in flight together: a
// publish that failed after it was accepted must have given back its
// packet ID and send quota.
//
// The seeds include the failures this guards against: correlation data
// over 65,535 bytes, once accepted and then unencodable, left QoS 1 and 2
// publishes in flight for ever and QoS 0 ones failing as "connection lost";
// an expiry of 2^32 s wrapped to 0 on the wire.
func FuzzPublishOptions(f *testing.F) {
	type seed struct {
		v5            bool
		topic         string
		qos           uint8
		payloadLen    uint32
		payloadByte   byte
		payloadUTF8   bool
		corrLen       uint32
		contentType   string
		responseTopic string
		expiry        int64
		userKey       string
		userValue     string
		userCount     uint8
		userPad       uint32
	}
	for _, s := range []seed{
		{v5: true, topic: "a/b", qos: 1, payloadLen: 5, payloadByte: 'x', payloadUTF8: true, corrLen: 4,
			contentType: "text/plain", responseTopic: "r/1", expiry: int64(90 * time.Second), userKey: "k", userValue: "v", userCount: 2},
		{v5: false, topic: "a/b", qos: 2, payloadLen: 100},
		{v5: true, topic: "t", qos: 0, payloadLen: 1 << 16},
		// Correlation data over 65,535 bytes: hung QoS 1 and 2 publishes.
		{v5: true, topic: "t", qos: 1, corrLen: 65536},
		{v5: true, topic: "t", qos: 2, corrLen: 65536},
		{v5: true, topic: "t", qos: 0, corrLen: 65536},
		{v5: false, topic: "t", qos: 1, corrLen: 65536},
		{v5: true, topic: "t", qos: 1, corrLen: 65535},
		// Expiry: 2^32 s wrapped to 0; the limits; fractions round up.
		{v5: true, topic: "t", qos: 1, expiry: int64(1 << 32 * time.Second)},
		{v5: true, topic: "t", qos: 1, expiry: int64(0xffffffff * time.Second)},
		{v5: true, topic: "t", qos: 1, expiry: int64(0xffffffff*time.Second) + 1},
		{v5: true, topic: "t", qos: 1, expiry: 1},
		{v5: true, topic: "t", qos: 1, expiry: -1},
		// Strings: too long, not UTF-8, U+0000; topics with wildcards.
		{v5: true, topic: "t", qos: 1, userKey: "k", userCount: 1, userPad: 65535},
		{v5: true, topic: "t", qos: 1, userKey: "k", userCount: 1, userPad: 65536},
		{v5: true, topic: "t", qos: 2, userKey: "k\x00", userCount: 1},
		{v5: true, topic: "t", qos: 1, contentType: "a\xffb"},
		{v5: true, topic: "t", qos: 1, contentType: "a\x00b"},
		{v5: true, topic: "t", qos: 1, responseTopic: "r/+"},
		{v5: true, topic: "a/#", qos: 1},
		{v5: true, topic: "", qos: 0},
		{v5: true, topic: "t", qos: 3},
		{v5: true, topic: "t", qos: 1, payloadLen: 3, payloadByte: 0xff, payloadUTF8: true},
	} {
		f.Add(s.v5, s.topic, s.qos, s.payloadLen, s.payloadByte, s.payloadUTF8, s.corrLen, s.contentType,
			s.responseTopic, s.expiry, s.userKey, s.userValue, s.userCount, s.userPad)
	}
	f.Fuzz(func(t *testing.T, v5 bool, topic string, qos uint8, payloadLen uint32, payloadByte byte, payloadUTF8 bool,
		corrLen uint32, contentType, responseTopic string, expiry int64, userKey, userValue string, userCount uint8, userPad uint32) {
		m := mqtt.Message{
			Topic:         topic,
			QoS:           mqtt.QoS(qos % 4),
			Payload:       bytes.Repeat([]byte{payloadByte}, int(payloadLen%(1<<17))),
			PayloadUTF8:   payloadUTF8,
			ContentType:   contentType,
			ResponseTopic: responseTopic,
			Expiry:        time.Duration(expiry),
		}
		if n := corrLen % (1 << 17); n > 0 {
			m.CorrelationData = bytes.Repeat([]byte{'c'}, int(n))
		}
		value := userValue + strings.Repeat("v", int(userPad%(1<<17)))
		for range userCount % 4 {
			m.UserProperties = append(m.UserProperties, mqtt.UserProperty{Key: userKey, Value: value})
		}
		synctest.Test(t, func(t *testing.T) { fuzzPublish(t, v5, m) })
	})
}

// fuzzPublish publishes m on a new client of a fake broker, then checks
// that fuzzInflight publishes can be in flight at once.
func fuzzPublish(t *testing.T, v5 bool, m mqtt.Message) {
	// Without keepalive a publish that hangs hangs until fakeTimeout,
	// instead of ending with the connection when the fake clock jumps.
	cfg := mqtt.Config{ClientID: "fuzz", KeepAlive: -1, Version: mqtt.Version311, MaxInflight: fuzzInflight}
	ack := &packet.Connack{}
	if v5 {
		cfg.Version, cfg.MaxInflight = mqtt.Version5, 0
		ack.Props.ReceiveMaximum = fuzzInflight
		ack.Props.Set(packet.PropReceiveMaximum)
	}
	c, bc := fakeClientConn(t, cfg, ack)
	received := fuzzAcker(bc)

	pub := c.PublishAsync(m)
	refused := false
	select {
	case <-pub.Done():
		if err := pub.Err(); err != nil {
			if _, ok := errors.AsType[*mqtt.ArgumentError](err); !ok {
				t.Fatalf("PublishAsync(%s) failed at once with %v (%T), want nil or an *ArgumentError", &m, err, err)
			}
			refused = true
		}
	default:
	}
	if !refused {
		select {
		case <-pub.Done():
		case <-time.After(fakeTimeout):
			t.Fatalf("PublishAsync(%s) was accepted and never completed", &m)
		}
		if err := pub.Err(); err != nil {
			t.Fatalf("PublishAsync(%s) was accepted, then failed: %v", &m, err)
		}
		select {
		case got := <-received:
			fuzzCheckReceived(t, v5, &m, got)
		case <-time.After(fakeTimeout):
			t.Fatalf("PublishAsync(%s) completed, the broker received nothing", &m)
		}
	}

	final := make([]*mqtt.Pending, fuzzInflight)
	for i := range final {
		final[i] = c.PublishAsync(mqtt.Message{Topic: fuzzFinalTopic, QoS: mqtt.AtLeastOnce})
	}
	for i, p := range final {
		select {
		case <-p.Done():
			if err := p.Err(); err != nil {
				t.Fatalf("publish %d of %d after %s: %v", i+1, fuzzInflight, &m, err)
			}
		case <-time.After(fakeTimeout):
			t.Fatalf("after PublishAsync(%s) (refused %t), %d QoS 1 publishes cannot be in flight at once: a slot leaked", &m, refused, fuzzInflight)
		}
	}
	for range final {
		if got := <-received; got.Topic != fuzzFinalTopic {
			t.Fatalf("broker received a PUBLISH to %q, want %q", got.Topic, fuzzFinalTopic)
		}
	}
	select {
	case got := <-received:
		t.Fatalf("broker received an unexpected PUBLISH to %q", got.Topic)
	default:
	}
}

// fuzzAcker reads what the client sends on bc until the connection ends and
// answers as a broker: PUBACK for QoS 1, PUBREC for QoS 2 and PUBCOMP for
// PUBREL. Publishes to fuzzFinalTopic are acknowledged only once
// fuzzInflight of them are in flight. Every PUBLISH is passed on to the
// returned channel.
func fuzzAcker(bc *fakebroker.Conn) <-chan *packet.Publish {
	received := make(chan *packet.Publish, 16)
	go func() {
		var held []*packet.Publish
		ack := func(p *packet.Publish) error {
			typ := packet.PUBACK
			if p.QoS == 2 {
				typ = packet.PUBREC
			}
			return bc.SendErr(&packet.Ack{PacketType: typ, PacketID: p.PacketID})
		}
		for {
			pk, err := bc.ReadErr()
			if err != nil {
				return
			}
			switch pk := pk.(type) {
			case *packet.Publish:
				select {
				case received <- pk:
				default: // more than the test reads: it fails on the count anyway
				}
				switch {
				case pk.QoS == 0:
				case pk.Topic != fuzzFinalTopic:
					err = ack(pk)
				default:
					if held = append(held, pk); len(held) == fuzzInflight {
						for _, h := range held {
							if err = ack(h); err != nil {
								break
							}
						}
						held = nil
					}
				}
			case *packet.Ack:
				if pk.PacketType == packet.PUBREL {
					err = bc.SendErr(&packet.Ack{PacketType: packet.PUBCOMP, PacketID: pk.PacketID})
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return received
}

// fuzzCheckReceived checks that the broker received m as published: over
// MQTT 5.0 with its properties, the expiry in whole seconds rounded up.
func fuzzCheckReceived(t *testing.T, v5 bool, m *mqtt.Message, got *packet.Publish) {
	t.Helper()
	want := &packet.Publish{Topic: m.Topic, QoS: byte(m.QoS), Payload: m.Payload, PacketID: got.PacketID}
	if v5 {
		pr := &want.Props
		if m.ContentType != "" {
			pr.ContentType = m.ContentType
			pr.Set(packet.PropContentType)
		}
		if m.ResponseTopic != "" {
			pr.ResponseTopic = m.ResponseTopic
			pr.Set(packet.PropResponseTopic)
		}
		if m.CorrelationData != nil {
			pr.CorrelationData = m.CorrelationData
			pr.Set(packet.PropCorrelationData)
		}
		if m.PayloadUTF8 {
			pr.PayloadFormat = 1
			pr.Set(packet.PropPayloadFormat)
		}
		if m.Expiry > 0 {
			secs := int64(m.Expiry / time.Second)
			if m.Expiry%time.Second != 0 {
				secs++
			}
			if secs > 0xffffffff {
				t.Fatalf("accepted Expiry %v: %d s does not fit the 32-bit Message Expiry Interval", m.Expiry, secs)
			}
			pr.MessageExpiry = uint32(secs)
			pr.Set(packet.PropMessageExpiry)
		}
		pr.User = m.UserProperties
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(bytes.Equal)); diff != "" {
		t.Fatalf("broker received (-want +got):\n%s", diff)
	}
}
