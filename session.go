package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
type outstanding interface {
	fail(err error)
	// seqNo orders outstanding packets for re-sending after a reconnect.
	seqNo() uint64
}

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
	stale       bool   // the broker lost the session: never acknowledge
	manualAcked bool   // Message.Ack was called (ManualAck)
	gen         uint32 // incremented each time the record is reused
}

type pingWait struct {
	sent  time.Time
	reply chan time.Duration // nil for keepalive pings
}

// inboundBuffer is how many decoded packets a reader may hand over ahead of
// the session. The reader decodes into a ring of inboundSlots records that
// it reuses, which is safe because a record is handed over only after the
// session took the one before it from the channel, and so has finished the
// one before that (see reader.run).
const inboundBuffer = 4

// Pause reasons: the session stops taking packets from the reader.
const (
	pauseStalled  = 1 << iota // a QoS 0 message waits for room (OverflowPolicy Block)
	pauseInflight             // ReceiveMaximum unacknowledged messages are held (3.1.1)
)

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
	in        chan *inbound
	stopPumps chan struct{}

	conn *connection // nil when there is no connection

	// Outbound state.
	out         map[uint16]outstanding // by packet ID
	lastID      uint16
	seq         uint64     // numbers publishes and control packets in the order they were made
	sendQuota   int        // the broker's Receive Maximum minus QoS 1/2 publishes in flight
	resend      []*Pending // in-flight publishes to re-send after a reconnect, waiting for quota
	waiting     []request  // work waiting for a connection, a packet ID or send quota, in order
	queuedMsgs  int        // publishes in waiting (Config.Queue.MaxMessages)
	queuedBytes int        // their payload bytes (Config.Queue.MaxBytes)
	overflow    []*Pending // publishes waiting for room in the queue (QueueWait)
	store       Store      // nil: state lives only in this session
	results     resultQueue

	// Reconnection.
	dialed     chan dialResult // from the redial goroutine
	dialCancel func()          // stops the redial goroutine; nil when none runs
	unstable   int             // connections in a row that ended before the broker sent anything
	redirectTo *server         // where a broker's DISCONNECT sent the client (Config.FollowRedirects)

	// Inbound state.
	inByID   map[uint16]*inboundRef
	freeRefs []*inboundRef     // finished records kept for reuse
	ackOrder fifo[*inboundRef] // unacknowledged messages in arrival order
	pausedBy int
	stalled  *stalledDelivery

	subs      []*Subscription
	defaultQ  *deliveryQueue
	lastSubID uint32

	pings     []pingWait
	inAliases []string // inbound topic aliases of the current connection, by alias
	reauth    *reauthReq

	pingSeen     uint64 // reader packet count when the oldest ping was last found unanswered
	pingDeadline time.Time
	kaTimer      *time.Timer
	lastRTT      time.Duration

	ackScratch packet.Ack     // reused to send acknowledgements without allocating
	pubScratch packet.Publish // reused to encode publishes (see sendPublish)
	ackIn      packet.Ack     // the acknowledgement being handled

	resubscribing  int   // resubscriptions awaiting SUBACK after a session loss
	resubscribeErr error // refusals among them

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
		reqs:      newRequestQueue(),
		dialed:    make(chan dialResult, 1),
		store:     c.cfg.Store,
		in:        make(chan *inbound, inboundBuffer),
		stopPumps: make(chan struct{}),
		out:       make(map[uint16]outstanding),
		inByID:    make(map[uint16]*inboundRef),
		defaultQ:  newDeliveryQueue(c.cfg.MessageBuffer),
	}
	s.results.init()
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
	s.c.responseInfo.Store(&conn.responseInfo)
	s.c.sessionPresent.Store(conn.sessionPresent)
	s.c.connectedOnce.Store(true)
	s.c.counters.connects.Add(1)
	if conn.assignedID != "" {
		id := conn.assignedID
		s.c.clientID.Store(&id)
	}
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
		case <-s.reqs.kick:
			s.handleRequests()
		case ev := <-in:
			s.handleInbound(ev)
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
		s.publishGauges()
	}
}

// drainInbound handles the packets the reader has already queued, without
// going through the full select for each, while the session is free to.
func (s *session) drainInbound() {
	for range inboundBuffer {
		if s.pausedBy != 0 || s.conn == nil || s.stopped {
			return
		}
		select {
		case ev := <-s.in:
			s.handleInbound(ev)
		default:
			return
		}
	}
}

// redialed takes the outcome of the reconnecting goroutine. It is kept out
// of run so that run's stack frame, which an idle client keeps, stays small.
//
//go:noinline
func (s *session) redialed(r dialResult) {
	s.dialCancel()
	s.dialCancel = nil
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
	s.ackScratch = packet.Ack{PacketType: t, PacketID: id, ReasonCode: code}
	s.send(&s.ackScratch)
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
				s.handleInbound(ev)
			}
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
	s.pausedBy &^= pauseInflight
	s.endReauth(lostError(cause))
	s.log.Info("mqtt: connection lost", "server", conn.server.url, "err", cause)
	s.noteStability(conn)
	s.c.emit(Event{Kind: EventConnectionLost, Server: conn.server.url, Err: cause})
	if s.cfg.Reconnect.Disable || s.disconnecting != nil {
		s.shutdown(lostError(cause))
		return
	}
	s.startRedial()
}

// startRedial starts the goroutine that reconnects.
func (s *session) startRedial() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.dialCancel = func() { cancel(); <-done }
	unstable, first := s.unstable, s.redirectTo
	s.redirectTo = nil
	go func() {
		defer close(done)
		s.c.redial(ctx, s.dialed, unstable, first)
	}()
}

// noteStability looks at how a connection ended. One that ended with a
// publish in flight and nothing at all received from the broker after
// CONNACK counts as unstable, and the oldest such publish is suspected: when
// it was in flight on Reconnect.RejectAfter unstable connections in a row it
// fails with ErrPublishRejected rather than being re-sent forever.
func (s *session) noteStability(conn *connection) {
	var oldest *Pending
	for _, o := range s.out {
		if p, ok := o.(*Pending); ok && p.phase != packet.PUBCOMP && (oldest == nil || p.seq < oldest.seq) {
			oldest = p
		}
	}
	if conn.r.packetsIn.Load() > 0 || oldest == nil {
		s.unstable = 0
		return
	}
	s.unstable++
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
	if s.conn == nil {
		// Reconnecting: there is no connection to settle anything on.
		s.finishDisconnect(nil)
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
	s.results.close()
	s.c.pumps.Wait()
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.log.Error("mqtt: store: close failed", "err", err)
		}
	}
	s.stopped = true
}
