// Package scram provides SCRAM authentication (RFC 5802, RFC 7677) for MQTT
// 5.0 enhanced authentication: set the Authenticator that SHA256 or SHA512
// returns in mqtt.Config.Authenticator. The client proves it knows the
// password without sending it, and checks that the server knows it too; a
// server that cannot prove it fails the connection.
//
//	c, err := mqtt.Connect(ctx, mqtt.Config{
//		Servers:       []string{"mqtts://broker.example:8883"},
//		Version:       mqtt.Version5,
//		Authenticator: scram.SHA256("alice", password),
//	})
//
// The mechanism itself (nonces, PBKDF2, the client proof and the check of
// the server's signature) is github.com/xdg-go/scram's, and SASLprep that of
// github.com/xdg-go/stringprep, which it uses. This package fits them to the
// mqtt.Authenticator interface: it bounds the iteration count a server may
// ask for, runs one exchange at a time, and keeps the password out of every
// error and printed value. It lives in a
// module of its own so that importing github.com/b4e21b16/mqtt does not pull
// in xdg-go/scram and its Unicode tables.
package scram

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/b4e21b16/mqtt"
	xscram "github.com/xdg-go/scram"
	"github.com/xdg-go/stringprep"
)

// Authentication Method names of SHA256 and SHA512.
const (
	MethodSHA256 = "SCRAM-SHA-256"
	MethodSHA512 = "SCRAM-SHA-512"
)

// Iteration counts the client accepts from a server. Fewer than
// MinIterations makes a stolen exchange cheap to brute-force (RFC 7677
// section 4 asks for at least 4096); more than MaxIterations would let a
// hostile server hold the connecting goroutine for seconds of key
// derivation. A server-first-message outside the range fails the exchange
// before any key is derived.
const (
	MinIterations = 4096
	MaxIterations = 1 << 20
)

// SHA256 returns an Authenticator for SCRAM-SHA-256 (RFC 7677),
// Authentication Method "SCRAM-SHA-256".
//
// The username and password are prepared with SASLprep (RFC 4013); the
// username must not be empty afterwards. Credentials that SASLprep refuses
// (control characters, for example) fail Start with an *mqtt.AuthError
// before anything is sent. There is no channel binding (the GS2 header is
// "n,,") and no authorization identity.
//
// One Authenticator serves the first connection, every reconnection and
// Client.Reauthenticate: each Start begins a new exchange with a fresh
// random nonce, and the keys derived for the server's salt and iteration
// count are kept, so a reconnection does not derive them again. It runs one
// exchange at a time and is safe for concurrent use: a call that does not
// fit the exchange in progress fails it, so exchanges that overlap end with
// an *mqtt.AuthError, never with a wrong proof.
//
// The server's iteration count must lie between MinIterations and
// MaxIterations. Every error is an *mqtt.AuthError wrapping
// mqtt.ErrAuthFailed; neither errors nor the printed Authenticator (with
// any fmt verb, or logged through log/slog) show the password or anything
// derived from it.
func SHA256(username string, password []byte) mqtt.Authenticator {
	return newAuthenticator(MethodSHA256, xscram.SHA256, username, password, options{})
}

// SHA512 is SHA256 with SHA-512 as the hash function, Authentication
// Method "SCRAM-SHA-512".
func SHA512(username string, password []byte) mqtt.Authenticator {
	return newAuthenticator(MethodSHA512, xscram.SHA512, username, password, options{})
}

// options are the settings tests change.
type options struct {
	nonce   xscram.NonceGeneratorFcn // nil: xdg-go/scram's, 24 random bytes in base64
	minIter int                      // 0: MinIterations
	maxIter int                      // 0: MaxIterations
}

// step is where an exchange stands.
type step int

const (
	idle      step = iota // no exchange, or the last one ended
	firstSent             // client-first-message sent
	finalSent             // client-final-message sent
)

// authenticator is the Authenticator of SHA256 and SHA512.
type authenticator struct {
	method   string
	hash     xscram.HashGeneratorFcn
	username string // as given, for printing
	user     string // after SASLprep
	password string // after SASLprep
	prepErr  error  // why the credentials cannot be used, reported by Start
	opts     options

	mu sync.Mutex // guards the fields below
	// client derives and caches the keys. It is replaced when a server
	// announces another salt or iteration count (see keyFactors), so that
	// its cache, which never forgets, holds the keys of at most two.
	client  *xscram.Client
	factors string // the salt and count of the last server-first-message
	// Exchange state, set by Start and cleared when the exchange ends.
	step step
	conv *xscram.ClientConversation
}

func newAuthenticator(method string, hash xscram.HashGeneratorFcn, username string, password []byte, opts options) *authenticator {
	if opts.minIter == 0 {
		opts.minIter = MinIterations
	}
	if opts.maxIter == 0 {
		opts.maxIter = MaxIterations
	}
	a := &authenticator{method: method, hash: hash, username: username, opts: opts}
	user, err := saslPrep(username)
	switch {
	case err != nil:
		a.prepErr = fmt.Errorf("username: %w", err)
		return a
	case user == "":
		a.prepErr = errors.New("username is empty")
		return a
	}
	pass, err := saslPrep(string(password))
	if err != nil {
		a.prepErr = fmt.Errorf("password: %w", err)
		return a
	}
	a.user, a.password = user, pass
	a.client = a.newClient()
	return a
}

// newClient returns an xdg-go/scram client with an empty key cache.
func (a *authenticator) newClient() *xscram.Client {
	// Unprepped: the credentials went through saslPrep already.
	c, _ := a.hash.NewClientUnprepped(a.user, a.password, "")
	c.WithMinIterations(a.opts.minIter)
	if a.opts.nonce != nil {
		c.WithNonceGenerator(a.opts.nonce)
	}
	return c
}

// saslPrep applies SASLprep. Its errors name no character of s: a
// stringprep.Error would show the offending one.
func saslPrep(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", errors.New("not valid UTF-8")
	}
	out, err := stringprep.SASLprep.Prepare(s)
	if err != nil {
		if pe, ok := errors.AsType[stringprep.Error](err); ok {
			return "", fmt.Errorf("SASLprep: %s", pe.Msg)
		}
		return "", errors.New("SASLprep refuses it")
	}
	return out, nil
}

// Method returns the Authentication Method: "SCRAM-SHA-256" or
// "SCRAM-SHA-512".
func (a *authenticator) Method() string { return a.method }

// Start ends any exchange in progress and returns the client-first-message
// of a new one.
func (a *authenticator) Start(ctx context.Context) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.resetLocked()
	if a.prepErr != nil {
		return nil, a.failLocked(a.prepErr.Error(), nil)
	}
	if err := ctx.Err(); err != nil {
		return nil, a.failLocked("cancelled before the exchange", err)
	}
	conv := a.client.NewConversation()
	first, err := conv.Step("")
	if err != nil {
		return nil, a.failLocked("client-first-message", err)
	}
	a.conv, a.step = conv, firstSent
	return []byte(first), nil
}

// Continue checks the server-first-message and returns the
// client-final-message carrying the client's proof.
func (a *authenticator) Continue(ctx context.Context, challenge []byte) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.step != firstSent {
		return nil, a.failLocked("server challenge out of order", nil)
	}
	if err := ctx.Err(); err != nil {
		return nil, a.failLocked("cancelled before the server challenge", err)
	}
	factors, iter, err := keyFactors(challenge)
	if err != nil {
		return nil, a.failLocked("malformed server-first-message", err)
	}
	if iter < a.opts.minIter || iter > a.opts.maxIter {
		return nil, a.failLocked(fmt.Sprintf("server iteration count %d outside [%d, %d]", iter, a.opts.minIter, a.opts.maxIter), nil)
	}
	if factors != a.factors {
		if a.factors != "" {
			// The conversation keeps the client it began with; the
			// next exchange starts on one with an empty cache.
			a.client = a.newClient()
		}
		a.factors = factors
	}
	final, err := a.conv.Step(string(challenge))
	if err != nil {
		return nil, a.failLocked("server-first-message refused", err)
	}
	a.step = finalSent
	return []byte(final), nil
}

// Finish checks the server-final-message: the server's signature, or the
// error it reports. The exchange ends either way.
func (a *authenticator) Finish(ctx context.Context, data []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.step != finalSent {
		return a.failLocked("server final data out of order", nil)
	}
	conv := a.conv
	defer a.resetLocked()
	if err := ctx.Err(); err != nil {
		return a.failLocked("cancelled before the server's final data", err)
	}
	if data == nil {
		return a.failLocked("server sent no final data, so it did not prove it knows the password", nil)
	}
	if msg, ok := bytes.CutPrefix(data, []byte("e=")); ok {
		msg, _, _ = bytes.Cut(msg, []byte(","))
		return &mqtt.AuthError{Method: a.method, Reason: "server rejected the exchange", Server: strings.ToValidUTF8(string(msg), "\uFFFD")}
	}
	if _, err := conv.Step(string(data)); err != nil || !conv.Valid() {
		return a.failLocked("server did not prove it knows the password", err)
	}
	return nil
}

// resetLocked forgets the exchange in progress.
func (a *authenticator) resetLocked() {
	a.step = idle
	a.conv = nil
}

// failLocked ends the exchange and returns an *mqtt.AuthError.
func (a *authenticator) failLocked(reason string, cause error) error {
	a.resetLocked()
	return &mqtt.AuthError{Method: a.method, Reason: reason, Err: cause}
}

// keyFactors returns the salt and iteration count attributes of a
// server-first-message "r=<nonce>,s=<salt>,i=<count>[,ext...]" as one
// string, and the count. xdg-go/scram checks the rest, but bounds the count
// only from below and would derive keys for any count it parses.
func keyFactors(msg []byte) (string, int, error) {
	if bytes.HasPrefix(msg, []byte("m=")) {
		return "", 0, errors.New("unsupported mandatory extension (m=)")
	}
	attrs := strings.SplitN(string(msg), ",", 4)
	if len(attrs) < 3 || !strings.HasPrefix(attrs[0], "r=") || !strings.HasPrefix(attrs[1], "s=") {
		return "", 0, errors.New("want r=, s= and i= attributes")
	}
	count, ok := strings.CutPrefix(attrs[2], "i=")
	if !ok {
		return "", 0, errors.New("third attribute is not the iteration count i=")
	}
	if count == "" || count[0] < '1' || count[0] > '9' || len(count) > 9 {
		return "", 0, fmt.Errorf("iteration count %q is not a positive number below 10^9", count)
	}
	iter, err := strconv.Atoi(count)
	if err != nil {
		return "", 0, fmt.Errorf("iteration count: %w", err)
	}
	return attrs[1] + "," + attrs[2], iter, nil
}
