package packet

import (
	"bytes"
	"testing"
)

func benchPublish(qos byte) *Publish {
	p := &Publish{Topic: "sensors/building-1/floor-2/temperature", QoS: qos, Payload: payload(64)}
	if qos > 0 {
		p.PacketID = 42
	}
	return p
}

func benchmarkAppendPublish(b *testing.B, qos byte, v Version) {
	p := benchPublish(qos)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(p.Size(v)))
	for b.Loop() {
		var err error
		buf, err = p.Append(buf[:0], v)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendPublishQoS0(b *testing.B)   { benchmarkAppendPublish(b, 0, V311) }
func BenchmarkAppendPublishQoS1(b *testing.B)   { benchmarkAppendPublish(b, 1, V311) }
func BenchmarkAppendPublishQoS0V5(b *testing.B) { benchmarkAppendPublish(b, 0, V5) }
func BenchmarkAppendPublishQoS1V5(b *testing.B) { benchmarkAppendPublish(b, 1, V5) }

// splitPacket returns the header and body of one encoded packet.
func splitPacket(tb testing.TB, pkt []byte) (Header, []byte) {
	tb.Helper()
	h, err := ReadHeader(bytes.NewReader(pkt), 0)
	if err != nil {
		tb.Fatal(err)
	}
	return h, pkt[len(pkt)-h.Remaining:]
}

func benchmarkDecodePublish(b *testing.B, v Version) {
	h, body := splitPacket(b, encode(b, benchPublish(1), v))
	var p Publish
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := DecodePublish(h, body, v, &p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodePublish(b *testing.B)   { benchmarkDecodePublish(b, V311) }
func BenchmarkDecodePublishV5(b *testing.B) { benchmarkDecodePublish(b, V5) }

func BenchmarkDecodePublishV5Props(b *testing.B) {
	p := benchPublish(1)
	p.Props.ContentType, p.Props.MessageExpiry = "application/json", 60
	p.Props.Set(PropContentType)
	p.Props.Set(PropMessageExpiry)
	h, body := splitPacket(b, encode(b, p, V5))
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodePublish(h, body, V5, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadHeader(b *testing.B) {
	pkt := encode(b, &Publish{Topic: "t", Payload: make([]byte, 20000)}, V311)
	hdr := pkt[:4] // three-byte Remaining Length
	r := bytes.NewReader(hdr)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(hdr)
		if _, err := ReadHeader(r, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func benchmarkDecodeAck(b *testing.B, a *Ack, v Version) {
	h, body := splitPacket(b, encode(b, a, v))
	var got Ack
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeAck(h, body, v, &got); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeAck(b *testing.B) {
	benchmarkDecodeAck(b, &Ack{PacketType: PUBACK, PacketID: 42}, V311)
}

func BenchmarkDecodeAckV5Reason(b *testing.B) {
	benchmarkDecodeAck(b, &Ack{PacketType: PUBREC, PacketID: 42, ReasonCode: NoMatchingSubscribers}, V5)
}

func BenchmarkAppendAck(b *testing.B) {
	a := &Ack{PacketType: PUBACK, PacketID: 42}
	buf := make([]byte, 0, 16)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = a.Append(buf[:0], V5)
	}
}

func BenchmarkRoundTripConnectV5(b *testing.B) {
	c := &Connect{Version: V5, ClientID: "client", KeepAlive: 30, Props: fullProps(CONNECT)}
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf, _ = c.Append(buf[:0], V5)
		if _, err := Read(bytes.NewReader(buf), V5, 0); err != nil {
			b.Fatal(err)
		}
	}
}
