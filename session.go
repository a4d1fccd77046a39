package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/b4e21b16/mqtt/packet"
)

// request is work submitted to the session goroutine through its request
// queue, by an API call or a delivery pump. The set is closed; each kind
// says in its own methods how the session handles it, so a new kind cannot
// be added without saying so:
//
//	publishReq, durableReq      Publish, PublishAsync, PublishDurable
//	subscribeReq, unsubscribeReq Subscribe, Unsubscribe
//	pingReq                     Ping
//	disconnectReq               Disconnect
//	reauthSend, reauthAbort     Reauthenticate
//	ackReq                      Message.Ack (ManualAck)
//	*inboundRef, roomNotice     a delivery pump: a message taken, memory freed
type request interface {
	// handle runs on the session goroutine.
	handle(s *session)
	// fail completes the request with err without handling it.
	fail(err error)
}

// queued is a request waiting in session.waiting for a connection, a packet
// identifier or the broker's Receive Maximum: a publishReq, subscribeReq,
// unsubscribeReq or pingReq.
type queued interface {
	request
	// trySend sends the work if it can go now and reports whether it left
	// the queue (sent, or failed because its caller gave up). pubBlocked
	// says an earlier publish still waits, so that publishes keep their
	// order; blocked reports the new state of it after this work.
	trySend(s *session, pubBlocked bool) (left, blocked bool)
}

// outstanding is a packet awaiting its acknowledgement, keyed by packet ID:
// a publishReq (PUBLISH), subscribeReq or unsubscribeReq.
type outstanding interface {
	fail(err error)
	// seqNo orders outstanding packets for re-sending after a reconnect.
	seqNo() uint64
	// resend brings the packet onto a new connection; present says whether
	// the broker kept the session.
	resend(s *session, present bool)
	// awaits names the acknowledgement awaited next.
	awaits() string
}

// The closed sets, checked by the compiler.
var (
	_ request     = (*publishReq)(nil)
	_ request     = (*durableReq)(nil)
	_ request     = (*disconnectReq)(nil)
	_ request     = (*reauthSend)(nil)
	_ request     = (*reauthAbort)(nil)
	_ request     = (*ackReq)(nil)
	_ request     = (*inboundRef)(nil)
	_ request     = roomNotice{}
	_ queued      = (*publishReq)(nil)
	_ queued      = (*subscribeReq)(nil)
	_ queued      = (*unsubscribeReq)(nil)
	_ queued      = (*pingReq)(nil)
	_ outstanding = (*publishReq)(nil)
	_ outstanding = (*subscribeReq)(nil)
	_ outstanding = (*unsubscribeReq)(nil)
)

// inboundRef tracks one received QoS 1 or 2 message until it is fully
// acknowledged. A message is acknowledged only after every delivery queue it
// was given to has let it go (the application took it, or the subscription
// ended), and acknowledgements go out in the order the messages arrived
// [MQTT-4.6.0-2] [MQTT-4.6.0-3].
type inboundRef struct {
	id          uint16
	qos         byte
	holders     int    // delivery queues still holding the message
	acked       bool   // PUBACK or PUBREC sent; a QoS 2 message then waits for PUBREL
	stale       bool   // the broker lost the session, or reused the ID: never acknowledge
	sum         uint64 // publishSum of the message, 0 when unknown (restored from a Store)
	manualAcked bool   // Message.Ack was called (ManualAck)
	gen         uint32 // incremented each time the record is reused
}

type pingWait struct {
	sent  time.Time
	reply chan time.Duration // nil for keepalive pings
}

// session is the one goroutine that owns the protocol state of a Client:
// packet identifiers, in-flight messages in both directions, subscriptions
// and their routing, keepalive. Everything else talks to it through
// queues: API calls, and the delivery pumps' notices (a message taken, room
// made), through reqs; the connection's reader through in. It never blocks on
// any of them, nor
// on the network (the writer's queue accepts without waiting), so neither a
// slow application nor a slow broker can stall it.
type session struct {
	c     *Client
	cfg   *Config
	log   *slog.Logger
	debug bool

	reqs      *requestQueue
	in        chan *inboundBatch // from the current connection's reader
	stopPumps chan struct{}
	// batch is the reader's batch being handled, from batchAt on; the rest
	// waits while a message waits for memory (stalled).
	batch   *inboundBatch
	batchAt int

	conn *connection // nil when there is no connection

	// Outbound state.
	out         map[uint16]outstanding // by packet ID
	lastID      uint16
	seq         uint64        // numbers publishes and control packets in the order they were made
	sendQuota   int           // the broker's Receive Maximum minus QoS 1/2 publishes in flight
	resend      []*publishReq // in-flight publishes to re-send after a reconnect, waiting for quota
	waiting     []queued      // work waiting for a connection, a packet ID or send quota, in order
	queuedMsgs  int           // publishes in waiting (Config.Queue.MaxMessages)
	queuedBytes int           // their payload bytes (Config.Queue.MaxBytes)
	overflow    []*publishReq // publishes waiting for room in the queue (QueueWait)
	store       Store         // nil: state lives only in this session

	// Reconnection.
	dialed     chan dialResult // from the redial goroutine
	dialCancel func()          // stops the redial goroutine; nil when none runs
	failures   int             // unhealthy connections and failed attempts since the last healthy connection
	redirectTo *server         // where a broker's DISCONNECT sent the client (Config.FollowRedirects)

	// Inbound state.
	inByID   map[uint16]*inboundRef
	freeRefs []*inboundRef     // finished records kept for reuse
	ackOrder fifo[*inboundRef] // unacknowledged messages in arrival order
	// stalled is set while a received PUBLISH (stalledPub) waits for memory
	// to be delivered (see noRoom): the session then takes nothing more
	// from the reader, which pushes back on the broker through TCP.
	stalled     bool
	stalledPub  *packet.Publish
	stalledSize int // its body's allocation
	// deferring is set once a received QoS 1 or 2 message was left
	// unacknowledged on this connection for lack of memory: every later
	// one is too, so that acknowledgements keep their order, until the
	// connection is replaced (see checkCaughtUp).
	deferring bool
	routeBuf  []*deliveryQueue // the queues a message is routed to; reused
	mem       *memoryBudget

	subs      []*Subscription
	defaultQ  *deliveryQueue
	lastSubID uint32

	pings     []pingWait
	inAliases []string // inbound topic aliases of the current connection, by alias
	reauth    *reauthReq

	pingSeen     uint64    // reader packet count when the oldest ping was last found unanswered
	pingDeadline time.Time // when the connection counts as dead if nothing is read before
	lastPing     time.Time // when the latest PINGREQ was queued
	kaTimer      *time.Timer

	pubScratch *packet.Publish // reused to encode publishes (see sendPublish); made on first use

	resubscribing  int   // resubscriptions awaiting SUBACK after a session loss
	resubscribeErr error // refusals among them

	serverDisconnect error          // a DISCONNECT from the broker, the cause of the connection's end
	disconnecting    *disconnectReq // a graceful Disconnect in progress
	ending           bool           // connectionEnded is draining the reader's last packets
	stopped          bool
}

func newSession(c *Client) *session {
	s := &session{
		c:         c,
		cfg:       &c.cfg,
		log:       c.log,
		debug:     c.log.Enabled(context.Background(), slog.LevelDebug),
		reqs:      newRequestQueue(),
		dialed:    make(chan dialResult, 1),
		store:     c.cfg.Store,
		in:        make(chan *inboundBatch, 1),
		stopPumps: make(chan struct{}),
		out:       make(map[uint16]outstanding),
		inByID:    make(map[uint16]*inboundRef),
		defaultQ:  newDeliveryQueue(c.cfg.qos0Limit()),
		mem:       c.mem,
	}
	s.kaTimer = time.NewTimer(time.Hour)
	s.kaTimer.Stop()
	return s
}

// submit hands r to the session goroutine.
func (s *session) submit(ctx context.Context, r request) error {
	err := s.reqs.push(ctx, r)
	if err == errStopped {
		return s.c.Err()
	}
	return err
}

// handleRequests handles every queued API call. If one of them stops the
// session, the rest fail with the client's error.
func (s *session) handleRequests() {
	batch := s.reqs.take()
	for i, r := range batch {
		if s.stopped {
			for _, r := range batch[i:] {
				r.fail(s.c.Err())
			}
			break
		}
		r.handle(s)
	}
	s.reqs.recycle(batch)
}

// attach makes conn the session's connection and starts its goroutines.
func (s *session) attach(conn *connection) {
	s.conn = conn
	s.sendQuota = conn.receiveMax
	if n := s.cfg.MaxInflight; n > 0 {
		s.sendQuota = min(s.sendQuota, n)
	}
	s.resend = nil
	s.inAliases = nil
	s.c.connectedOnce.Store(true)
	s.c.counters.connects.Add(1)
	id := s.c.sessionClientID()
	if conn.assignedID != "" {
		id = conn.assignedID
	}
	s.c.connInfo.Store(conn.describe(s.cfg, id))
	conn.start(s.in)
	s.pings = s.pings[:0]
	if conn.keepAlive > 0 {
		s.kaTimer.Reset(conn.keepAlive)
	}
	s.log.Info("mqtt: connected", "server", conn.server.url, "version", conn.version.String(),
		"session_present", conn.sessionPresent, "keepalive", conn.keepAlive)
	s.resume(conn.sessionPresent)
	s.drainWaiting()
	// QoS 0 publishers bypass the session; they see the connection only
	// after the resubscriptions and queued work, so they cannot overtake them.
	if s.disconnecting == nil {
		s.c.conn.Store(conn)
	}
	s.c.emit(Event{Kind: EventConnected, Server: conn.server.url, SessionPresent: conn.sessionPresent})
}

func (s *session) run() {
	defer close(s.c.exited)
	for !s.stopped {
		if s.stalled && s.awaitingBroker() {
			// A call waits for the broker's answer, which must be read:
			// the stalled message is dropped or deferred instead.
			s.retryStalled()
		}
		if s.batch != nil && !s.stalled {
			s.takeBatch()
		}
		in := s.in
		if s.stalled || s.batch != nil {
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
		case <-s.reqs.kick:
			s.handleRequests()
		case b := <-in:
			s.batch, s.batchAt = b, 0
			s.takeBatch()
			s.drainInbound()
		case <-s.kaTimer.C:
			s.keepAlive()
		case <-connDone:
			s.connectionEnded(context.Cause(s.conn.ctx))
		case r := <-s.dialed:
			s.redialed(r)
		case <-discDone:
			s.finishDisconnect(s.disconnecting.ctx.Err())
		case <-s.c.closing:
			s.shutdown(ErrClosed)
		}
		if s.deferring {
			s.checkCaughtUp()
		}
		s.publishGauges()
	}
}

// drainInbound handles a batch the reader has already queued, without going
// through the full select, while the session is free to.
func (s *session) drainInbound() {
	if s.batch != nil || s.conn == nil || s.stopped {
		return
	}
	select {
	case b := <-s.in:
		s.batch, s.batchAt = b, 0
		s.takeBatch()
	default:
	}
}

// takeBatch handles the packets of the current batch in order, stopping
// while a message waits for memory (unless the connection is ending, when
// nothing waits), and gives the batch back to the pool once done. The
// connection may end while a packet is handled; the rest of the batch is
// then handled by connectionEnded, which leaves the batch to the garbage
// collector (the packet being handled is still in use), or dropped once the
// session has stopped.
func (s *session) takeBatch() {
	b := s.batch
	for b != nil && s.batch == b {
		switch {
		case s.stopped || s.conn == nil && !s.ending:
			s.batch = nil
			return
		case s.batchAt == len(b.evs):
			s.batch = nil
			if !s.ending {
				s.conn.r.recycle(b)
			}
			return
		case s.stalled && !s.ending:
			return
		}
		ev := &b.evs[s.batchAt]
		s.batchAt++
		if ev.err != nil && s.ending {
			continue
		}
		s.take(ev)
	}
}

// take handles one packet from the reader and hands the record back.
func (s *session) take(ev *inbound) {
	var rd *reader
	if s.conn != nil {
		rd = s.conn.r
	}
	s.handleInbound(ev)
	if rd != nil {
		rd.handled(ev)
	}
}

// redialed takes the outcome of the reconnecting goroutine. It is kept out
// of run so that run's stack frame, which an idle client keeps, stays small.
//
//go:noinline
func (s *session) redialed(r dialResult) {
	s.dialCancel()
	s.dialCancel = nil
	s.failures += max(r.attempts-1, 0)
	if r.err != nil {
		s.log.Info("mqtt: gave up reconnecting", "err", r.err)
		s.c.emit(Event{Kind: EventGaveUp, Attempt: r.attempts, Err: r.err})
		s.shutdown(r.err)
		return
	}
	s.attach(r.conn)
}

// send queues p on the current connection. An error wrapping errEncode
// means p cannot be encoded and was not queued; other failures mean the
// connection is ending, which the session learns from the connection's
// context.
func (s *session) send(p packet.Packet) error {
	if s.conn == nil {
		return nil
	}
	if s.debug {
		s.log.Debug("mqtt: send", packetAttrs(p)...)
	}
	err := s.conn.w.send(p)
	if err != nil && s.debug {
		s.log.Debug("mqtt: send failed", "packet", p.Type().String(), "err", err)
	}
	return err
}

// sendAck sends a PUBACK, PUBREC, PUBREL or PUBCOMP.
func (s *session) sendAck(t packet.Type, id uint16, code packet.ReasonCode) {
	if s.conn == nil {
		return
	}
	if s.debug {
		s.send(&packet.Ack{PacketType: t, PacketID: id, ReasonCode: code})
		return
	}
	_ = s.conn.w.sendAck(t, id, code)
}

// refusing reports whether new work must be refused, and with which error.
// While the client reconnects, work is accepted and waits.
func (s *session) refusing() error {
	if s.disconnecting != nil || s.stopped {
		return ErrClosed
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

// Connection end and shutdown.

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
	if conn.version == packet.V5 {
		s.hangUp(err, &packet.Disconnect{ReasonCode: code})
	} else {
		s.hangUp(err, nil)
	}
}

// hangUp ends the current connection with cause, sending d first if it is
// not nil (within finalFlushTimeout), and goes on as for any lost
// connection.
func (s *session) hangUp(cause error, d *packet.Disconnect) {
	conn := s.conn
	if d != nil {
		if err := conn.w.sendLast(d); err == nil {
			if err := conn.closeFlushing(cause, time.Now().Add(finalFlushTimeout)); err != nil {
				s.log.Debug("mqtt: send DISCONNECT failed", "err", err)
			}
		}
	}
	s.connectionEnded(cause)
}

// connectionEnded tears down the current connection after its context ended.
func (s *session) connectionEnded(cause error) {
	conn := s.conn
	if conn == nil {
		return
	}
	conn.close(cause)
	// A message waiting for memory is not taken: the broker sends a QoS 1
	// or 2 one again when the session is resumed.
	s.dropStalled()
	// Packets the reader handed over before it stopped are still valid.
	s.ending = true
	s.takeBatch()
	for drained := false; !drained; {
		select {
		case b := <-s.in:
			s.batch, s.batchAt = b, 0
			s.takeBatch()
		default:
			drained = true
		}
	}
	s.ending = false
	if s.serverDisconnect != nil {
		cause = s.serverDisconnect
	}
	s.serverDisconnect = nil
	s.conn = nil
	s.c.conn.Store(nil)
	s.kaTimer.Stop()
	for _, p := range s.pings {
		if p.reply != nil {
			s.waiting = append(s.waiting, &pingReq{reply: p.reply}) // asked again once reconnected
		}
	}
	s.pings = nil
	s.deferring = false
	s.endReauth(lostError(cause))
	s.log.Info("mqtt: connection lost", "server", conn.server.url, "err", cause)
	s.noteStability(conn)
	if s.disconnecting == nil {
		s.c.counters.losses.Add(1)
	}
	s.c.emit(Event{Kind: EventConnectionLost, Server: conn.server.url, Err: cause})
	if s.cfg.Reconnect.Disable || s.disconnecting != nil {
		s.shutdown(lostError(cause))
		return
	}
	s.startRedial(s.planRedial(conn, cause))
}

// startRedial starts the goroutine that reconnects.
func (s *session) startRedial(plan redialPlan) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.dialCancel = func() { cancel(); <-done }
	go func() {
		defer close(done)
		s.c.redial(ctx, s.dialed, plan)
	}()
}

// noteStability looks at how a connection ended. When it ended with a
// publish in flight and nothing at all received from the broker after
// CONNACK, the oldest such publish is suspected: when it was in flight on
// Reconnect.RejectAfter such connections in a row it fails with
// ErrPublishRejected rather than being re-sent forever.
func (s *session) noteStability(conn *connection) {
	var oldest *publishReq
	for _, o := range s.out {
		if p, ok := o.(*publishReq); ok && p.phase != packet.PUBCOMP && (oldest == nil || p.seq < oldest.seq) {
			oldest = p
		}
	}
	if conn.r.packetsIn.Load() > 0 || oldest == nil {
		return
	}
	oldest.rejections++
	if limit := s.cfg.Reconnect.RejectAfter; limit <= 0 || oldest.rejections < limit {
		return
	}
	delete(s.out, oldest.id)
	s.sendQuota++
	s.log.Info("mqtt: publish rejected by the broker", "topic", oldest.msg.Topic, "qos", oldest.msg.QoS, "connections", oldest.rejections)
	s.finishPublish(oldest, fmt.Errorf("%w: it closed %d connections right after this %v PUBLISH to %q (%d bytes); it may not support the QoS or size",
		ErrPublishRejected, oldest.rejections, oldest.msg.QoS, oldest.msg.Topic, len(oldest.msg.Payload)))
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
	if s.conn == nil || r.ctx.Err() != nil {
		// Reconnecting, there is nothing to settle; or the caller will not
		// wait: the connection ends at once.
		s.finishDisconnect(r.ctx.Err())
		return
	}
	s.checkDisconnect()
}

// checkDisconnect finishes a graceful disconnect once no work is in flight.
func (s *session) checkDisconnect() {
	if s.disconnecting != nil && len(s.out) == 0 && len(s.waiting) == 0 && len(s.overflow) == 0 {
		s.finishDisconnect(nil)
	}
}

// finishDisconnect ends a graceful disconnect: DISCONNECT is written, within
// the caller's context and at most finalFlushTimeout (if that context has
// already ended, only if the connection takes it at once), the connection
// closes and the client stops. ctxErr is set when the caller's context
// ended before the work in flight settled; the caller then learns what was
// abandoned.
func (s *session) finishDisconnect(ctxErr error) {
	r := s.disconnecting
	s.disconnecting = nil
	var err error
	if ctxErr != nil {
		if n := len(s.out) + len(s.waiting) + len(s.overflow); n > 0 {
			err = fmt.Errorf("mqtt: disconnect: %d operations still in flight were abandoned: %w", n, ctxErr)
		}
	}
	if conn := s.conn; conn != nil {
		// Nothing may follow DISCONNECT on the connection [MQTT-3.14.4-1].
		werr := conn.w.sendLast(&packet.Disconnect{})
		if werr == nil {
			werr = conn.closeFlushing(ErrClosed, disconnectDeadline(r.ctx))
		} else {
			conn.close(ErrClosed)
		}
		if werr != nil && err == nil {
			err = fmt.Errorf("mqtt: disconnect: DISCONNECT may not have reached the broker: %w", werr)
		}
		s.conn = nil
		s.c.conn.Store(nil)
		s.log.Info("mqtt: disconnected", "server", conn.server.url)
	}
	s.shutdown(ErrClosed)
	r.settled <- err
}

// disconnectWriteGrace is how long a Disconnect whose context has ended
// lets the DISCONNECT be written: enough for a connection that takes it at
// once, too short to wait for one that does not.
const disconnectWriteGrace = 10 * time.Millisecond

// disconnectDeadline bounds writing the DISCONNECT: ctx's deadline, at most
// finalFlushTimeout away, or a moment if ctx has ended.
func disconnectDeadline(ctx context.Context) time.Time {
	now := time.Now()
	if ctx.Err() != nil {
		return now.Add(disconnectWriteGrace)
	}
	d := now.Add(finalFlushTimeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	return d
}

// shutdown stops the client for good: every waiting call completes with
// cause, receiving channels close, and every delivery goroutine exits.
func (s *session) shutdown(cause error) {
	if s.stopped {
		return
	}
	if conn := s.conn; conn != nil {
		conn.close(cause)
		s.conn = nil
		s.c.conn.Store(nil)
	}
	if s.dialCancel != nil {
		s.dialCancel()
		s.dialCancel = nil
		select {
		case r := <-s.dialed:
			if r.conn != nil {
				r.conn.nc.Close()
			}
		default:
		}
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
	for _, p := range s.overflow {
		p.fail(cause)
	}
	s.overflow = nil
	if r := s.disconnecting; r != nil {
		s.disconnecting = nil
		r.fail(cause)
	}
	for _, r := range s.reqs.stop() {
		r.fail(cause)
	}
	close(s.stopPumps)
	for _, sub := range s.subs {
		s.closeQueue(sub.q)
	}
	s.subs = nil
	s.closeQueue(s.defaultQ)
	s.c.pumps.Wait()
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.log.Error("mqtt: store: close failed", "err", err)
		}
	}
	// Nothing emits events any more: the reconnecting goroutine has ended.
	close(s.c.events)
	s.stopped = true
}
