package mqtt

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/b4e21b16/mqtt/packet"
)

// subscribeReq is a SUBSCRIBE: one from Subscribe, or an internal one that
// restores a subscription after the broker lost the session.
type subscribeReq struct {
	ctx      context.Context
	filters  []packet.Subscription
	reply    chan subscribeResult // nil for internal requests
	sub      *Subscription
	internal bool
	id       uint32 // the Subscription Identifier the caller chose; 0: the client chooses

	// Set when sent.
	packet *packet.Subscribe
	seq    uint64
}

type subscribeResult struct {
	sub *Subscription
	err error
}

func (r *subscribeReq) fail(err error) {
	if r.reply != nil {
		r.reply <- subscribeResult{err: err}
	}
}

func (r *subscribeReq) seqNo() uint64 { return r.seq }

func (r *subscribeReq) handle(s *session) {
	if err := s.refusing(); err != nil {
		r.fail(err)
		return
	}
	// Receive Maximum limits PUBLISH only [MQTT-4.9.0-2]: a SUBSCRIBE waits
	// only for a connection and a free packet identifier.
	if !s.trySubscribe(r) {
		s.waiting = append(s.waiting, r)
	}
}

// trySend sends a waiting SUBSCRIBE if a connection and a packet identifier
// are available; see queued. One whose caller gave up is dropped.
func (r *subscribeReq) trySend(s *session, pubBlocked bool) (left, blocked bool) {
	if !r.internal && r.ctx.Err() != nil {
		r.fail(r.ctx.Err())
		return true, pubBlocked
	}
	return s.trySubscribe(r), pubBlocked
}

// resend sends the SUBSCRIBE again on a new connection (see resume).
func (r *subscribeReq) resend(s *session, _ bool) { s.send(r.packet) }

// awaits names the acknowledgement r waits for.
func (r *subscribeReq) awaits() string { return "SUBACK" }

// trySubscribe creates the subscription and sends its SUBSCRIBE.
func (s *session) trySubscribe(r *subscribeReq) bool {
	if r.internal {
		return s.sendSubscribe(r)
	}
	if s.conn == nil || len(s.out) >= 65535 {
		return false
	}
	if err := s.conn.checkFilters(r.filters); err != nil {
		r.fail(err)
		return true
	}
	sub := &Subscription{c: s.c, q: newDeliveryQueue(s.cfg.qos0Limit()), options: r.filters}
	for _, f := range r.filters {
		sub.filters = append(sub.filters, f.Filter)
	}
	switch {
	case r.id != 0 && !s.conn.subIDs:
		r.fail(&ArgumentError{What: "subscription identifier", Value: fmt.Sprint(r.id),
			Err: errors.New("the broker does not support Subscription Identifiers (or the connection is MQTT 3.1.1)")})
		return true
	case r.id != 0:
		sub.id = r.id
	case s.conn.subIDs:
		sub.id = s.nextSubID()
	}
	if sub.id != 0 {
		sub.idList = []uint32{sub.id}
	}
	r.sub = sub
	// Route from now on: the broker may send matching messages before SUBACK.
	s.subs = append(s.subs, sub)
	return s.sendSubscribe(r)
}

// nextSubID chooses a Subscription Identifier for a subscription the caller
// did not choose one for: the next in turn that no live subscription uses.
func (s *session) nextSubID() uint32 {
	for {
		s.lastSubID = s.lastSubID%maxSubscriptionID + 1
		if !slices.ContainsFunc(s.subs, func(sub *Subscription) bool { return sub.id == s.lastSubID }) {
			return s.lastSubID
		}
	}
}

// sendSubscribe sends r's SUBSCRIBE with r.sub's identifier.
func (s *session) sendSubscribe(r *subscribeReq) bool {
	if s.conn == nil {
		return false
	}
	id, ok := s.allocID()
	if !ok {
		return false
	}
	s.seq++
	r.seq = s.seq
	r.packet = &packet.Subscribe{PacketID: id, Subscriptions: r.filters}
	if r.sub.id != 0 && s.conn.subIDs {
		r.packet.Props.SubscriptionIDs = r.sub.idList
	}
	s.out[id] = r
	s.send(r.packet)
	return true
}

func (s *session) subacked(a *packet.Suback) {
	r, ok := s.out[a.PacketID].(*subscribeReq)
	if !ok {
		s.protocolFail(fmt.Errorf("%w: SUBACK for packet ID %d, which awaits no SUBACK", ErrProtocolViolation, a.PacketID))
		return
	}
	if len(a.ReasonCodes) != len(r.filters) {
		s.protocolFail(fmt.Errorf("%w: SUBACK with %d reason codes for %d topic filters [MQTT-3.8.4-6]", ErrProtocolViolation, len(a.ReasonCodes), len(r.filters)))
		return
	}
	delete(s.out, a.PacketID)
	sub := r.sub
	granted := make([]FilterResult, len(a.ReasonCodes))
	var refused []FilterResult
	sub.filters = sub.filters[:0]
	for i, code := range a.ReasonCodes {
		fr := FilterResult{Filter: r.filters[i].Filter, Code: code}
		granted[i] = fr
		if code.IsError() {
			refused = append(refused, fr)
		} else {
			sub.filters = append(sub.filters, fr.Filter)
		}
	}
	var err error
	if refused != nil {
		err = &SubscribeError{Refused: refused, Reason: a.Props.ReasonString}
	}
	switch {
	case r.internal:
		if len(sub.filters) == 0 {
			s.removeSub(sub)
		}
		s.resubscribed(err)
	case len(sub.filters) == 0:
		sub.granted = granted
		s.removeSub(sub)
		r.reply <- subscribeResult{err: err}
	case r.ctx.Err() != nil:
		// The caller stopped waiting and will never read this subscription:
		// its messages go to Client.Messages instead.
		s.removeSub(sub)
		r.reply <- subscribeResult{err: r.ctx.Err()}
	default:
		sub.granted = granted
		r.reply <- subscribeResult{sub: sub, err: err}
	}
	s.drainWaiting()
	s.checkDisconnect()
}

// removeSub ends a subscription's delivery. Messages still queued for it are
// released (acknowledged if no other queue holds them).
func (s *session) removeSub(sub *Subscription) {
	for i, x := range s.subs {
		if x == sub {
			s.subs = append(s.subs[:i], s.subs[i+1:]...)
			break
		}
	}
	s.closeQueue(sub.q)
}

func (s *session) closeQueue(q *deliveryQueue) {
	left, started := q.close()
	if !started {
		close(q.out)
	}
	for _, d := range left {
		s.mem.releaseInbound(d.size)
		if d.ref != nil {
			s.release(d.ref)
		}
	}
	if len(left) > 0 {
		s.retryStalled()
	}
}

type unsubscribeReq struct {
	ctx     context.Context
	filters []string
	reply   chan error

	// Set when sent.
	id  uint16
	seq uint64
}

func (r *unsubscribeReq) fail(err error) { r.reply <- err }

func (r *unsubscribeReq) seqNo() uint64 { return r.seq }

func (r *unsubscribeReq) handle(s *session) {
	if err := s.refusing(); err != nil {
		r.fail(err)
		return
	}
	if !s.tryUnsubscribe(r) {
		s.waiting = append(s.waiting, r)
	}
}

// trySend sends a waiting UNSUBSCRIBE if a connection and a packet
// identifier are available; see queued. One whose caller gave up is dropped.
func (r *unsubscribeReq) trySend(s *session, pubBlocked bool) (left, blocked bool) {
	if r.ctx.Err() != nil {
		r.fail(r.ctx.Err())
		return true, pubBlocked
	}
	return s.tryUnsubscribe(r), pubBlocked
}

// resend sends the UNSUBSCRIBE again on a new connection (see resume).
func (r *unsubscribeReq) resend(s *session, _ bool) {
	s.send(&packet.Unsubscribe{PacketID: r.id, Filters: r.filters})
}

// awaits names the acknowledgement r waits for.
func (r *unsubscribeReq) awaits() string { return "UNSUBACK" }

func (s *session) tryUnsubscribe(r *unsubscribeReq) bool {
	if s.conn == nil {
		return false
	}
	id, ok := s.allocID()
	if !ok {
		return false
	}
	s.seq++
	r.id, r.seq = id, s.seq
	s.out[id] = r
	s.send(&packet.Unsubscribe{PacketID: id, Filters: r.filters})
	return true
}

func (s *session) unsubacked(a *packet.Unsuback) {
	r, ok := s.out[a.PacketID].(*unsubscribeReq)
	if !ok {
		s.protocolFail(fmt.Errorf("%w: UNSUBACK for packet ID %d, which awaits no UNSUBACK", ErrProtocolViolation, a.PacketID))
		return
	}
	if s.conn != nil && s.conn.version == packet.V5 && len(a.ReasonCodes) != len(r.filters) {
		s.protocolFail(fmt.Errorf("%w: UNSUBACK with %d reason codes for %d topic filters [MQTT-3.11.3-1]", ErrProtocolViolation, len(a.ReasonCodes), len(r.filters)))
		return
	}
	delete(s.out, a.PacketID)
	var refused []FilterResult
	for i, f := range r.filters {
		if i < len(a.ReasonCodes) && a.ReasonCodes[i].IsError() {
			refused = append(refused, FilterResult{Filter: f, Code: a.ReasonCodes[i]})
			continue
		}
		s.dropFilter(f)
	}
	if refused != nil {
		r.reply <- &SubscribeError{Unsubscribe: true, Refused: refused, Reason: a.Props.ReasonString}
	} else {
		r.reply <- nil
	}
	s.drainWaiting()
	s.checkDisconnect()
}

// dropFilter removes filter f from every subscription, ending those left
// without filters.
func (s *session) dropFilter(f string) {
	for i := 0; i < len(s.subs); i++ {
		sub := s.subs[i]
		kept := sub.filters[:0]
		for _, x := range sub.filters {
			if x != f {
				kept = append(kept, x)
			}
		}
		sub.filters = kept
		if len(kept) == 0 {
			s.removeSub(sub)
			i--
		}
	}
}

// checkFilters refuses, before sending, filters the broker announced it does
// not support: wildcards and shared subscriptions (MQTT 5.0 CONNACK
// properties; a broker would answer with 0xA2 or 0x9E).
func (conn *connection) checkFilters(filters []packet.Subscription) error {
	for _, f := range filters {
		group, filter := packet.SharedFilter(f.Filter)
		if group != "" && !conn.sharedSubs {
			return &ArgumentError{What: "topic filter", Value: f.Filter, Err: errors.New("the broker does not support shared subscriptions")}
		}
		if !conn.wildcardSubs && strings.ContainsAny(filter, "+#") {
			return &ArgumentError{What: "topic filter", Value: f.Filter, Err: errors.New("the broker does not support wildcard subscriptions")}
		}
	}
	return nil
}
