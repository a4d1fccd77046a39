package mqtt

import (
	"context"
	"errors"
	"fmt"

	"github.com/b4e21b16/mqtt/packet"
)

// Reauthenticate runs the Authenticator's exchange again on the current
// connection (MQTT 5.0 re-authentication, section 4.12.1), for example to
// present fresh credentials before the old ones expire. It returns when the
// broker accepted (an AUTH with Success), with the broker's refusal as a
// *ReasonError (it then ends the connection with a DISCONNECT), or with an
// *AuthError when the Authenticator failed (the client then ends the
// connection with a DISCONNECT, as the exchange cannot be abandoned).
//
// The Authenticator's methods run on the calling goroutine. Other traffic
// goes on during the exchange. Only one re-authentication runs at a time;
// the client must be connected with MQTT 5.0 and Config.Authenticator set.
// If ctx ends first, Reauthenticate returns ctx's error and the exchange is
// left to the broker, which normally ends the connection when its own
// timeout passes.
func (c *Client) Reauthenticate(ctx context.Context) error {
	auth := c.cfg.Authenticator
	if auth == nil {
		return &ArgumentError{What: "Config.Authenticator", Err: errors.New("re-authentication needs an Authenticator")}
	}
	data, err := auth.Start(ctx)
	if err != nil {
		return authFailure(auth, "start", err)
	}
	r := &reauthReq{method: auth.Method(), replies: make(chan reauthReply, 1)}
	code := packet.ReAuthenticate
	for {
		if err := c.s.submit(ctx, &reauthSend{r: r, code: code, data: data}); err != nil {
			return err
		}
		var rep reauthReply
		select {
		case rep = <-r.replies:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return c.Err()
		}
		switch {
		case rep.err != nil:
			return rep.err
		case rep.code == packet.Success:
			if err := auth.Finish(ctx, rep.data); err != nil {
				err = authFailure(auth, "finish", err)
				_ = c.s.submit(ctx, &reauthAbort{r: r, err: err})
				return err
			}
			return nil
		}
		data, err = auth.Continue(ctx, rep.data)
		if err != nil {
			err = authFailure(auth, "continue", err)
			_ = c.s.submit(ctx, &reauthAbort{r: r, err: err})
			return err
		}
		code = packet.ContinueAuthentication
	}
}

// reauthReq is one re-authentication exchange, owned by the session while
// it runs (session.reauth).
type reauthReq struct {
	method  string
	replies chan reauthReply // 1-buffered: the broker waits for each answer
	conn    *connection      // the connection the exchange runs on; session goroutine only
}

type reauthReply struct {
	code packet.ReasonCode // ContinueAuthentication or Success
	data []byte
	err  error
}

// reply hands the caller the broker's answer without ever blocking the
// session: the caller has at most one answer outstanding.
func (r *reauthReq) reply(rep reauthReply) {
	select {
	case r.replies <- rep:
	default:
	}
}

// reauthSend sends one AUTH packet of an exchange.
type reauthSend struct {
	r    *reauthReq
	code packet.ReasonCode
	data []byte
}

func (m *reauthSend) fail(err error) { m.r.reply(reauthReply{err: err}) }

func (m *reauthSend) handle(s *session) {
	switch {
	case s.stopped || s.disconnecting != nil:
		m.fail(ErrClosed)
		return
	case s.conn == nil:
		m.fail(fmt.Errorf("%w: not connected; the next connection authenticates anew", ErrConnectionLost))
		return
	case s.conn.version != packet.V5:
		m.fail(&ArgumentError{What: "protocol version", Value: s.conn.version.String(), Err: errors.New("re-authentication needs MQTT 5.0")})
		return
	case s.reauth != nil && s.reauth != m.r:
		m.fail(errors.New("mqtt: a re-authentication is already running"))
		return
	case m.code == packet.ContinueAuthentication && s.reauth != m.r:
		m.fail(fmt.Errorf("%w: the re-authentication ended", ErrConnectionLost))
		return
	}
	s.reauth = m.r
	m.r.conn = s.conn
	a := &packet.Auth{ReasonCode: m.code}
	a.Props.AuthMethod = m.r.method
	a.Props.Set(packet.PropAuthMethod)
	if m.data != nil {
		a.Props.AuthData = m.data
		a.Props.Set(packet.PropAuthData)
	}
	s.send(a)
}

// reauthAbort ends the connection after the Authenticator failed, also
// when it refused the data of the broker's final AUTH (Success), which
// already ended the exchange for the session: the client does not go on
// with a broker that did not prove itself. A connection that has ended
// since is left alone.
type reauthAbort struct {
	r   *reauthReq
	err error
}

func (m *reauthAbort) fail(error) {}

func (m *reauthAbort) handle(s *session) {
	if s.conn == nil || s.conn != m.r.conn {
		return
	}
	if s.reauth == m.r {
		s.reauth = nil
	}
	s.protocolFailCode(packet.UnspecifiedError, m.err)
}

// authReceived handles an AUTH packet after CONNACK, which may only answer
// a re-authentication the client started [MQTT-4.12.1-1].
func (s *session) authReceived(a *packet.Auth) {
	r := s.reauth
	switch {
	case r == nil:
		s.protocolFail(fmt.Errorf("%w: AUTH (%v) when no re-authentication was started", ErrProtocolViolation, a.ReasonCode))
	case a.Props.AuthMethod != r.method:
		// [MQTT-4.12.0-5]: the method stays the same throughout.
		s.protocolFail(fmt.Errorf("%w: AUTH with method %q during a %q re-authentication [MQTT-4.12.0-5]", ErrProtocolViolation, a.Props.AuthMethod, r.method))
	case a.ReasonCode == packet.ContinueAuthentication:
		r.reply(reauthReply{code: a.ReasonCode, data: a.Props.AuthData})
	case a.ReasonCode == packet.Success:
		s.reauth = nil
		r.reply(reauthReply{code: a.ReasonCode, data: a.Props.AuthData})
	default:
		s.protocolFail(fmt.Errorf("%w: AUTH with reason %v from the broker", ErrProtocolViolation, a.ReasonCode))
	}
}

// endReauth fails a re-authentication in progress when its connection ends.
func (s *session) endReauth(cause error) {
	if r := s.reauth; r != nil {
		s.reauth = nil
		r.reply(reauthReply{err: cause})
	}
}
