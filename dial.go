package mqtt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/b4e21b16/mqtt/packet"
	"golang.org/x/sync/errgroup"
)

// connection is one network connection and the reader and writer goroutines
// serving it. Its negotiated fields are set during the CONNECT/CONNACK
// exchange and never change afterwards, so any goroutine may read them.
type connection struct {
	nc      net.Conn
	server  server
	version packet.Version
	r       *reader
	w       *writer

	ctx    context.Context // ends when the connection ends; context.Cause says why
	cancel context.CancelCauseFunc
	g      errgroup.Group

	sessionPresent  bool
	assignedID      string
	keepAlive       time.Duration // as negotiated (Server Keep Alive wins)
	maxPacket       int           // the broker's Maximum Packet Size, or packet.MaxPacketSize
	receiveMax      int           // the broker's Receive Maximum (65535 when not announced)
	maxQoS          QoS
	retainAvailable bool
	subIDs          bool // the broker accepts Subscription Identifiers (5.0)
	wildcardSubs    bool // the broker accepts wildcard topic filters (5.0)
	sharedSubs      bool // the broker accepts shared subscriptions (5.0)
	aliasMax        int  // the broker's Topic Alias Maximum: aliases the client may use (5.0)
	responseInfo    string
	problemInfo     bool // the broker may send Reason Strings and User Properties on any packet
	started         time.Time
}

// start runs the reader and writer, tied together: when one fails, the
// connection's context ends and both stop.
func (conn *connection) start(in chan<- *inboundBatch) {
	ctx, cancel := context.WithCancelCause(context.Background())
	conn.ctx, conn.cancel = ctx, cancel
	conn.r.out = in
	conn.w.lastWrite.Store(time.Now().UnixNano())
	conn.g.Go(func() error { return conn.ended(conn.r.run(ctx)) })
	conn.g.Go(func() error { return conn.ended(conn.w.run(ctx)) })
}

// ended ends the connection with the error of its reader or writer, the
// first one being the cause. (One context for both, rather than
// errgroup.WithContext's derived one, saves an idle connection a context
// and its parent's table of children.)
func (conn *connection) ended(err error) error {
	if err != nil {
		conn.cancel(err)
	}
	return err
}

// close ends the connection with cause, without writing what is queued,
// waits for its goroutines and closes the network connection. It may be
// called again.
func (conn *connection) close(cause error) {
	// The reader's blocked read and a write blocked on a broker that
	// stopped reading are interrupted through the deadlines.
	_ = conn.nc.SetDeadline(time.Unix(1, 0))
	conn.cancel(cause)
	_ = conn.g.Wait()
	_ = conn.nc.Close()
}

// closeFlushing ends the connection with cause after writing what is queued
// (a DISCONNECT), taking at most until deadline for it, waits for its
// goroutines and closes the network connection. It returns the error of a
// write that failed, if any.
func (conn *connection) closeFlushing(cause error, deadline time.Time) error {
	conn.w.flushOnClose.Store(true)
	_ = conn.nc.SetWriteDeadline(deadline)
	_ = conn.nc.SetReadDeadline(time.Unix(1, 0))
	conn.cancel(cause)
	_ = conn.g.Wait()
	err := conn.w.writeErr
	if err == nil {
		conn.linger(deadline)
	}
	_ = conn.nc.Close()
	return err
}

// lingerTimeout bounds how long the client waits, after its DISCONNECT,
// for the broker to close its side.
const lingerTimeout = time.Second

// linger half-closes the connection after the last packet and reads and
// discards what the broker still sends until it closes its side, deadline
// passes or lingerTimeout does. Closing a TCP connection with received data
// unread makes the kernel reset it, and a broker may then lose the packets
// just written: mosquitto 2.0 loses the PUBACKs before a DISCONNECT while it
// is sending (and so redelivers those messages). Connections that cannot
// half-close (in-memory pipes, or a Transport's connection without
// CloseWrite) are closed at once.
func (conn *connection) linger(deadline time.Time) {
	cw, ok := conn.nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	if d := time.Now().Add(lingerTimeout); d.Before(deadline) {
		deadline = d
	}
	_ = conn.nc.SetReadDeadline(deadline)
	var discard [512]byte
	for range 1 << 16 { // at most 32 MiB: a broker streaming without end is cut off
		if _, err := conn.nc.Read(discard[:]); err != nil {
			return
		}
	}
}

// checkOutbound applies the limits the broker announced in CONNACK to a
// publish about to be sent [MQTT-3.2.2-11] [MQTT-3.2.2-14] [MQTT-3.1.2-24].
func (conn *connection) checkOutbound(m *Message) error {
	if m.QoS > conn.maxQoS {
		return &ArgumentError{What: "QoS", Value: fmt.Sprint(byte(m.QoS)),
			Err: fmt.Errorf("the broker's Maximum QoS is %d", conn.maxQoS)}
	}
	if m.Retain && !conn.retainAvailable {
		return &ArgumentError{What: "retain flag", Value: m.Topic, Err: errors.New("the broker does not support retained messages")}
	}
	if conn.maxPacket < packet.MaxPacketSize {
		var p packet.Publish
		m.toPublish(&p)
		if n := p.Size(conn.version); n > conn.maxPacket {
			return &ArgumentError{What: "payload", Value: fmt.Sprintf("%d bytes", len(m.Payload)),
				Err: fmt.Errorf("%w: the packet would be %d bytes, the broker accepts at most %d", packet.ErrTooLarge, n, conn.maxPacket)}
		}
	}
	return nil
}

// maxRedirects bounds the chain of redirections one dial follows.
const maxRedirects = 3

// dial connects to srv, following the broker's redirections when
// Config.FollowRedirects is set.
func (c *Client) dial(ctx context.Context, srv server) (*connection, error) {
	for hop := 0; ; hop++ {
		conn, err := c.dialVersion(ctx, srv)
		ce, ok := errors.AsType[*ConnectError](err)
		if !ok || hop == maxRedirects {
			return conn, err
		}
		next, ok := c.redirect(srv, ce.Code, ce.ServerReference)
		if !ok {
			return conn, err
		}
		srv = next
	}
}

// redirect returns the server a refusal or DISCONNECT with code and
// reference sends the client to, if it is a redirection the client follows.
func (c *Client) redirect(from server, code ReasonCode, reference string) (server, bool) {
	if !c.cfg.FollowRedirects || (code != packet.UseAnotherServer && code != packet.ServerMoved) || reference == "" {
		return server{}, false
	}
	to, err := resolveReference(from, reference, c.cfg.Transports)
	if err != nil {
		c.log.Info("mqtt: cannot follow the broker's redirection", "server", from.url, "reference", redactURL(reference), "err", err)
		return server{}, false
	}
	c.log.Info("mqtt: broker redirects the client", "server", from.url, "to", to.url, "reason", code.String())
	return to, true
}

// dialVersion connects to srv, trying MQTT 5.0 first and then 3.1.1 when
// the version is not pinned and the broker refuses 5.0.
func (c *Client) dialVersion(ctx context.Context, srv server) (*connection, error) {
	switch c.cfg.Version {
	case Version311:
		return c.handshake(ctx, srv, packet.V311)
	case Version5:
		return c.handshake(ctx, srv, packet.V5)
	}
	conn, err := c.handshake(ctx, srv, packet.V5)
	var ce *ConnectError
	switch {
	case err == nil:
	case errors.As(err, &ce) && (ce.Code == packet.UnsupportedProtocolVersion || ce.Code == packet.RefusedProtocolVersion):
		c.log.Info("mqtt: broker refused MQTT 5.0, trying 3.1.1", "server", srv.url)
		return c.handshake(ctx, srv, packet.V311)
	case errors.Is(err, errClosedBeforeConnack) && ctx.Err() == nil:
		// Some 3.1.1-only brokers (RabbitMQ before 3.13) close the
		// connection on a 5.0 CONNECT instead of refusing it.
		c.log.Info("mqtt: broker closed the connection on an MQTT 5.0 CONNECT, trying 3.1.1", "server", srv.url)
		if conn311, err311 := c.handshake(ctx, srv, packet.V311); err311 == nil {
			return conn311, nil
		}
	}
	return conn, err
}

// errClosedBeforeConnack means the broker closed the connection instead of
// answering CONNECT.
var errClosedBeforeConnack = errors.New("broker closed the connection")

// handshake dials srv and exchanges CONNECT and CONNACK with protocol
// version v, within ctx and Config.ConnectTimeout.
func (c *Client) handshake(ctx context.Context, srv server, v packet.Version) (*connection, error) {
	cfg := &c.cfg
	if v == packet.V311 && cfg.Password != nil && cfg.Username == "" {
		return nil, &ArgumentError{What: "Password", Value: "(hidden)",
			Err: errors.New("MQTT 3.1.1 allows a password only with a user name [MQTT-3.1.2-22]")}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	nc, err := dialTransport(ctx, cfg, srv)
	if err != nil {
		return nil, errorf("mqtt: dial %s: %w", srv.url, err)
	}
	// Ending ctx interrupts the exchange by expiring the connection's
	// deadline: a select around a blocked read would not.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	conn, err := c.exchange(ctx, nc, srv, v)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			return nil, errorf("mqtt: connect to %s: %w (%w)", srv.url, context.Cause(ctx), err)
		}
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	return conn, nil
}

func (c *Client) exchange(ctx context.Context, nc net.Conn, srv server, v packet.Version) (*connection, error) {
	cp := c.connectPacket(v)
	auth := c.cfg.Authenticator
	if v != packet.V5 {
		auth = nil // enhanced authentication is MQTT 5.0 only
	}
	if auth != nil {
		if err := startAuth(ctx, auth, &cp.Props); err != nil {
			return nil, err
		}
	}
	buf, err := cp.Append(nil, v)
	if err != nil {
		return nil, fmt.Errorf("mqtt: encode CONNECT: %w", err)
	}
	if _, err := nc.Write(buf); err != nil {
		return nil, fmt.Errorf("mqtt: send CONNECT to %s: %w", srv.url, err)
	}
	br := newConnReader(nc)
	ack, err := c.awaitConnack(ctx, nc, br, srv, v, auth)
	if err != nil {
		return nil, err
	}
	if err := checkConnack(ctx, ack, srv, v, auth); err != nil {
		return nil, err
	}
	return c.newConnection(nc, br, srv, v, ack), nil
}

// connectPacket builds the CONNECT for protocol version v. A reconnection
// resumes the session the first connection started, under the identifier
// the broker may have assigned.
func (c *Client) connectPacket(v packet.Version) *packet.Connect {
	cfg := &c.cfg
	cp := &packet.Connect{
		Version:    v,
		CleanStart: cfg.CleanStart && !c.connectedOnce.Load(),
		KeepAlive:  uint16(cfg.KeepAlive / time.Second),
		ClientID:   c.sessionClientID(),
	}
	if cfg.Username != "" {
		cp.UsernameFlag, cp.Username = true, cfg.Username
	}
	if cfg.Password != nil {
		cp.PasswordFlag, cp.Password = true, cfg.Password
	}
	if w := cfg.Will; w != nil {
		cp.Will = &packet.Will{Topic: w.Topic, Payload: w.Payload, QoS: byte(w.QoS), Retain: w.Retain}
		if v == packet.V5 {
			w.appendProps(&cp.Will.Props)
			if cfg.WillDelay > 0 {
				cp.Will.Props.WillDelay = uint32(cfg.WillDelay / time.Second)
				cp.Will.Props.Set(packet.PropWillDelay)
			}
		}
	}
	if v == packet.V5 {
		cfg.connectProps(&cp.Props)
	}
	return cp
}

// connectProps sets the MQTT 5.0 CONNECT properties that announce the
// client's session expiry, limits and requests.
func (cfg *Config) connectProps(pr *packet.Properties) {
	if cfg.SessionExpiry > 0 {
		pr.SessionExpiry = uint32(min(cfg.SessionExpiry/time.Second, 0xffffffff))
		pr.Set(packet.PropSessionExpiry)
	}
	pr.ReceiveMaximum = cfg.ReceiveMaximum
	pr.Set(packet.PropReceiveMaximum)
	if cfg.MaxPacketSize < packet.MaxPacketSize {
		pr.MaximumPacketSize = uint32(cfg.MaxPacketSize)
		pr.Set(packet.PropMaximumPacketSize)
	}
	if cfg.TopicAliasMaximum > 0 {
		pr.TopicAliasMaximum = uint16(cfg.TopicAliasMaximum)
		pr.Set(packet.PropTopicAliasMaximum)
	}
	if cfg.RequestResponseInfo {
		pr.RequestResponseInfo = 1
		pr.Set(packet.PropRequestResponseInfo)
	}
	if cfg.NoProblemInfo {
		pr.RequestProblemInfo = 0
		pr.Set(packet.PropRequestProblemInfo)
	}
}

// startAuth begins enhanced authentication: the method and first data go
// into the CONNECT's properties.
func startAuth(ctx context.Context, auth Authenticator, pr *packet.Properties) error {
	data, err := auth.Start(ctx)
	if err != nil {
		return authFailure(auth, "start", err)
	}
	pr.AuthMethod = auth.Method()
	pr.Set(packet.PropAuthMethod)
	if data != nil {
		pr.AuthData = data
		pr.Set(packet.PropAuthData)
	}
	return nil
}

// awaitConnack reads until CONNACK, answering the broker's AUTH challenges
// with auth (nil: no enhanced authentication) on the way.
func (c *Client) awaitConnack(ctx context.Context, nc net.Conn, br *connReader, srv server, v packet.Version, auth Authenticator) (*packet.Connack, error) {
	for {
		pk, err := c.readHandshake(br, srv, v)
		if err != nil {
			return nil, err
		}
		a, ok := pk.(*packet.Auth)
		if !ok {
			return pk.(*packet.Connack), nil
		}
		// [MQTT-4.12.0-2] [MQTT-4.12.0-3]: AUTH before CONNACK continues the
		// exchange the client started, under the same method.
		if auth == nil || a.ReasonCode != packet.ContinueAuthentication || a.Props.AuthMethod != auth.Method() {
			return nil, errorf("mqtt: %w: %s sent AUTH (%v, method %q) during an authentication it did not expect [MQTT-4.12.0-2]",
				ErrProtocolViolation, srv.url, a.ReasonCode, a.Props.AuthMethod)
		}
		data, err := auth.Continue(ctx, a.Props.AuthData)
		if err != nil {
			return nil, authFailure(auth, "continue", err)
		}
		if err := writeAuth(nc, packet.ContinueAuthentication, auth.Method(), data); err != nil {
			return nil, fmt.Errorf("mqtt: send AUTH to %s: %w", srv.url, err)
		}
	}
}

// checkConnack turns a refusing CONNACK into a *ConnectError and, with
// enhanced authentication, has auth check the broker's final data.
func checkConnack(ctx context.Context, ack *packet.Connack, srv server, v packet.Version, auth Authenticator) error {
	if ack.ReasonCode != packet.Success {
		return &ConnectError{Server: srv.url, Version: v.String(), Code: ack.ReasonCode, Reason: ack.Props.ReasonString,
			ServerReference: ack.Props.ServerReference}
	}
	if auth == nil {
		return nil
	}
	if ack.Props.AuthMethod != auth.Method() {
		return &AuthError{Method: auth.Method(), Step: "finish",
			Err: errorf("%w: CONNACK names authentication method %q", ErrProtocolViolation, ack.Props.AuthMethod)}
	}
	if err := auth.Finish(ctx, ack.Props.AuthData); err != nil {
		return authFailure(auth, "finish", err)
	}
	return nil
}

// newConnection makes the connection an accepted CONNACK established, with
// its reader and writer (not started yet).
func (c *Client) newConnection(nc net.Conn, br *connReader, srv server, v packet.Version, ack *packet.Connack) *connection {
	cfg := &c.cfg
	conn := &connection{
		nc:              nc,
		server:          srv,
		version:         v,
		sessionPresent:  ack.SessionPresent,
		keepAlive:       cfg.KeepAlive,
		maxPacket:       packet.MaxPacketSize,
		receiveMax:      65535,
		maxQoS:          ExactlyOnce,
		retainAvailable: true,
		wildcardSubs:    true,
		sharedSubs:      true,
		problemInfo:     !cfg.NoProblemInfo,
		started:         time.Now(),
	}
	if v == packet.V5 {
		conn.negotiate(&ack.Props, cfg)
	}
	conn.r = &reader{br: br, version: v, maxSize: cfg.MaxPacketSize, bigHandled: make(chan struct{}, 1),
		dropUnfit: cfg.QoS0Overflow == DropNewest && cfg.TopicAliasMaximum == 0, mem: c.mem, counters: &c.counters}
	conn.w = newWriter(nc, v)
	if !cfg.DisableTopicAliases && conn.aliasMax > 0 {
		conn.w.aliases = newTopicAliases(conn.aliasMax, conn.maxPacket)
	}
	return conn
}

// negotiate applies what a 5.0 CONNACK announces.
func (conn *connection) negotiate(pr *packet.Properties, cfg *Config) {
	if pr.Has(packet.PropAssignedClientID) {
		conn.assignedID = pr.AssignedClientID
	}
	if pr.Has(packet.PropServerKeepAlive) {
		conn.keepAlive = time.Duration(pr.ServerKeepAlive) * time.Second
	}
	if pr.Has(packet.PropMaximumPacketSize) {
		conn.maxPacket = int(pr.MaximumPacketSize)
	}
	if pr.Has(packet.PropReceiveMaximum) {
		conn.receiveMax = int(pr.ReceiveMaximum)
	}
	if pr.Has(packet.PropMaximumQoS) {
		conn.maxQoS = QoS(pr.MaximumQoS)
	}
	if pr.Has(packet.PropRetainAvailable) {
		conn.retainAvailable = pr.RetainAvailable == 1
	}
	conn.subIDs = !pr.Has(packet.PropSubIDAvailable) || pr.SubIDAvail == 1
	conn.wildcardSubs = !pr.Has(packet.PropWildcardSubAvailable) || pr.WildcardSubAvail == 1
	conn.sharedSubs = !pr.Has(packet.PropSharedSubAvailable) || pr.SharedSubAvail == 1
	if pr.Has(packet.PropTopicAliasMaximum) {
		conn.aliasMax = int(pr.TopicAliasMaximum)
	}
	if cfg.RequestResponseInfo && pr.Has(packet.PropResponseInfo) {
		conn.responseInfo = pr.ResponseInfo
	}
}

// readHandshake reads one packet of the connect exchange: CONNACK, or AUTH.
func (c *Client) readHandshake(br *connReader, srv server, v packet.Version) (packet.Packet, error) {
	h, err := packet.ReadHeader(br, c.cfg.MaxPacketSize)
	if err != nil {
		if _, ok := errors.AsType[*packet.Error](err); ok {
			return nil, errorf("mqtt: %w: %s instead of CONNACK: %w", ErrProtocolViolation, srv.url, err)
		}
		return nil, fmt.Errorf("mqtt: waiting for CONNACK from %s: %w", srv.url, connackReadError(err))
	}
	if h.Type != packet.CONNACK && (h.Type != packet.AUTH || v != packet.V5) {
		return nil, errorf("mqtt: %w: %s sent %v before CONNACK [MQTT-3.2.0-1]", ErrProtocolViolation, srv.url, h.Type)
	}
	body := make([]byte, h.Remaining)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, fmt.Errorf("mqtt: reading CONNACK from %s: %w", srv.url, connackReadError(err))
	}
	pk, err := packet.Decode(h, body, v)
	if err != nil {
		return nil, errorf("mqtt: %w: %s: %w", ErrProtocolViolation, srv.url, err)
	}
	return pk, nil
}

// writeAuth writes an AUTH packet directly, during the connect exchange.
func writeAuth(w io.Writer, code ReasonCode, method string, data []byte) error {
	a := packet.Auth{ReasonCode: code}
	a.Props.AuthMethod = method
	a.Props.Set(packet.PropAuthMethod)
	if data != nil {
		a.Props.AuthData = data
		a.Props.Set(packet.PropAuthData)
	}
	buf, err := a.Append(nil, packet.V5)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}

func connackReadError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		return errClosedBeforeConnack
	}
	return err
}
