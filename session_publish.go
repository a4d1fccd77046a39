package mqtt

import (
	"errors"
	"fmt"

	"github.com/b4e21b16/mqtt/packet"
)

func (p *publishReq) fail(err error) { p.complete(err) }

// seqNo orders re-sends: a PUBLISH by when it was published, a PUBREL by
// when its PUBREC arrived [MQTT-4.6.0-4].
func (p *publishReq) seqNo() uint64 {
	if p.phase == packet.PUBCOMP {
		return p.relSeq
	}
	return p.seq
}

func (p *publishReq) handle(s *session) {
	if err := s.refusing(); err != nil {
		p.complete(err)
		return
	}
	s.seq++
	p.seq = s.seq
	if p.msg.QoS == AtMostOnce {
		// Only a QoS 0 publish made while disconnected comes here.
		if s.conn != nil && len(s.waiting) == 0 {
			s.sendQoS0(p)
			return
		}
	} else if s.conn != nil && len(s.waiting) == 0 && s.trySendPublish(p) {
		return
	}
	s.enqueue(p)
}

// enqueue adds a publish to the offline queue, within Config.Queue's bounds.
func (s *session) enqueue(p *publishReq) {
	if len(p.msg.Payload) > s.cfg.Queue.MaxBytes {
		p.complete(fmt.Errorf("%w: a %d-byte payload can never fit in Queue.MaxBytes (%d)", ErrQueueFull, len(p.msg.Payload), s.cfg.Queue.MaxBytes))
		return
	}
	if s.queuedMsgs >= s.cfg.Queue.MaxMessages || s.queuedBytes+len(p.msg.Payload) > s.cfg.Queue.MaxBytes {
		if s.cfg.Queue.Full == QueueFail {
			p.complete(fmt.Errorf("%w (%d messages, %d bytes queued)", ErrQueueFull, s.queuedMsgs, s.queuedBytes))
			return
		}
		s.overflow = append(s.overflow, p)
		return
	}
	if p.msg.QoS > 0 && !s.storePublish(p) {
		return
	}
	s.queuedMsgs++
	s.queuedBytes += len(p.msg.Payload)
	s.waiting = append(s.waiting, p)
}

// admitOverflow moves publishes that waited for queue room into the queue,
// reporting whether it admitted any.
func (s *session) admitOverflow() bool {
	n := 0
	for n < len(s.overflow) {
		p := s.overflow[n]
		if p.ctx.Err() == nil && (s.queuedMsgs >= s.cfg.Queue.MaxMessages || s.queuedBytes+len(p.msg.Payload) > s.cfg.Queue.MaxBytes) {
			break
		}
		n++
		if err := p.ctx.Err(); err != nil {
			p.complete(err)
			continue
		}
		if p.msg.QoS > 0 && !s.storePublish(p) {
			continue
		}
		s.queuedMsgs++
		s.queuedBytes += len(p.msg.Payload)
		s.waiting = append(s.waiting, p)
	}
	clear(s.overflow[:n])
	s.overflow = s.overflow[n:]
	if len(s.overflow) == 0 {
		s.overflow = nil
	}
	return n > 0
}

// sendQoS0 writes a queued QoS 0 publish.
func (s *session) sendQoS0(p *publishReq) {
	if err := s.conn.checkOutbound(&p.msg); err != nil {
		p.complete(err)
		return
	}
	if err := s.sendPublish(p); err != nil {
		p.complete(err)
		return
	}
	s.c.counters.sent(AtMostOnce, len(p.msg.Payload))
	p.complete(nil)
}

// trySendPublish sends a QoS 1 or 2 publish if a packet ID and send quota
// (the broker's Receive Maximum) are available [MQTT-4.9.0-2]. It reports
// false when the publish must wait; a publish the broker's limits refuse is
// completed with the error and counts as handled.
func (s *session) trySendPublish(p *publishReq) bool {
	if s.sendQuota <= 0 {
		return false
	}
	if err := s.conn.checkOutbound(&p.msg); err != nil {
		s.unstore(p)
		p.complete(err)
		return true
	}
	id, ok := s.allocID()
	if !ok {
		return false
	}
	p.id = id
	p.phase = packet.PUBACK
	if p.msg.QoS == ExactlyOnce {
		p.phase = packet.PUBREC
	}
	if !s.storePublish(p) {
		return true
	}
	s.out[id] = p
	s.sendQuota--
	if err := s.sendPublish(p); err != nil {
		s.abandonPublish(p, err)
		return true
	}
	s.c.counters.sent(p.msg.QoS, len(p.msg.Payload))
	return true
}

// abandonPublish ends an in-flight publish whose PUBLISH cannot be encoded:
// it frees the packet ID and the send quota and completes the publish with
// err, rather than leave it in flight for good.
func (s *session) abandonPublish(p *publishReq, err error) {
	delete(s.out, p.id)
	s.sendQuota++
	s.finishPublish(p, err)
}

// drainWaiting sends waiting work for which a connection, IDs and quota are
// available. Publishes keep their order; a subscribe or unsubscribe does not
// wait behind a publish that waits for send quota. Work whose caller gave up
// (its ctx ended) before it was sent is dropped.
func (s *session) drainWaiting() {
	for {
		s.sendWaiting()
		if !s.admitOverflow() {
			return
		}
	}
}

// sendWaiting makes one pass over the waiting work.
func (s *session) sendWaiting() {
	if s.conn == nil {
		return
	}
	kept := s.waiting[:0]
	pubBlocked := len(s.resend) > 0
	for _, r := range s.waiting {
		var left bool
		if left, pubBlocked = r.trySend(s, pubBlocked); !left {
			kept = append(kept, r)
		}
	}
	clear(s.waiting[len(kept):])
	s.waiting = kept
}

// awaits names the acknowledgement p waits for.
func (p *publishReq) awaits() string { return p.phase.String() }

// trySend sends a waiting publish if it can go now; see queued. A QoS 1 or
// 2 publish waits behind an earlier one that waits for send quota, so that
// publishes keep their order.
func (r *publishReq) trySend(s *session, pubBlocked bool) (left, blocked bool) {
	sent := false
	if err := r.ctx.Err(); err != nil && !r.durable {
		s.unstore(r)
		r.complete(err)
		sent = true
	} else if !pubBlocked {
		if r.msg.QoS == AtMostOnce {
			s.sendQoS0(r)
			sent = true
		} else {
			sent = s.trySendPublish(r)
		}
		pubBlocked = !sent
	}
	if sent {
		s.queuedMsgs--
		s.queuedBytes -= len(r.msg.Payload)
	}
	return sent, pubBlocked
}

// publishAcked handles PUBACK, PUBREC and PUBCOMP for an outbound publish.
func (s *session) publishAcked(a *packet.Ack) {
	o, ok := s.out[a.PacketID]
	p, isPub := o.(*publishReq)
	if !ok || !isPub || p.phase != a.PacketType {
		want := "nothing"
		if ok {
			want = o.awaits()
		}
		s.protocolFail(fmt.Errorf("%w: %v for packet ID %d, which awaits %s", ErrProtocolViolation, a.PacketType, a.PacketID, want))
		return
	}
	if a.PacketType == packet.PUBREC && !a.ReasonCode.IsError() {
		// [MQTT-4.3.3-9]: answer PUBREC with PUBREL; the ID stays in use.
		p.phase = packet.PUBCOMP
		s.seq++
		p.relSeq = s.seq
		if s.store != nil {
			s.saveStored(p, true)
		}
		s.sendAck(packet.PUBREL, a.PacketID, 0)
		return
	}
	delete(s.out, a.PacketID)
	s.sendQuota++
	s.resendInFlight()
	var err error
	if a.ReasonCode.IsError() {
		err = &ReasonError{Packet: a.PacketType.String(), Code: a.ReasonCode, Reason: a.Props.ReasonString}
	}
	s.finishPublish(p, err)
	s.drainWaiting()
	s.checkDisconnect()
}

// finishPublish completes an outbound publish for good.
func (s *session) finishPublish(p *publishReq, err error) {
	s.unstore(p)
	s.publishGauges() // so that Stats no longer counts p once its caller returns
	p.complete(err)
}

// storePublish persists p (with its packet ID once it has one) before it is
// sent. A store failure fails the publish: its delivery could not be
// guaranteed.
func (s *session) storePublish(p *publishReq) bool {
	if s.store == nil {
		return true
	}
	if err := s.saveStored(p, false); err != nil {
		p.complete(err)
		return false
	}
	return true
}

func (s *session) saveStored(p *publishReq, released bool) error {
	p.stored = true
	err := s.store.SavePublish(StoredPublish{Seq: p.seq, PacketID: p.id, Released: released, Message: p.msg})
	if err != nil {
		s.log.Error("mqtt: store: saving a publish failed", "seq", p.seq, "err", err)
		return storeError(err)
	}
	return nil
}

func (s *session) unstore(p *publishReq) {
	if s.store == nil || !p.stored {
		return
	}
	p.stored = false
	if err := s.store.DeletePublish(p.seq); err != nil {
		s.log.Error("mqtt: store: deleting a publish failed", "seq", p.seq, "err", err)
	}
}

// sendPublish encodes p's PUBLISH, with its packet identifier and DUP flag,
// through the session's scratch packet: the writer encodes it before send
// returns, so the packet need not live in the record. It fails only when
// the PUBLISH cannot be encoded, and then nothing was queued; a connection
// that is ending is no error here (the publish stays in flight).
func (s *session) sendPublish(p *publishReq) error {
	if s.pubScratch == nil {
		s.pubScratch = new(packet.Publish)
	}
	p.msg.toPublish(s.pubScratch)
	s.pubScratch.PacketID = p.id
	s.pubScratch.Dup = p.dup
	if err := s.send(s.pubScratch); errors.Is(err, errEncode) {
		return errorf("mqtt: publish to %q: %w", p.msg.Topic, err)
	}
	return nil
}
