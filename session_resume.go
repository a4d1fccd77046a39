package mqtt

import (
	"cmp"
	"errors"
	"slices"

	"github.com/b4e21b16/mqtt/packet"
)

// resume brings the session state onto a new connection.
//
// When the broker kept the session, every unacknowledged packet is sent
// again in its original order: a PUBLISH awaiting PUBACK or PUBREC with DUP
// set [MQTT-4.4.0-1], a PUBREL for a QoS 2 message past PUBREC
// [MQTT-4.4.0-1], and SUBSCRIBE or UNSUBSCRIBE awaiting their acks.
// Received QoS 1 and 2 messages the application has not taken yet are
// acknowledged on this connection once it takes them.
//
// When the broker has no session, the client first subscribes again to
// every live subscription, so that nothing flows before the routes exist;
// publishes awaiting PUBACK or PUBREC are sent again as new messages, and a
// QoS 2 message past PUBREC counts as delivered (the broker had received
// it). Received messages still waiting for the application are still
// delivered, but their acknowledgements are dropped: the IDs mean nothing to
// the new session.
func (s *session) resume(present bool) {
	if !present {
		s.forgetInbound()
		// Resubscriptions of an earlier attempt are superseded.
		for id, o := range s.out {
			if r, ok := o.(*subscribeReq); ok && r.internal {
				delete(s.out, id)
			}
		}
	}
	outs := make([]outstanding, 0, len(s.out))
	inFlightSubs := make(map[*Subscription]bool)
	for _, o := range s.out {
		outs = append(outs, o)
		if r, ok := o.(*subscribeReq); ok {
			inFlightSubs[r.sub] = true // re-sent below, not resubscribed
		}
	}
	if !present {
		s.resubscribe(inFlightSubs)
	}
	slices.SortFunc(outs, func(a, b outstanding) int { return cmp.Compare(a.seqNo(), b.seqNo()) })
	for _, o := range outs {
		o.resend(s, present)
	}
	s.resendInFlight()
	// Acknowledgements held while reconnecting.
	s.flushAcks()
}

// resend brings an in-flight publish onto a new connection: it waits in
// resend for send quota (see resendInFlight), with DUP set when the broker
// kept the session; a QoS 2 message past PUBREC counts as delivered when it
// did not.
func (p *publishReq) resend(s *session, present bool) {
	if p.phase == packet.PUBCOMP && !present {
		delete(s.out, p.id)
		s.finishPublish(p, nil)
		return
	}
	p.dup = present && p.phase != packet.PUBCOMP
	s.resend = append(s.resend, p)
}

// resendInFlight re-sends in-flight publishes (PUBLISH with DUP, or PUBREL)
// as far as the broker's Receive Maximum allows [MQTT-4.9.0-2]; the rest
// follow as acknowledgements free send quota.
func (s *session) resendInFlight() {
	n := 0
	for ; n < len(s.resend) && s.sendQuota > 0 && s.conn != nil; n++ {
		p := s.resend[n]
		s.sendQuota--
		if p.phase == packet.PUBCOMP {
			s.sendAck(packet.PUBREL, p.id, 0)
		} else if err := s.sendPublish(p); err != nil {
			s.abandonPublish(p, err)
		}
	}
	clear(s.resend[:n])
	s.resend = s.resend[n:]
	if len(s.resend) == 0 {
		s.resend = nil
	}
}

// forgetInbound drops received-message state that only the lost broker
// session gave meaning to.
func (s *session) forgetInbound() {
	for id, ref := range s.inByID {
		delete(s.inByID, id)
		ref.stale = true
		if ref.acked && s.store != nil {
			if err := s.store.DeleteInbound(id); err != nil {
				s.log.Error("mqtt: store: deleting inbound state failed", "id", id, "err", err)
			}
		}
	}
	s.ackOrder.reset()
}

// resubscribe sends one SUBSCRIBE per live subscription, with its original
// options and identifier. The outcome is reported as EventResubscribed.
func (s *session) resubscribe(skip map[*Subscription]bool) {
	s.resubscribing = 0
	s.resubscribeErr = nil
	for _, sub := range s.subs {
		if !skip[sub] {
			s.resubscribing++
		}
	}
	for _, sub := range s.subs {
		if skip[sub] {
			continue
		}
		var filters []packet.Subscription
		for _, f := range sub.options {
			if slices.Contains(sub.filters, f.Filter) {
				filters = append(filters, f)
			}
		}
		r := &subscribeReq{filters: filters, sub: sub, internal: true}
		if !s.sendSubscribe(r) {
			// All packet IDs are taken by in-flight work; retry as IDs free.
			s.waiting = append(s.waiting, r)
		}
	}
}

// resubscribed records the answer to one resubscription.
func (s *session) resubscribed(err error) {
	if err != nil {
		s.resubscribeErr = errors.Join(s.resubscribeErr, err)
	}
	s.resubscribing--
	if s.resubscribing == 0 {
		s.log.Info("mqtt: resubscribed after the broker lost the session", "err", s.resubscribeErr)
		s.c.emit(Event{Kind: EventResubscribed, Err: s.resubscribeErr})
	}
}

// loadStore restores outbound and inbound state saved by an earlier run.
func (s *session) loadStore() error {
	out, in, err := s.store.Load()
	if err != nil && !errors.Is(err, ErrStoreCorrupt) {
		return err
	}
	if err != nil {
		s.log.Warn("mqtt: store: damaged data skipped", "err", err)
	}
	for _, r := range out {
		p := &publishReq{msg: r.Message, ctx: detachedCtx, seq: r.Seq, durable: true, stored: true}
		p.pending.id = r.Seq
		s.c.restored = append(s.c.restored, &p.pending)
		s.seq = max(s.seq, r.Seq)
		if r.PacketID == 0 {
			s.queuedMsgs++
			s.queuedBytes += len(p.msg.Payload)
			s.waiting = append(s.waiting, p)
			continue
		}
		p.id = r.PacketID
		switch {
		case r.Released:
			p.phase = packet.PUBCOMP
			p.relSeq = r.Seq // the store keeps no PUBREC order: publish order stands in
		case p.msg.QoS == ExactlyOnce:
			p.phase = packet.PUBREC
		default:
			p.phase = packet.PUBACK
		}
		s.out[r.PacketID] = p
		s.lastID = max(s.lastID, r.PacketID)
	}
	for _, id := range in {
		ref := s.newRef(id, 2)
		ref.acked = true
		s.inByID[id] = ref
	}
	return nil
}
