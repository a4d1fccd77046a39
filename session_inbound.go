package mqtt

import (
	"fmt"
	"slices"

	"github.com/b4e21b16/mqtt/packet"
)

func (s *session) handleInbound(ev *inbound) {
	if ev.err != nil {
		s.protocolFail(ev.err)
		return
	}
	switch ev.typ {
	case packet.PUBLISH:
		s.receive(&ev.pub)
	case packet.PUBACK, packet.PUBREC, packet.PUBCOMP:
		s.publishAcked(&ev.ack)
	case packet.PUBREL:
		s.released(&ev.ack)
	case packet.SUBACK:
		s.subacked(ev.pkt.(*packet.Suback))
	case packet.UNSUBACK:
		s.unsubacked(ev.pkt.(*packet.Unsuback))
	case packet.PINGRESP:
		s.pong()
	case packet.DISCONNECT:
		d := ev.pkt.(*packet.Disconnect)
		s.serverDisconnect = &ReasonError{Packet: "DISCONNECT", Code: d.ReasonCode, Reason: d.Props.ReasonString}
		s.log.Info("mqtt: broker sent DISCONNECT", "reason", d.ReasonCode.String(), "reason_string", d.Props.ReasonString)
		if s.conn != nil {
			s.conn.cancel(s.serverDisconnect)
		}
	default:
		s.protocolFail(fmt.Errorf("%w: unexpected %v from the broker", ErrProtocolViolation, ev.typ))
	}
}

// receive routes a PUBLISH to the matching delivery queues.
func (s *session) receive(p *packet.Publish) {
	if s.conn != nil && s.conn.version == packet.V5 && p.Props.Has(packet.PropTopicAlias) {
		// The client announces Topic Alias Maximum 0, so any alias is invalid [MQTT-3.3.2-10].
		s.protocolFailCode(packet.TopicAliasInvalid, fmt.Errorf("%w: PUBLISH with topic alias %d, none allowed", ErrProtocolViolation, p.Props.TopicAlias))
		return
	}
	var ref *inboundRef
	if p.QoS > 0 {
		if old, dup := s.inByID[p.PacketID]; dup {
			// A re-sent message the client already holds: deliver it once only.
			if old.acked && old.qos == 2 {
				s.sendAck(packet.PUBREC, p.PacketID, 0)
			}
			return
		}
		if len(s.inByID) >= s.overshootLimit() {
			s.protocolFailCode(packet.ReceiveMaximumExceeded, fmt.Errorf("%w: broker exceeded Receive Maximum %d", ErrProtocolViolation, s.cfg.ReceiveMaximum))
			return
		}
		ref = s.newRef(p.PacketID, p.QoS)
		s.inByID[p.PacketID] = ref
		s.ackOrder = append(s.ackOrder, ref)
	}
	msg := messageFrom(p)
	matched := false
	for _, sub := range s.subs {
		if sub.routes(&msg) {
			matched = true
			s.deliver(sub.q, msg, ref)
		}
	}
	if !matched {
		s.deliver(s.defaultQ, msg, ref)
	}
	if ref != nil {
		if ref.holders == 0 {
			s.flushAcks()
		}
		if len(s.ackOrder) >= s.pauseLimit() {
			// Hold reading back until the application takes messages; the
			// broker is pushed back through TCP.
			s.pausedBy |= pauseInflight
		}
	}
}

// pauseLimit is how many unacknowledged QoS 1/2 messages the session holds
// before it stops reading. A 3.1.1 broker is told no limit, so the session
// stops at ReceiveMaximum. A 5.0 broker must itself stop there, and reading
// must go on so that acknowledgements and PINGRESP still arrive; the session
// stops only if the broker overshoots by as much again, which bounds memory
// with brokers that count loosely.
func (s *session) pauseLimit() int {
	rm := int(s.cfg.ReceiveMaximum)
	if s.conn != nil && s.conn.version == packet.V5 {
		return 2 * rm
	}
	return rm
}

// overshootLimit is how many unacknowledged QoS 1/2 messages (including
// QoS 2 messages awaiting PUBREL) a 5.0 broker may have outstanding before
// the session ends the connection with Receive Maximum exceeded (0x93,
// MQTT 5.0 section 4.9). It tolerates brokers that overshoot a little after
// a stall (mosquitto 2.0 does); 3.1.1 has no such limit.
func (s *session) overshootLimit() int {
	if s.conn != nil && s.conn.version == packet.V5 {
		return 2 * int(s.cfg.ReceiveMaximum)
	}
	return int(^uint(0) >> 1)
}

// routes reports whether m is for sub: by Subscription Identifier when the
// broker tagged the message with any, otherwise by matching the topic.
func (sub *Subscription) routes(m *Message) bool {
	if len(m.SubscriptionIDs) > 0 {
		return sub.id != 0 && slices.Contains(m.SubscriptionIDs, sub.id)
	}
	for _, f := range sub.filters {
		if packet.Match(f, m.Topic) {
			return true
		}
	}
	return false
}

// deliver queues msg on q, applying the QoS 0 overflow policy.
func (s *session) deliver(q *deliveryQueue, msg Message, ref *inboundRef) {
	if ref != nil && s.cfg.ManualAck {
		msg.ack = ackHandle{s: s, ref: ref, gen: ref.gen}
	}
	ok, start := q.push(delivery{msg: msg, ref: ref})
	if start {
		s.startPump(q)
	}
	if ref != nil {
		ref.holders++
		return
	}
	if ok {
		return
	}
	if s.cfg.QoS0Overflow == Block {
		if s.stalled == nil {
			s.stalled = &stalledDelivery{msg: msg}
		}
		s.stalled.queues = append(s.stalled.queues, q)
		s.pausedBy |= pauseStalled
		return
	}
	q.countDrop()
	s.c.dropped.Add(1)
}

func (s *session) startPump(q *deliveryQueue) {
	s.c.pumps.Add(1)
	go func() {
		defer s.c.pumps.Done()
		q.pump(s.taken, s.room, s.stopPumps)
	}()
}

// retryStalled queues a stalled QoS 0 message where room has appeared.
func (s *session) retryStalled() {
	st := s.stalled
	if st == nil {
		return
	}
	left := st.queues[:0]
	for _, q := range st.queues {
		if ok, start := q.push(delivery{msg: st.msg}); !ok {
			left = append(left, q)
		} else if start {
			s.startPump(q)
		}
	}
	st.queues = left
	if len(left) == 0 {
		s.stalled = nil
		s.pausedBy &^= pauseStalled
	}
}

func (s *session) newRef(id uint16, qos byte) *inboundRef {
	if n := len(s.freeRefs); n > 0 {
		ref := s.freeRefs[n-1]
		s.freeRefs = s.freeRefs[:n-1]
		*ref = inboundRef{id: id, qos: qos, gen: ref.gen + 1}
		return ref
	}
	return &inboundRef{id: id, qos: qos}
}

// freeRef keeps a finished record for reuse; nothing refers to it any more.
func (s *session) freeRef(ref *inboundRef) {
	if len(s.freeRefs) < 64 {
		s.freeRefs = append(s.freeRefs, ref)
	}
}

// onTaken records that the application received a QoS 1/2 message from a
// channel. Under ManualAck that acknowledges nothing: Message.Ack does.
func (s *session) onTaken(ref *inboundRef) {
	if !s.cfg.ManualAck {
		s.release(ref)
	}
}

// release records that one queue let go of a QoS 1/2 message.
func (s *session) release(ref *inboundRef) {
	ref.holders--
	if ref.holders <= 0 {
		s.flushAcks()
	}
}

// ackHandle lets the application acknowledge a message under ManualAck.
type ackHandle struct {
	s   *session
	ref *inboundRef
	gen uint32 // ref.gen when delivered: a recycled record does not match
}

// ackReq is a Message.Ack call.
type ackReq struct{ h ackHandle }

func (r *ackReq) fail(error) {}

func (r *ackReq) handle(s *session) {
	ref := r.h.ref
	if ref.gen != r.h.gen || ref.manualAcked || ref.stale {
		return // already acknowledged, or from a session the broker lost
	}
	ref.manualAcked = true
	ref.holders = 0
	s.flushAcks()
}

// flushAcks acknowledges released messages from the front of the arrival
// order: PUBACK for QoS 1, PUBREC for QoS 2.
//
// Acknowledgements wait while the client is reconnecting; with a Store,
// a QoS 2 message is recorded before its PUBREC, so that it is not handed
// to the application again after a crash.
func (s *session) flushAcks() {
	for s.conn != nil && len(s.ackOrder) > 0 && s.ackOrder[0].holders <= 0 {
		ref := s.ackOrder[0]
		s.ackOrder[0] = nil
		s.ackOrder = s.ackOrder[1:]
		ref.acked = true
		if ref.qos == 1 {
			delete(s.inByID, ref.id)
			s.sendAck(packet.PUBACK, ref.id, 0)
			if !s.cfg.ManualAck {
				s.freeRef(ref) // under ManualAck a late Ack may still refer to it
			}
		} else {
			if s.store != nil {
				if err := s.store.SaveInbound(ref.id); err != nil {
					s.log.Error("mqtt: store: saving inbound state failed", "id", ref.id, "err", err)
				}
			}
			s.sendAck(packet.PUBREC, ref.id, 0)
		}
	}
	if len(s.ackOrder) == 0 {
		s.ackOrder = nil
	}
	if len(s.ackOrder) < s.pauseLimit() {
		s.pausedBy &^= pauseInflight
	}
}

// released handles PUBREL: the QoS 2 message is complete [MQTT-4.3.3-11].
func (s *session) released(a *packet.Ack) {
	ref, ok := s.inByID[a.PacketID]
	if ok && !ref.acked {
		s.protocolFail(fmt.Errorf("%w: PUBREL for packet ID %d before PUBREC was sent", ErrProtocolViolation, a.PacketID))
		return
	}
	code := packet.Success
	if ok {
		delete(s.inByID, a.PacketID)
		if s.store != nil {
			if err := s.store.DeleteInbound(a.PacketID); err != nil {
				s.log.Error("mqtt: store: deleting inbound state failed", "id", a.PacketID, "err", err)
			}
		}
		if !s.cfg.ManualAck {
			s.freeRef(ref)
		}
	} else if s.conn != nil && s.conn.version == packet.V5 {
		code = packet.PacketIdentifierNotFound
	}
	s.sendAck(packet.PUBCOMP, a.PacketID, code)
}
