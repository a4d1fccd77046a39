package mqtt

import (
	"errors"
	"fmt"
	"strings"

	"github.com/b4e21b16/mqtt/packet"
)

// Every sentinel error and error type of the package is here. Errors the
// client returns wrap the sentinels: test with errors.Is, and for the types
// with errors.As.

// Sentinel errors.
var (
	// ErrClosed is returned by calls on a client that was closed or
	// disconnected by the application.
	ErrClosed = errors.New("mqtt: client closed")
	// ErrConnectionLost means the network connection ended without the
	// application asking for it; the error wraps the cause.
	ErrConnectionLost = errors.New("mqtt: connection lost")
	// ErrKeepAliveTimeout means the broker did not answer a PINGREQ in time.
	ErrKeepAliveTimeout = errors.New("mqtt: keepalive timeout: no PINGRESP from the broker")
	// ErrInvalidArgument is wrapped by every *ArgumentError.
	ErrInvalidArgument = errors.New("mqtt: invalid argument")
	// ErrProtocolViolation means the broker broke the protocol: a malformed
	// or unexpected packet, or an acknowledgement for an unknown packet ID.
	ErrProtocolViolation = errors.New("mqtt: protocol violation by the broker")
	// ErrNoServers means Config.Servers is empty.
	ErrNoServers = errors.New("mqtt: no servers configured")
	// ErrOverflow means the messages held for the application reached
	// Config.MemoryLimit while a call waited for the broker, so received
	// QoS 1 or 2 messages were left unacknowledged for the broker to send
	// again; see EventOverflow.
	ErrOverflow = errors.New("mqtt: memory limit reached")
	// ErrPublishRejected means the broker closed the connection each time
	// a particular publish was sent, before acknowledging anything (see
	// ReconnectConfig.RejectAfter).
	ErrPublishRejected = errors.New("mqtt: the broker closes the connection whenever this message is sent")
	// ErrQueueFull means a publish found no room, in the offline queue
	// (Config.Queue) or in the memory the client may hold for publishes
	// (Config.MemoryLimit), and Config.Queue.Full is QueueFail (durable
	// publishes never wait for room).
	ErrQueueFull = errors.New("mqtt: no room to queue the publish")
	// ErrStoreCorrupt is matched by the error that Store.Load returns when
	// part of the stored data was damaged. The error says what was damaged
	// and where; the state returned with it is what could be recovered.
	ErrStoreCorrupt = errors.New("mqtt: store: damaged record")
	// ErrAuthFailed is wrapped by every *AuthError: an enhanced
	// authentication exchange failed on the client's side or the server
	// reported a failure.
	ErrAuthFailed = errors.New("mqtt: authentication failed")
)

// errCaughtUp ends a connection on which messages were deferred (see
// ErrOverflow) once the application has caught up; the client reconnects
// at once.
var errCaughtUp = fmt.Errorf("%w: the application caught up; reconnecting to receive the deferred messages", ErrOverflow)

// ArgumentError reports a caller's argument that the client refused before
// sending anything: what it was, the offending value and why.
type ArgumentError struct {
	What  string // "topic", "topic filter", "QoS", "payload", ...
	Value string // the offending value, shortened
	Err   error  // why (for topics, one of the packet.Err* topic errors)
}

// Error says what was refused and why.
func (e *ArgumentError) Error() string {
	v := e.Value
	if len(v) > 64 {
		v = v[:64] + "..."
	}
	return fmt.Sprintf("mqtt: invalid %s %q: %s", e.What, v, unprefixed{e.Err})
}

// Unwrap returns ErrInvalidArgument and the cause.
func (e *ArgumentError) Unwrap() []error { return []error{ErrInvalidArgument, e.Err} }

// ConnectError reports a CONNACK that refused the connection.
type ConnectError struct {
	Server  string     // the server URL that refused
	Version string     // protocol version of the attempt, "3.1.1" or "5.0"
	Code    ReasonCode // CONNACK reason code (3.1.1: return code)
	Reason  string     // MQTT 5.0 Reason String, if the broker sent one
	// ServerReference is the MQTT 5.0 Server Reference the broker sent with
	// a redirection (Use another server, Server moved); see
	// Config.FollowRedirects.
	ServerReference string
}

// Error names the server, the protocol version and the refusal.
func (e *ConnectError) Error() string {
	v := packet.V5
	// A 3.1.1 broker refusing a 5.0 CONNECT answers with a 3.1.1 return
	// code (1 to 5), which 5.0 does not define for CONNACK.
	if e.Version == "3.1.1" || (e.Code > 0 && e.Code < 0x80) {
		v = packet.V311
	}
	s := fmt.Sprintf("mqtt: broker %s refused the MQTT %s connection: %s", e.Server, e.Version, e.Code.ConnackString(v))
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// ReasonError reports a packet from the broker with a failure reason code
// (MQTT 5.0): a PUBACK, PUBREC or PUBCOMP failing a QoS 1 or 2 publish,
// which Publish returns and a Pending completes with, or a DISCONNECT,
// which is the cause of a lost connection (EventConnectionLost.Err). A
// refused SUBSCRIBE or UNSUBSCRIBE gives a *SubscribeError, and a refused
// CONNECT a *ConnectError.
type ReasonError struct {
	Packet string     // "PUBACK", "PUBREC", "PUBCOMP" or "DISCONNECT"
	Code   ReasonCode // the reason code (0x80 and above)
	Reason string     // the Reason String, if the broker sent one
	// ServerReference is the Server Reference of a DISCONNECT that
	// redirects the client (Use another server, Server moved).
	ServerReference string
}

// Error names the packet and its reason code and string.
func (e *ReasonError) Error() string {
	s := fmt.Sprintf("mqtt: broker answered %s with %v", e.Packet, e.Code)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// FilterResult is the broker's answer for one topic filter of a SUBSCRIBE or
// UNSUBSCRIBE.
type FilterResult struct {
	Filter string
	Code   ReasonCode // granted QoS (0, 1, 2) or a failure code (0x80 and above)
}

// SubscribeError reports topic filters that the broker refused. Filters not
// listed were granted; the subscription still delivers for them.
type SubscribeError struct {
	Unsubscribe bool // the refusal answered an UNSUBSCRIBE
	Refused     []FilterResult
	Reason      string // the SUBACK Reason String, if any
}

// Error lists the refused filters with their reason codes.
func (e *SubscribeError) Error() string {
	parts := make([]string, len(e.Refused))
	for i, r := range e.Refused {
		parts[i] = fmt.Sprintf("%q: %v", r.Filter, r.Code)
	}
	op := "subscription to "
	if e.Unsubscribe {
		op = "unsubscribing from "
	}
	s := "mqtt: broker refused " + op + strings.Join(parts, ", ")
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// lostError wraps a connection's end cause with ErrConnectionLost unless it
// already says the client was closed.
func lostError(cause error) error {
	if cause == nil || errors.Is(cause, ErrClosed) || errors.Is(cause, ErrConnectionLost) {
		return cause
	}
	return errorf("mqtt: %w: %w", ErrConnectionLost, cause)
}

// errorPrefix starts the text of every error of this package, once.
const errorPrefix = "mqtt: "

// errorf is fmt.Errorf for an error of this package that wraps others of
// this package: the text of each error argument goes in without its own
// "mqtt: " prefix, so the result, whose format supplies the prefix, has it
// once ("mqtt: connection lost: keepalive timeout", not "mqtt: connection
// lost: mqtt: keepalive timeout"). The wrapped errors stay in the chain
// unchanged for errors.Is and errors.As.
func errorf(format string, args ...any) error {
	for i, a := range args {
		if err, ok := a.(error); ok && strings.HasPrefix(err.Error(), errorPrefix) {
			args[i] = unprefixed{err}
		}
	}
	return fmt.Errorf(format, args...)
}

// unprefixed is an error whose text leaves out the "mqtt: " prefix of the
// error it wraps.
type unprefixed struct{ err error }

func (u unprefixed) Error() string {
	if u.err == nil {
		return "<nil>"
	}
	return strings.TrimPrefix(u.err.Error(), errorPrefix)
}

func (u unprefixed) Unwrap() error { return u.err }

// storeError gives an error from the Store the context "mqtt: store: ",
// unless its text already starts so (the memory store's and ErrStoreCorrupt's do).
func storeError(err error) error {
	if strings.HasPrefix(err.Error(), errorPrefix+"store: ") {
		return err
	}
	return errorf("mqtt: store: %w", err)
}

// AuthError reports a failed enhanced authentication exchange: an
// Authenticator refused the server's data, or the server reported a
// failure. The client wraps an error from an Authenticator in an AuthError
// naming the Step; an Authenticator may return AuthError values itself,
// saying why in Reason. An AuthError never holds the password or anything
// derived from it.
type AuthError struct {
	Method string // the Authentication Method, such as "SCRAM-SHA-256"
	Step   string // the Authenticator call that failed: "start", "continue" or "finish"
	Reason string // what went wrong, in words
	// Server is the error the server reported in its authentication data,
	// if it sent one: for SCRAM, the "e=" attribute of the
	// server-final-message, such as "invalid-proof".
	Server string
	Err    error // the cause, if any
}

// Error says which method failed, in which step and why.
func (e *AuthError) Error() string {
	return fmt.Sprintf("mqtt: %s authentication failed%s", e.Method, e.detail())
}

// detail is the text after "authentication failed", folding in a nested
// AuthError of the same method instead of repeating its prefix.
func (e *AuthError) detail() string {
	var s string
	if e.Step != "" {
		s += " in " + e.Step
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.Server != "" {
		s += fmt.Sprintf(": server says %q", e.Server)
	}
	if e.Err == nil {
		return s
	}
	if inner, ok := e.Err.(*AuthError); ok && inner.Method == e.Method {
		return s + inner.detail()
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns ErrAuthFailed and the cause, if any.
func (e *AuthError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrAuthFailed}
	}
	return []error{ErrAuthFailed, e.Err}
}
