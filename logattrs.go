package mqtt

import "github.com/b4e21b16/mqtt/packet"

// packetAttrs describes a packet for a Debug log line: its type and, where
// it has them, packet identifier, topic, QoS, payload size and reason code.
// Payloads and credentials are never logged.
func packetAttrs(p packet.Packet) []any {
	attrs := []any{"packet", p.Type().String()}
	switch p := p.(type) {
	case *packet.Publish:
		attrs = append(attrs, "topic", p.Topic, "qos", p.QoS, "bytes", len(p.Payload))
		if p.QoS > 0 {
			attrs = append(attrs, "id", p.PacketID)
		}
		if p.Dup {
			attrs = append(attrs, "dup", true)
		}
	case *packet.Ack:
		attrs = append(attrs, "id", p.PacketID, "reason", p.ReasonCode.String())
	case *packet.Subscribe:
		attrs = append(attrs, "id", p.PacketID, "filters", len(p.Subscriptions))
	case *packet.Suback:
		attrs = append(attrs, "id", p.PacketID)
	case *packet.Unsubscribe:
		attrs = append(attrs, "id", p.PacketID, "filters", len(p.Filters))
	case *packet.Unsuback:
		attrs = append(attrs, "id", p.PacketID)
	case *packet.Disconnect:
		attrs = append(attrs, "reason", p.ReasonCode.String())
	case *packet.Auth:
		attrs = append(attrs, "reason", p.ReasonCode.String(), "method", p.Props.AuthMethod)
	}
	return attrs
}

// inboundAttrs is packetAttrs for a packet from the reader.
func inboundAttrs(ev *inbound) []any {
	switch ev.typ {
	// Copies, so that only a logged packet is moved to the heap.
	case packet.PUBLISH:
		pub := ev.pub
		return packetAttrs(&pub)
	case packet.PUBACK, packet.PUBREC, packet.PUBREL, packet.PUBCOMP:
		var ack packet.Ack
		ev.ack.packet(ev.typ, &ack)
		return packetAttrs(&ack)
	}
	if ev.pkt != nil {
		return packetAttrs(ev.pkt)
	}
	return []any{"packet", ev.typ.String()}
}
