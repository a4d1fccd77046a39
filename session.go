package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/b4e21b16/mqtt/packet"
)

// request is work submitted to the session goroutine by an API call.
type request interface {
	// handle runs on the session goroutine.
	handle(s *session)
	// fail completes the request with err without handling it.
	fail(err error)
}

// outstanding is a packet awaiting its acknowledgement, keyed by packet ID:
// a *Pending (PUBLISH), *subscribeReq or *unsubscribeReq.
type outstanding interface{ fail(err error) }

// inboundRef tracks one received QoS 1 or 2 message until it is fully
// acknowledged. A message is acknowledged only after every delivery queue it
// was given to has let it go (the application took it, or the subscription
// ended), and acknowledgements go out in the order the messages arrived
// [MQTT-4.6.0-2] [MQTT-4.6.0-3].
type inboundRef struct {
	id      uint16
	qos     byte
	holders int  // delivery queues still holding the message
	acked   bool // PUBACK or PUBREC sent; a QoS 2 message then waits for PUBREL
}

type pingWait struct {
	sent  time.Time
	reply chan time.Duration // nil for keepalive pings
}

// Pause reasons: the session stops taking packets from the reader.
const (
	pauseStalled  = 1 << iota // a QoS 0 message waits for room (OverflowPolicy Block)
	pauseInflight             // ReceiveMaximum unacknowledged messages are held (3.1.1)
)

// session is the one goroutine that owns the protocol state of a Client:
// packet identifiers, in-flight messages in both directions, subscriptions
// and their routing, keepalive. Everything else talks to it through
// channels: API calls through reqs, the connection's reader through in, and
// delivery pumps through taken and room. It never blocks on any of them, nor
// on the network (the writer's queue accepts without waiting), so neither a
// slow application nor a slow broker can stall it.
type session struct {
	c     *Client
	cfg   *Config
	log   *slog.Logger
	debug bool

	reqs      chan request
	in        chan inbound
	taken     chan *inboundRef
	room      chan struct{}
	stopPumps chan struct{}

	conn *connection // nil when there is no connection

	// Outbound state.
	out       map[uint16]outstanding // by packet ID
	lastID    uint16
	sendQuota int       // the broker's Receive Maximum minus QoS 1/2 publishes in flight
	waiting   []request // submitted work waiting for a packet ID or send quota, in order

	// Inbound state.
	inByID   map[uint16]*inboundRef
	freeRefs []*inboundRef // finished records kept for reuse
	ackOrder []*inboundRef // unacknowledged messages in arrival order
	pausedBy int
	stalled  *stalledDelivery

	subs      []*Subscription
	defaultQ  *deliveryQueue
	lastSubID uint32

	pings        []pingWait
	pingSeen     uint64 // reader packet count when the oldest ping was last found unanswered
	pingDeadline time.Time
	kaTimer      *time.Timer
	lastRTT      time.Duration

	ackScratch packet.Ack // reused to send acknowledgements without allocating

	serverDisconnect error          // a DISCONNECT from the broker, the cause of the connection's end
	disconnecting    *disconnectReq // a graceful Disconnect in progress
	ending           bool           // connectionEnded is draining the reader's last packets
	stopped          bool
}

// stalledDelivery is a QoS 0 message that could not be queued for every
// matching subscription under OverflowPolicy Block.
type stalledDelivery struct {
	msg    Message
	queues []*deliveryQueue
}

func newSession(c *Client) *session {
	s := &session{
		c:         c,
		cfg:       &c.cfg,
		log:       c.log,
		debug:     c.log.Enabled(context.Background(), slog.LevelDebug),
		reqs:      make(chan request),
		in:        make(chan inbound, 16),
		taken:     make(chan *inboundRef, 64),
		room:      make(chan struct{}, 1),
		stopPumps: make(chan struct{}),
		out:       make(map[uint16]outstanding),
		inByID:    make(map[uint16]*inboundRef),
		defaultQ:  newDeliveryQueue(c.cfg.MessageBuffer),
	}
	s.kaTimer = time.NewTimer(time.Hour)
	s.kaTimer.Stop()
	return s
}

// submit hands r to the session goroutine.
func (s *session) submit(ctx context.Context, r request) error {
	select {
	case s.reqs <- r:
		return nil
	case <-s.c.done:
		return s.c.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// attach makes conn the session's connection and starts its goroutines.
func (s *session) attach(conn *connection) {
	s.conn = conn
	s.sendQuota = conn.receiveMax
	s.c.sessionPresent.Store(conn.sessionPresent)
	if conn.assignedID != "" {
		id := conn.assignedID
		s.c.clientID.Store(&id)
	}
	conn.start(s.in)
	s.c.conn.Store(conn)
	s.pings = s.pings[:0]
	if conn.keepAlive > 0 {
		s.kaTimer.Reset(conn.keepAlive)
	}
	s.log.Info("mqtt: connected", "server", conn.server.url, "version", conn.version.String(),
		"session_present", conn.sessionPresent, "keepalive", conn.keepAlive)
}

func (s *session) run() {
	defer close(s.c.exited)
	for !s.stopped {
		in := s.in
		if s.pausedBy != 0 {
			in = nil
		}
		var connDone, discDone <-chan struct{}
		if s.conn != nil {
			connDone = s.conn.ctx.Done()
		}
		if s.disconnecting != nil {
			discDone = s.disconnecting.ctx.Done()
		}
		select {
		case r := <-s.reqs:
			r.handle(s)
		case ev := <-in:
			s.handleInbound(&ev)
		case ref := <-s.taken:
			s.release(ref)
		case <-s.room:
			s.retryStalled()
		case <-s.kaTimer.C:
			s.keepAlive()
		case <-connDone:
			s.connectionEnded(context.Cause(s.conn.ctx))
		case <-discDone:
			s.finishDisconnect(s.disconnecting.ctx.Err())
		case <-s.c.closing:
			s.shutdown(ErrClosed)
		}
	}
}

// send queues p on the current connection. Failures mean the connection is
// ending; the session learns that from the connection's context.
func (s *session) send(p packet.Packet) {
	if s.conn == nil {
		return
	}
	if err := s.conn.w.send(p); err != nil && s.debug {
		s.log.Debug("mqtt: send failed", "packet", p.Type().String(), "err", err)
	}
}

// sendAck sends a PUBACK, PUBREC, PUBREL or PUBCOMP.
func (s *session) sendAck(t packet.Type, id uint16, code packet.ReasonCode) {
	s.ackScratch = packet.Ack{PacketType: t, PacketID: id, ReasonCode: code}
	s.send(&s.ackScratch)
}

// refusing reports whether new work must be refused, and with which error.
func (s *session) refusing() error {
	if s.disconnecting != nil {
		return ErrClosed
	}
	if s.conn == nil {
		return lostError(errors.New("not connected"))
	}
	return nil
}

// allocID returns an unused packet identifier, or false when all 65,535 are
// in flight [MQTT-2.2.1-2].
func (s *session) allocID() (uint16, bool) {
	if len(s.out) >= 65535 {
		return 0, false
	}
	for {
		s.lastID++
		if s.lastID == 0 {
			s.lastID = 1
		}
		if _, used := s.out[s.lastID]; !used {
			return s.lastID, true
		}
	}
}

// --- Publishing ---

func (p *Pending) fail(err error) { p.complete(err) }

func (p *Pending) handle(s *session) {
	if err := s.refusing(); err != nil {
		p.complete(err)
		return
	}
	if err := s.conn.checkOutbound(&p.msg); err != nil {
		p.complete(err)
		return
	}
	if len(s.waiting) > 0 || !s.trySendPublish(p) {
		s.waiting = append(s.waiting, p)
	}
}

// trySendPublish sends a QoS 1 or 2 publish if a packet ID and send quota
// (the broker's Receive Maximum) are available [MQTT-4.9.0-2].
func (s *session) trySendPublish(p *Pending) bool {
	if s.sendQuota <= 0 {
		return false
	}
	id, ok := s.allocID()
	if !ok {
		return false
	}
	p.msg.toPublish(&p.pub)
	p.pub.PacketID = id
	p.phase = packet.PUBACK
	if p.msg.QoS == ExactlyOnce {
		p.phase = packet.PUBREC
	}
	s.out[id] = p
	s.sendQuota--
	s.send(&p.pub)
	return true
}

// drainWaiting sends waiting work for which IDs and quota have become free.
// Publishes keep their order; a subscribe or unsubscribe does not wait
// behind a publish that waits for send quota.
func (s *session) drainWaiting() {
	if s.conn == nil {
		return
	}
	kept := s.waiting[:0]
	pubBlocked := false
	for _, r := range s.waiting {
		sent := false
		switch r := r.(type) {
		case *Pending:
			if err := r.ctx.Err(); err != nil {
				r.complete(err)
				sent = true
			} else if !pubBlocked {
				sent = s.trySendPublish(r)
				pubBlocked = !sent
			}
		case *subscribeReq:
			sent = s.trySubscribe(r)
		case *unsubscribeReq:
			sent = s.tryUnsubscribe(r)
		}
		if !sent {
			kept = append(kept, r)
		}
	}
	clear(s.waiting[len(kept):])
	s.waiting = kept
}

// publishAcked handles PUBACK, PUBREC and PUBCOMP for an outbound publish.
func (s *session) publishAcked(a *packet.Ack) {
	o, ok := s.out[a.PacketID]
	p, isPub := o.(*Pending)
	if !ok || !isPub || p.phase != a.PacketType {
		want := "nothing"
		if isPub {
			want = p.phase.String()
		}
		s.protocolFail(fmt.Errorf("%w: %v for packet ID %d, which awaits %s", ErrProtocolViolation, a.PacketType, a.PacketID, want))
		return
	}
	if a.PacketType == packet.PUBREC && !a.ReasonCode.IsError() {
		// [MQTT-4.3.3-9]: answer PUBREC with PUBREL; the ID stays in use.
		p.phase = packet.PUBCOMP
		s.sendAck(packet.PUBREL, a.PacketID, 0)
		return
	}
	delete(s.out, a.PacketID)
	s.sendQuota++
	var err error
	if a.ReasonCode.IsError() {
		err = &ReasonError{Packet: a.PacketType.String(), Code: a.ReasonCode, Reason: a.Props.ReasonString}
	}
	p.complete(err)
	s.drainWaiting()
	s.checkDisconnect()
}

// --- Receiving ---

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
		*ref = inboundRef{id: id, qos: qos}
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

// release records that one queue let go of a QoS 1/2 message.
func (s *session) release(ref *inboundRef) {
	ref.holders--
	if ref.holders == 0 {
		s.flushAcks()
	}
}

// flushAcks acknowledges released messages from the front of the arrival
// order: PUBACK for QoS 1, PUBREC for QoS 2.
func (s *session) flushAcks() {
	for len(s.ackOrder) > 0 && s.ackOrder[0].holders == 0 {
		ref := s.ackOrder[0]
		s.ackOrder[0] = nil
		s.ackOrder = s.ackOrder[1:]
		ref.acked = true
		if ref.qos == 1 {
			delete(s.inByID, ref.id)
			s.sendAck(packet.PUBACK, ref.id, 0)
			s.freeRef(ref)
		} else {
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
		s.freeRef(ref)
	} else if s.conn != nil && s.conn.version == packet.V5 {
		code = packet.PacketIdentifierNotFound
	}
	s.sendAck(packet.PUBCOMP, a.PacketID, code)
}

// --- Subscriptions ---

type subscribeReq struct {
	ctx     context.Context
	filters []packet.Subscription
	reply   chan subscribeResult
	sub     *Subscription
}

type subscribeResult struct {
	sub *Subscription
	err error
}

func (r *subscribeReq) fail(err error) { r.reply <- subscribeResult{err: err} }

func (r *subscribeReq) handle(s *session) {
	if err := s.refusing(); err != nil {
		r.fail(err)
		return
	}
	// Receive Maximum limits PUBLISH only [MQTT-4.9.0-2]: a SUBSCRIBE waits
	// only when no packet identifier is free.
	if !s.trySubscribe(r) {
		s.waiting = append(s.waiting, r)
	}
}

func (s *session) trySubscribe(r *subscribeReq) bool {
	id, ok := s.allocID()
	if !ok {
		return false
	}
	sub := &Subscription{c: s.c, q: newDeliveryQueue(s.cfg.MessageBuffer)}
	for _, f := range r.filters {
		sub.filters = append(sub.filters, f.Filter)
	}
	r.sub = sub
	// Route from now on: the broker may send matching messages before SUBACK.
	s.subs = append(s.subs, sub)
	s.out[id] = r
	sp := &packet.Subscribe{PacketID: id, Subscriptions: r.filters}
	if s.conn.subIDs {
		s.lastSubID = s.lastSubID%(1<<28-1) + 1
		sub.id = s.lastSubID
		sp.Props.SubscriptionIDs = []uint32{sub.id}
	}
	s.send(sp)
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
	sub.granted = make([]FilterResult, len(a.ReasonCodes))
	var refused []FilterResult
	sub.filters = sub.filters[:0]
	for i, code := range a.ReasonCodes {
		fr := FilterResult{Filter: r.filters[i].Filter, Code: code}
		sub.granted[i] = fr
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
	case len(sub.filters) == 0:
		s.removeSub(sub)
		r.reply <- subscribeResult{err: err}
	case r.ctx.Err() != nil:
		// The caller stopped waiting and will never read this subscription:
		// its messages go to Client.Messages instead.
		s.removeSub(sub)
		r.reply <- subscribeResult{err: r.ctx.Err()}
	default:
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
		if d.ref != nil {
			s.release(d.ref)
		}
	}
	if st := s.stalled; st != nil {
		for i, x := range st.queues {
			if x == q {
				st.queues = append(st.queues[:i], st.queues[i+1:]...)
				break
			}
		}
		s.retryStalled()
	}
}

type unsubscribeReq struct {
	ctx     context.Context
	filters []string
	reply   chan error
}

func (r *unsubscribeReq) fail(err error) { r.reply <- err }

func (r *unsubscribeReq) handle(s *session) {
	if err := s.refusing(); err != nil {
		r.fail(err)
		return
	}
	if !s.tryUnsubscribe(r) {
		s.waiting = append(s.waiting, r)
	}
}

func (s *session) tryUnsubscribe(r *unsubscribeReq) bool {
	id, ok := s.allocID()
	if !ok {
		return false
	}
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

// --- Ping and keepalive ---

type pingReq struct{ reply chan time.Duration }

func (r *pingReq) fail(error) {}

func (r *pingReq) handle(s *session) {
	if s.refusing() != nil {
		return // Ping sees Done closed or waits on its ctx
	}
	s.ping(r.reply)
}

func (s *session) ping(reply chan time.Duration) {
	now := time.Now()
	if len(s.pings) == 0 {
		s.pingSeen = s.conn.r.packetsIn.Load()
		s.pingDeadline = now.Add(s.cfg.PingTimeout)
	}
	s.pings = append(s.pings, pingWait{sent: now, reply: reply})
	s.send(&packet.Pingreq{})
	if len(s.pings) == 1 {
		s.armKeepAlive(now)
	}
}

func (s *session) pong() {
	if len(s.pings) == 0 {
		return // an unsolicited PINGRESP is harmless
	}
	p := s.pings[0]
	s.pings = s.pings[1:]
	s.lastRTT = time.Since(p.sent)
	if p.reply != nil {
		p.reply <- s.lastRTT
	}
	if len(s.pings) > 0 {
		s.pingSeen = s.conn.r.packetsIn.Load()
		s.pingDeadline = time.Now().Add(s.cfg.PingTimeout)
	}
	s.armKeepAlive(time.Now())
}

// keepAlive runs when the keepalive timer fires: it sends PINGREQ when the
// client has been silent for the keepalive interval [MQTT-3.1.2-23], and
// declares the connection lost when nothing at all arrived for PingTimeout
// after a PINGREQ. Time while the session itself holds reading back (a slow
// application under OverflowPolicy Block) does not count against the broker.
func (s *session) keepAlive() {
	conn := s.conn
	if conn == nil || conn.keepAlive == 0 {
		return
	}
	now := time.Now()
	if len(s.pings) > 0 {
		if n := conn.r.packetsIn.Load(); n != s.pingSeen || s.pausedBy != 0 {
			s.pingSeen = n
			s.pingDeadline = now.Add(s.cfg.PingTimeout)
		} else if !now.Before(s.pingDeadline) {
			s.log.Info("mqtt: keepalive timeout", "server", conn.server.url, "ping_timeout", s.cfg.PingTimeout)
			conn.cancel(ErrKeepAliveTimeout)
			return
		}
	}
	if len(s.pings) == 0 && s.idle(now) >= conn.keepAlive {
		s.ping(nil)
	}
	s.armKeepAlive(now)
}

// idle returns how long the client has sent nothing.
func (s *session) idle(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, s.conn.w.lastWrite.Load()))
}

// armKeepAlive sets the keepalive timer: to the ping deadline while a
// PINGREQ is unanswered, otherwise to when the keepalive interval of
// silence will have passed.
func (s *session) armKeepAlive(now time.Time) {
	if s.conn == nil || s.conn.keepAlive == 0 {
		return
	}
	next := s.conn.keepAlive - s.idle(now)
	if len(s.pings) > 0 {
		next = s.pingDeadline.Sub(now)
	}
	s.kaTimer.Reset(max(next, time.Millisecond))
}

// --- Connection end and shutdown ---

// protocolFail ends the connection because the broker broke the protocol,
// telling an MQTT 5.0 broker why with a DISCONNECT reason code.
func (s *session) protocolFail(err error) {
	code := packet.ProtocolError
	var pe *packet.Error
	if errors.As(err, &pe) {
		code = pe.Code
	}
	s.protocolFailCode(code, err)
}

func (s *session) protocolFailCode(code packet.ReasonCode, err error) {
	conn := s.conn
	if conn == nil || s.ending {
		return
	}
	s.log.Info("mqtt: protocol violation by the broker", "server", conn.server.url, "err", err)
	flush := conn.version == packet.V5
	if flush {
		s.send(&packet.Disconnect{ReasonCode: code})
	}
	conn.close(err, flush)
	s.connectionEnded(err)
}

// connectionEnded tears down the current connection after its context ended.
func (s *session) connectionEnded(cause error) {
	conn := s.conn
	if conn == nil {
		return
	}
	conn.close(cause, false)
	// Packets the reader handed over before it stopped are still valid.
	s.ending = true
	for drained := false; !drained; {
		select {
		case ev := <-s.in:
			if ev.err == nil {
				s.handleInbound(&ev)
			}
		default:
			drained = true
		}
	}
	s.ending = false
	if s.serverDisconnect != nil {
		cause = s.serverDisconnect
	}
	s.conn = nil
	s.c.conn.Store(nil)
	s.kaTimer.Stop()
	s.log.Info("mqtt: connection lost", "server", conn.server.url, "err", cause)
	s.shutdown(lostError(cause))
}

type disconnectReq struct {
	ctx     context.Context
	settled chan error
}

func (r *disconnectReq) fail(err error) { r.settled <- err }

func (r *disconnectReq) handle(s *session) {
	if s.disconnecting != nil {
		r.fail(ErrClosed)
		return
	}
	s.disconnecting = r
	// New QoS 0 publishes, which bypass the session, are refused from now on.
	s.c.conn.Store(nil)
	s.checkDisconnect()
}

// checkDisconnect finishes a graceful disconnect once no work is in flight.
func (s *session) checkDisconnect() {
	if s.disconnecting != nil && len(s.out) == 0 && len(s.waiting) == 0 {
		s.finishDisconnect(nil)
	}
}

func (s *session) finishDisconnect(err error) {
	r := s.disconnecting
	s.disconnecting = nil
	if conn := s.conn; conn != nil {
		// Nothing may follow DISCONNECT on the connection [MQTT-3.14.4-1].
		if err := conn.w.sendLast(&packet.Disconnect{}); err != nil && s.debug {
			s.log.Debug("mqtt: send DISCONNECT failed", "err", err)
		}
		conn.close(ErrClosed, true)
		s.conn = nil
		s.c.conn.Store(nil)
		s.log.Info("mqtt: disconnected", "server", conn.server.url)
	}
	s.shutdown(ErrClosed)
	r.settled <- err
}

// shutdown stops the client for good: every waiting call completes with
// cause, receiving channels close, and every delivery goroutine exits.
func (s *session) shutdown(cause error) {
	if s.stopped {
		return
	}
	if conn := s.conn; conn != nil {
		conn.close(cause, false)
		s.conn = nil
		s.c.conn.Store(nil)
	}
	s.kaTimer.Stop()
	s.c.stop(cause)
	cause = s.c.Err()
	for id, o := range s.out {
		delete(s.out, id)
		o.fail(cause)
	}
	for _, r := range s.waiting {
		r.fail(cause)
	}
	s.waiting = nil
	if r := s.disconnecting; r != nil {
		s.disconnecting = nil
		r.fail(cause)
	}
	for {
		select {
		case r := <-s.reqs:
			r.fail(cause)
			continue
		default:
		}
		break
	}
	close(s.stopPumps)
	for _, sub := range s.subs {
		s.closeQueue(sub.q)
	}
	s.subs = nil
	s.closeQueue(s.defaultQ)
	s.c.pumps.Wait()
	s.stopped = true
}
