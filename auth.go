package mqtt

import (
	"context"
	"errors"
)

// Authenticator runs MQTT 5.0 enhanced authentication: a challenge and
// response exchange carried by CONNECT, AUTH and CONNACK packets under an
// Authentication Method both sides know, such as "SCRAM-SHA-256". Set one in
// Config.Authenticator. Package github.com/b4e21b16/mqtt/scram provides
// SCRAM-SHA-256 and SCRAM-SHA-512, in a module of its own so that importing
// this package does not pull in what SCRAM needs.
//
// The client calls Start when it connects (and when Client.Reauthenticate is
// called), Continue for each AUTH packet from the server with reason code
// 0x18 (Continue authentication), and Finish with the server's data from the
// CONNACK (or the AUTH packet with reason 0x00 that ends a
// re-authentication). Calls for one exchange are made in order: during a
// connect from the goroutine that connects (Connect's caller, or the
// client's reconnecting goroutine), during a re-authentication from
// Reauthenticate's caller; never from the goroutines that run the protocol.
// A reconnection and a re-authentication may overlap, so an Authenticator
// must be safe for concurrent use (failing the later exchange cleanly is
// enough). It should watch ctx, which ends with the connect timeout, the
// caller's context or the client.
//
// An error from any method ends the exchange: during a connect the client
// closes the network connection and the error is returned (wrapped) from
// Connect or reported as the cause of a failed reconnection; during a
// re-authentication the client sends DISCONNECT and the connection is lost.
// An error may be an *AuthError of the Authenticator's method, with the
// details; the client fills in its Step. Errors, and the Authenticator
// printed with fmt or logged with log/slog, should never show a password.
type Authenticator interface {
	// Method is the Authentication Method name sent to the server.
	Method() string
	// Start begins a new exchange and returns the initial Authentication
	// Data (nil for none). It resets any state of an earlier exchange.
	Start(ctx context.Context) ([]byte, error)
	// Continue answers a server challenge with the next Authentication Data.
	Continue(ctx context.Context, challenge []byte) ([]byte, error)
	// Finish checks the server's final Authentication Data (nil when the
	// server sent none); an error rejects the server, for example when its
	// proof of knowing the password does not verify.
	Finish(ctx context.Context, data []byte) error
}

// authFailure wraps an error from a's step in an *AuthError, unless it is
// one already of a's method, whose Step it then fills in.
func authFailure(a Authenticator, step string, err error) error {
	if ae, ok := errors.AsType[*AuthError](err); ok && ae.Method == a.Method() {
		if ae.Step == "" {
			ae.Step = step
		}
		return err
	}
	return &AuthError{Method: a.Method(), Step: step, Err: err}
}
