package mqtt

import (
	"fmt"
	"hash/maphash"
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
		s.receive(&ev.pub, ev.size)
	case packet.PUBACK, packet.PUBREC, packet.PUBCOMP:
		var a packet.Ack
		ev.ack.packet(ev.typ, &a)
		s.publishAcked(&a)
	case packet.PUBREL:
		var a packet.Ack
		ev.ack.packet(ev.typ, &a)
		s.released(&a)
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

// receive routes a PUBLISH to the matching delivery queues, charging the
// memory budget for it (bodySize is its body's allocation); see noRoom for a
// message that does not fit.
func (s *session) receive(p *packet.Publish, bodySize int) {
	if p.Props.Has(packet.PropTopicAlias) && !s.resolveAlias(p) {
		return
	}
	if p.Props.Has(packet.PropPayloadFormat) && p.Props.PayloadFormat == 1 && !utf8.Valid(p.Payload) {
		s.refusePayload(p)
		return
	}
	var sum uint64
	if p.QoS > 0 {
		sum = publishSum(p)
		if old, held := s.inByID[p.PacketID]; held {
			if old.sum == 0 || old.sum == sum {
				// A re-sent message the client already holds: deliver it
				// once only [MQTT-4.3.3-9].
				if old.acked && old.qos == 2 {
					s.sendAck(packet.PUBREC, p.PacketID, 0)
				}
				return
			}
			s.supersede(old, p)
		}
		if s.deferring {
			s.refuse(p)
			return
		}
	}
	msg := messageFrom(p)
	queues, first := s.route(&msg)
	if len(queues) == 0 {
		s.skipCopy(p)
		return
	}
	if len(msg.SubscriptionIDs) > 0 {
		msg.SubscriptionIDs = ownSubscriptionIDs(msg.SubscriptionIDs, first)
	}
	per := inboundFootprint(&msg, bodySize)
	if !s.mem.tryInbound(per * int64(len(queues))) {
		s.noRoom(p, bodySize, per*int64(len(queues)))
		return
	}
	var ref *inboundRef
	if p.QoS > 0 {
		if len(s.inByID) >= int(s.cfg.ReceiveMaximum) && s.conn != nil && s.conn.version == packet.V5 {
			// MQTT 5.0 section 4.9 allows ending the connection with
			// 0x93; brokers that overshoot after a stall (mosquitto 2.0)
			// would then meet a reconnection loop. MemoryLimit bounds
			// what the extra messages cost.
			s.c.counters.rmExceeded.Add(1)
		}
		ref = s.newRef(p.PacketID, p.QoS)
		ref.sum = sum
		s.inByID[p.PacketID] = ref
		s.ackOrder.push(ref)
	}
	s.c.counters.received(p.QoS, len(p.Payload))
	for _, q := range queues {
		s.deliver(q, msg, ref, per)
	}
	clear(queues)
	if ref != nil && ref.holders == 0 {
		s.flushAcks()
	}
}

// route returns the delivery queues msg goes to: those of the matching
// subscriptions, or the default queue; under Config.OncePerClient only the
// first matching subscription's, and none for a copy the broker tagged for
// other subscriptions (see OncePerClient). The slice is reused by the next
// call. first is the first subscription msg goes to (nil for none or the
// default queue).
func (s *session) route(msg *Message) (queues []*deliveryQueue, first *Subscription) {
	queues = s.routeBuf[:0]
	if s.cfg.OncePerClient {
		if sub := s.firstMatching(msg.Topic); sub == nil {
			queues = append(queues, s.defaultQ)
		} else if len(msg.SubscriptionIDs) == 0 || slices.Contains(msg.SubscriptionIDs, sub.id) {
			queues, first = append(queues, sub.q), sub
		}
		s.routeBuf = queues
		return queues, first
	}
	for _, sub := range s.subs {
		if sub.routes(msg) {
			if first == nil {
				first = sub
			}
			queues = append(queues, sub.q)
		}
	}
	if len(queues) == 0 {
		queues = append(queues, s.defaultQ)
	}
	s.routeBuf = queues
	return queues, first
}

// firstMatching returns the earliest live subscription with a filter that
// matches topic, or nil.
func (s *session) firstMatching(topic string) *Subscription {
	for _, sub := range s.subs {
		for _, f := range sub.filters {
			if packet.Match(f, topic) {
				return sub
			}
		}
	}
	return nil
}

// skipCopy takes a copy of a message that goes to no queue (see
// Config.OncePerClient): counted as received, and for QoS 1 or 2
// acknowledged in its turn like any other.
func (s *session) skipCopy(p *packet.Publish) {
	s.c.counters.received(p.QoS, len(p.Payload))
	if p.QoS == 0 {
		return
	}
	ref := s.newRef(p.PacketID, p.QoS)
	ref.sum = publishSum(p)
	s.inByID[p.PacketID] = ref
	s.ackOrder.push(ref)
	s.flushAcks()
}

// noRoom handles a received PUBLISH for which the memory budget has no
// room (size bytes). If the session may hold reading back (see mayStall),
// the message waits for room and nothing more is read meanwhile, which
// pushes back on the broker through TCP; otherwise it is refused.
func (s *session) noRoom(p *packet.Publish, bodySize int, size int64) {
	if !s.mayStall(p.QoS) {
		s.refuse(p)
		return
	}
	if !s.mem.waitInbound(size) {
		s.receive(p, bodySize) // room appeared meanwhile
		return
	}
	// The packet's slices are its own allocation, except its Subscription
	// Identifiers (the reader's scratch); the struct is the reader's and is
	// reused, so it is copied.
	stalled := *p
	stalled.Props.SubscriptionIDs = slices.Clone(p.Props.SubscriptionIDs)
	s.stalledPub, s.stalledSize = &stalled, bodySize
	s.stalled = true
}

// mayStall reports whether the session may hold reading back for a
// message of the given QoS that does not fit: never while a call waits for
// an answer from the broker, which would then never be read.
func (s *session) mayStall(qos byte) bool {
	return s.conn != nil && !s.ending && (qos > 0 || s.cfg.QoS0Overflow == Block) && !s.awaitingBroker()
}

// awaitingBroker reports whether an API call waits for something the broker
// must send: an acknowledgement, a PINGRESP, the end of a re-authentication
// or of a graceful disconnect.
func (s *session) awaitingBroker() bool {
	if len(s.out) > 0 || len(s.waiting) > 0 || len(s.overflow) > 0 || s.reauth != nil || s.disconnecting != nil {
		return true
	}
	for _, p := range s.pings {
		if p.reply != nil {
			return true
		}
	}
	return false
}

// refuse gives up a received message for lack of memory. A QoS 0 message is
// dropped and counted. A QoS 1 or 2 message is left unacknowledged, so the
// broker keeps it; so is every later one on this connection, to keep the
// acknowledgements in order [MQTT-4.6.0-2], and the connection is replaced
// once the application has caught up (checkCaughtUp), which makes the broker
// send them again [MQTT-4.4.0-1].
func (s *session) refuse(p *packet.Publish) {
	if p.QoS == 0 {
		s.c.counters.received(0, len(p.Payload))
		s.c.counters.dropped.Add(1)
		return
	}
	s.c.counters.deferred.Add(1)
	if s.deferring {
		return
	}
	s.deferring = true
	err := fmt.Errorf("%w: a %v message on %q found %d of %d bytes in use; it and later QoS 1 and 2 messages are left to the broker until the application catches up",
		ErrOverflow, QoS(p.QoS), p.Topic, s.mem.in.Load()+s.mem.out.Load(), s.mem.limit)
	s.log.Warn("mqtt: memory limit reached", "err", err)
	s.c.emit(Event{Kind: EventOverflow, Err: err})
}

// checkCaughtUp replaces the connection once the application has caught up
// after messages were deferred: every message before them is acknowledged
// and at most half the memory limit is in use. The broker then sends the
// deferred messages again on the new connection, in order, when it kept
// the session.
func (s *session) checkCaughtUp() {
	if s.conn == nil || s.ackOrder.len() > 0 || s.mem.in.Load() > s.mem.limit/2 {
		return
	}
	s.log.Info("mqtt: reconnecting to receive the messages left to the broker", "server", s.conn.server.url)
	// Messages still arriving on this connection are deferred too (the
	// session is deferring until the connection has ended). A DISCONNECT
	// keeps the broker from publishing the will; the session stays (3.1.1
	// without Clean Session, 5.0 with a Session Expiry).
	s.hangUp(errCaughtUp, &packet.Disconnect{})
}

// retryStalled tries again to deliver the message waiting for memory.
func (s *session) retryStalled() {
	if !s.stalled {
		return
	}
	p := s.stalledPub
	s.stalled, s.stalledPub = false, nil
	s.receive(p, s.stalledSize)
}

// dropStalled gives up the message waiting for memory when its connection
// ends. Unacknowledged, a QoS 1 or 2 message comes again from the broker.
func (s *session) dropStalled() {
	if !s.stalled {
		return
	}
	if s.stalledPub.QoS == 0 {
		s.c.counters.received(0, len(s.stalledPub.Payload))
		s.c.counters.dropped.Add(1)
	} else {
		s.c.counters.deferred.Add(1)
	}
	s.stalled, s.stalledPub = false, nil
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

// deliver queues msg on q with size bytes charged to the memory budget,
// applying MessageBuffer to QoS 0 messages.
func (s *session) deliver(q *deliveryQueue, msg Message, ref *inboundRef, size int64) {
	if ref != nil && s.cfg.ManualAck {
		msg.ack = ackHandle{s: s, ref: ref, gen: ref.gen}
	} else if q.offer(msg) {
		// The application was waiting and took it: no queue holds it, so a
		// QoS 1/2 message is acknowledged once every queue let it go.
		s.mem.releaseInbound(size)
		return
	}
	ok, start := q.push(delivery{msg: msg, ref: ref, size: size})
	if start {
		s.startPump(q)
	}
	if ref != nil {
		ref.holders++
		return
	}
	if !ok {
		s.mem.releaseInbound(size)
		s.c.counters.dropped.Add(1)
	}
}

func (s *session) startPump(q *deliveryQueue) {
	s.c.pumps.Add(1)
	go func() {
		defer s.c.pumps.Done()
		q.pump(s.reqs, s.mem, s.stopPumps)
	}()
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
// Up to twice ReceiveMaximum are kept (at least freeRefsMin): as many as a
// broker keeps in use at once, counting QoS 2 messages awaiting PUBREL and
// brokers that overshoot (3.1.1 brokers are never told the maximum), so a
// steady stream of QoS 1/2 messages allocates no records. An idle
// connection lets them go (trimBuffers).
func (s *session) freeRef(ref *inboundRef) {
	if len(s.freeRefs) < max(2*int(s.cfg.ReceiveMaximum), freeRefsMin) {
		s.freeRefs = append(s.freeRefs, ref)
	}
}

// freeRefsMin is the fewest finished records freeRef keeps.
const freeRefsMin = 1024

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
	if ref.gen != r.h.gen || ref.manualAcked {
		return // already acknowledged
	}
	// A stale record (the broker lost the session, or reused the packet
	// ID) is never acknowledged on the wire; flushAcks passes over it.
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
	// While a connection ends (s.ending), its writer is closed: an
	// acknowledgement would be lost with its record, so it waits for the
	// next connection, where the broker may meanwhile re-send the message
	// (ignored as a duplicate while the record is held).
	for s.conn != nil && !s.ending && s.ackOrder.len() > 0 && s.ackOrder.front().holders <= 0 {
		ref := s.ackOrder.pop()
		if ref.stale {
			// Superseded: its packet ID now names another message.
			if !s.cfg.ManualAck {
				s.freeRef(ref)
			}
			continue
		}
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
}

// publishSum identifies a received message by its topic and payload, to
// tell a re-sent message from another one under the same packet ID. It is
// never 0.
func publishSum(p *packet.Publish) uint64 {
	var h maphash.Hash
	h.SetSeed(sumSeed)
	h.WriteString(p.Topic)
	h.WriteByte(0)
	h.Write(p.Payload)
	return h.Sum64() | 1
}

// sumSeed seeds publishSum for the life of the process.
var sumSeed = maphash.MakeSeed()

// supersede handles a PUBLISH whose packet ID the client still holds for a
// different message. A broker may not reuse a packet ID before the client
// acknowledged it (QoS 1) or before PUBCOMP (QoS 2), so a different message
// under a held ID means the broker has finished with or forgotten the held
// one: a cluster node that took over a session without the latest state of
// its exchanges does this. The held message was delivered already, and an
// acknowledgement for the ID would now be taken for the new message, so
// the held record is dropped without one and the new message is delivered.
func (s *session) supersede(old *inboundRef, p *packet.Publish) {
	s.c.counters.reusedIDs.Add(1)
	s.log.Warn("mqtt: the broker reused a packet ID the client still held for another message; the new message is delivered",
		"id", p.PacketID, "qos", p.QoS, "held_qos", old.qos, "dup", p.Dup)
	delete(s.inByID, old.id)
	old.stale = true
	if old.acked {
		if s.store != nil && old.qos == 2 {
			if err := s.store.DeleteInbound(old.id); err != nil {
				s.log.Error("mqtt: store: deleting inbound state failed", "id", old.id, "err", err)
			}
		}
		if !s.cfg.ManualAck {
			s.freeRef(old) // out of the acknowledgement order: nothing refers to it
		}
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

// ownSubscriptionIDs returns a slice with the values of ids, which is the
// reader's scratch and is reused for the next packet. A message tagged
// with the identifier of sub alone, the subscription it was routed to (the
// usual case), shares sub's one-element slice; others get a copy.
func ownSubscriptionIDs(ids []uint32, sub *Subscription) []uint32 {
	if len(ids) == 1 && sub != nil && sub.id == ids[0] {
		return sub.idList
	}
	return slices.Clone(ids)
}
