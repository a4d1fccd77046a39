package mqtt

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/b4e21b16/mqtt/packet"
)

func (s *session) handleInbound(ev *inbound) {
	if ev.err != nil {
		s.protocolFail(ev.err)
		return
	}
	if s.debug {
		s.log.Debug("mqtt: received", inboundAttrs(ev)...)
	}
	if s.conn != nil && !s.conn.problemInfo && carriesProblemInfo(ev) {
		// [MQTT-3.1.2-29]: with Request Problem Information 0, a Reason String
		// or User Property is allowed only on PUBLISH, CONNACK and DISCONNECT.
		s.protocolFail(fmt.Errorf("%w: %v carries a Reason String or User Property although the client asked for none [MQTT-3.1.2-29]", ErrProtocolViolation, ev.typ))
		return
	}
	switch ev.typ {
	case packet.PUBLISH:
		s.receive(&ev.pub)
	case packet.PUBACK, packet.PUBREC, packet.PUBCOMP:
		ev.ack.packet(ev.typ, &s.ackIn)
		s.publishAcked(&s.ackIn)
	case packet.PUBREL:
		ev.ack.packet(ev.typ, &s.ackIn)
		s.released(&s.ackIn)
	case packet.SUBACK:
		s.subacked(ev.pkt.(*packet.Suback))
	case packet.UNSUBACK:
		s.unsubacked(ev.pkt.(*packet.Unsuback))
	case packet.PINGRESP:
		s.pong()
	case packet.DISCONNECT:
		d := ev.pkt.(*packet.Disconnect)
		s.serverDisconnect = &ReasonError{Packet: "DISCONNECT", Code: d.ReasonCode, Reason: d.Props.ReasonString,
			ServerReference: d.Props.ServerReference}
		s.log.Info("mqtt: broker sent DISCONNECT", "reason", d.ReasonCode.String(), "reason_string", d.Props.ReasonString)
		if s.conn != nil {
			if to, ok := s.c.redirect(s.conn.server, d.ReasonCode, d.Props.ServerReference); ok {
				s.redirectTo = &to
			}
			s.conn.cancel(s.serverDisconnect)
		}
	case packet.AUTH:
		s.authReceived(ev.pkt.(*packet.Auth))
	default:
		s.protocolFail(fmt.Errorf("%w: unexpected %v from the broker", ErrProtocolViolation, ev.typ))
	}
}

// carriesProblemInfo reports whether a packet other than PUBLISH, CONNACK
// and DISCONNECT has a Reason String or User Property.
func carriesProblemInfo(ev *inbound) bool {
	var pr *packet.Properties
	switch p := ev.pkt.(type) {
	case *packet.Suback:
		pr = &p.Props
	case *packet.Unsuback:
		pr = &p.Props
	case *packet.Auth:
		pr = &p.Props
	case nil:
		if ev.typ != packet.PUBLISH {
			pr = ev.ack.props
		}
	}
	return pr != nil && (pr.Has(packet.PropReasonString) || len(pr.User) > 0)
}

// resolveAlias applies an inbound Topic Alias: a PUBLISH with a topic and
// an alias (re)defines the alias for this connection, one with an alias
// alone uses it [MQTT-3.3.2-12]. It reports false after ending the
// connection for an invalid alias.
func (s *session) resolveAlias(p *packet.Publish) bool {
	a := int(p.Props.TopicAlias)
	if a == 0 || a > s.cfg.TopicAliasMaximum {
		// [MQTT-3.3.2-8] [MQTT-3.3.2-9]
		s.protocolFailCode(packet.TopicAliasInvalid, fmt.Errorf("%w: PUBLISH with topic alias %d, the client allows 1 to %d [MQTT-3.3.2-9]",
			ErrProtocolViolation, a, s.cfg.TopicAliasMaximum))
		return false
	}
	if s.inAliases == nil {
		s.inAliases = make([]string, s.cfg.TopicAliasMaximum+1)
	}
	if p.Topic != "" {
		// The topic shares the message's buffer; a copy keeps the table
		// from holding payloads alive.
		s.inAliases[a] = strings.Clone(p.Topic)
		return true
	}
	if p.Topic = s.inAliases[a]; p.Topic == "" {
		s.protocolFail(fmt.Errorf("%w: PUBLISH with topic alias %d, which this connection never defined", ErrProtocolViolation, a))
		return false
	}
	return true
}

// receive routes a PUBLISH to the matching delivery queues.
func (s *session) receive(p *packet.Publish) {
	if p.Props.Has(packet.PropTopicAlias) && !s.resolveAlias(p) {
		return
	}
	if p.Props.Has(packet.PropPayloadFormat) && p.Props.PayloadFormat == 1 && !utf8.Valid(p.Payload) {
		s.refusePayload(p)
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
		s.ackOrder.push(ref)
	}
	s.c.counters.received(p.QoS, len(p.Payload))
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
		if s.ackOrder.len() >= s.pauseLimit() {
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
	} else if q.offer(msg) {
		// The application was waiting and took it: no queue holds it, so a
		// QoS 1/2 message is acknowledged once every queue let it go.
		return
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
	if s.cfg.QoS0Overflow == Block && !q.subscribing {
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
		q.pump(s.reqs, s.stopPumps)
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
// Up to ReceiveMaximum are kept: as many as can be in use at once, so a
// steady stream of QoS 1/2 messages allocates no records.
func (s *session) freeRef(ref *inboundRef) {
	if len(s.freeRefs) < int(s.cfg.ReceiveMaximum) {
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
	for s.conn != nil && s.ackOrder.len() > 0 && s.ackOrder.front().holders <= 0 {
		ref := s.ackOrder.pop()
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
	if s.ackOrder.len() < s.pauseLimit() {
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

// refusePayload rejects a message whose Payload Format Indicator says UTF-8
// when the payload is not (MQTT 5.0 section 3.3.2.3.2): a QoS 1 or 2
// message with a PUBACK or PUBREC carrying Payload format invalid (0x99), a
// QoS 0 message, which has no acknowledgement, with a DISCONNECT carrying
// it. Either way the message is not delivered, and the refusal is logged.
func (s *session) refusePayload(p *packet.Publish) {
	s.log.Info("mqtt: refused a message whose payload is not the UTF-8 it claims", "topic", p.Topic, "qos", p.QoS)
	switch {
	case p.QoS == 0:
		s.protocolFailCode(packet.PayloadFormatInvalid, fmt.Errorf("%w: QoS 0 PUBLISH on %q marked UTF-8 with a payload that is not", ErrProtocolViolation, p.Topic))
	case s.inByID[p.PacketID] != nil:
		// A re-sent message the client holds: answered when it is acknowledged.
	case p.QoS == 1:
		s.sendAck(packet.PUBACK, p.PacketID, packet.PayloadFormatInvalid)
	default:
		// A PUBREC with a failure code ends the QoS 2 exchange: no PUBREL follows.
		s.sendAck(packet.PUBREC, p.PacketID, packet.PayloadFormatInvalid)
	}
}
