package mqtt

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// SCRAMMethod is the Authentication Method name of NewSCRAMSHA256.
const SCRAMMethod = "SCRAM-SHA-256"

// Iteration counts the SCRAM-SHA-256 client accepts from a server. Fewer
// than SCRAMMinIterations makes a stolen exchange cheap to brute-force (RFC
// 7677 section 4 asks for at least 4096); more than SCRAMMaxIterations would
// let a hostile server hold the connection goroutine for seconds of key
// derivation. A server-first-message outside the range fails the exchange.
const (
	SCRAMMinIterations = 4096
	SCRAMMaxIterations = 1 << 20
)

// scramNonceBytes is how many random bytes make a client nonce: 24 bytes
// encode to 32 base64 characters without padding.
const scramNonceBytes = 24

// scramGS2Header says the client does not support channel binding and
// sends no authorization identity.
const scramGS2Header = "n,,"

// ErrAuthFailed is wrapped by every *AuthError: an enhanced authentication
// exchange failed on the client's side or the server reported a failure.
var ErrAuthFailed = errors.New("mqtt: authentication failed")

// AuthError reports a failed enhanced authentication exchange: an
// Authenticator refused the server's data, or the server reported a
// failure. The client wraps an error from an Authenticator in an AuthError
// naming the Step; NewSCRAMSHA256 returns AuthError values itself, saying
// why in Reason. An AuthError never holds the password or anything derived
// from it.
type AuthError struct {
	Method string // the Authentication Method, such as "SCRAM-SHA-256"
	Step   string // the Authenticator call that failed: "start", "continue" or "finish"
	Reason string // what went wrong, in words
	// Server is the error the server sent in a SCRAM server-final-message
	// ("e=" attribute, such as "invalid-proof"), if it sent one.
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

// scramStep is where a SCRAM exchange stands.
type scramStep int

const (
	scramIdle      scramStep = iota // no exchange, or the last one ended
	scramFirstSent                  // client-first-message sent
	scramFinalSent                  // client-final-message sent
)

// scramClient is the SCRAM-SHA-256 client of NewSCRAMSHA256. It runs one
// exchange at a time: mu keeps overlapping calls (a re-authentication on
// the application's goroutine while a reconnection starts, say) from racing
// on the state, and a call that does not fit the exchange in progress fails
// it, so an interleaved exchange ends with an *AuthError, never with a
// wrong proof.
type scramClient struct {
	username string // escaped, after SASLprep
	password string // after SASLprep
	prepErr  error  // why the credentials cannot be used, checked by Start

	newNonce func() (string, error)
	minIter  int
	maxIter  int

	mu sync.Mutex // guards the exchange state below
	// Exchange state, reset by Start and cleared when the exchange ends.
	step        scramStep
	clientNonce string
	firstBare   string // client-first-message-bare
	serverSig   []byte // the ServerSignature Finish expects
}

// NewSCRAMSHA256 returns an Authenticator for the SCRAM-SHA-256 mechanism
// of RFC 5802 and RFC 7677, Authentication Method "SCRAM-SHA-256". The
// client proves it knows the password without sending it, and checks in
// Finish that the server knows it too; an unverified server fails the
// connection.
//
// There is no channel binding: the GS2 header is "n,," and no authorization
// identity is sent. Each Start draws a fresh 24-byte nonce from crypto/rand,
// so one value serves the first connection, every reconnection and
// re-authentication. It runs one exchange at a time: exchanges that
// overlap fail with an *AuthError rather than mix their state.
//
// The username and password go through the part of SASLprep (RFC 4013)
// that needs no Unicode normalization tables: non-ASCII spaces become
// U+0020, characters mapped to nothing (soft hyphen, zero-width joiners,
// variation selectors and the like) are removed, and control characters are
// refused. Any other non-ASCII character is refused rather than sent
// unnormalized, because a server that normalizes would derive a different
// key; Start then returns an *AuthError. The username must not be empty.
// In the username, ',' and '=' are sent escaped as "=2C" and "=3D".
//
// The server's iteration count must lie between SCRAMMinIterations and
// SCRAMMaxIterations. Errors are *AuthError values wrapping ErrAuthFailed;
// they never contain the password.
func NewSCRAMSHA256(username string, password []byte) Authenticator {
	return newSCRAM(username, password, randomSCRAMNonce)
}

// newSCRAM is NewSCRAMSHA256 with the nonce source given.
func newSCRAM(username string, password []byte, nonce func() (string, error)) *scramClient {
	c := &scramClient{newNonce: nonce, minIter: SCRAMMinIterations, maxIter: SCRAMMaxIterations}
	user, err := saslPrep(username)
	if err != nil {
		c.prepErr = fmt.Errorf("username: %w", err)
		return c
	}
	if user == "" {
		c.prepErr = errors.New("username is empty")
		return c
	}
	pass, err := saslPrep(string(password))
	if err != nil {
		c.prepErr = fmt.Errorf("password: %w", err)
		return c
	}
	c.username = escapeSCRAMName(user)
	c.password = pass
	return c
}

// String names the mechanism and the user. It never shows the password or
// anything derived from it, and neither do Format, GoString and LogValue,
// so the Authenticator may be printed or logged in any form.
func (c *scramClient) String() string {
	return fmt.Sprintf("%s authenticator for user %q", SCRAMMethod, c.username)
}

// GoString is String in the form of a call to NewSCRAMSHA256.
func (c *scramClient) GoString() string {
	return fmt.Sprintf("mqtt.NewSCRAMSHA256(%q, /* password hidden */)", c.username)
}

// Format prints String for every verb, GoString for %#v: without it, verbs
// such as %d would print the fields.
func (c *scramClient) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, c.GoString())
		return
	}
	_, _ = fmt.Fprintf(f, fmt.FormatString(f, verb), c.String())
}

// LogValue is String, for log/slog handlers that would otherwise encode
// the fields (JSON shows none of them, being unexported, but says nothing).
func (c *scramClient) LogValue() slog.Value { return slog.StringValue(c.String()) }

// randomSCRAMNonce returns scramNonceBytes random bytes in standard base64:
// printable and free of ','.
func randomSCRAMNonce() (string, error) {
	b := make([]byte, scramNonceBytes)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return "", fmt.Errorf("read random nonce: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// Method returns "SCRAM-SHA-256".
func (c *scramClient) Method() string { return SCRAMMethod }

// Start resets the exchange and returns the client-first-message.
func (c *scramClient) Start(ctx context.Context) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resetLocked()
	if c.prepErr != nil {
		return nil, c.failLocked(c.prepErr.Error(), nil)
	}
	if err := ctx.Err(); err != nil {
		return nil, c.failLocked("cancelled before the exchange", err)
	}
	nonce, err := c.newNonce()
	if err != nil {
		return nil, c.failLocked("no client nonce", err)
	}
	if nonce == "" || !scramPrintable(nonce) {
		return nil, c.failLocked("client nonce is empty or not printable", nil)
	}
	c.clientNonce = nonce
	c.firstBare = "n=" + c.username + ",r=" + nonce
	c.step = scramFirstSent
	return []byte(scramGS2Header + c.firstBare), nil
}

// Continue checks the server-first-message and returns the
// client-final-message carrying the client's proof.
func (c *scramClient) Continue(ctx context.Context, challenge []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.step != scramFirstSent {
		return nil, c.failLocked("server challenge out of order", nil)
	}
	if err := ctx.Err(); err != nil {
		return nil, c.failLocked("cancelled before the server challenge", err)
	}
	sf, err := parseSCRAMServerFirst(challenge)
	if err != nil {
		return nil, c.failLocked("malformed server-first-message", err)
	}
	if len(sf.nonce) <= len(c.clientNonce) || !strings.HasPrefix(sf.nonce, c.clientNonce) {
		return nil, c.failLocked("server nonce does not extend the client nonce", nil)
	}
	if sf.iterations < c.minIter || sf.iterations > c.maxIter {
		return nil, c.failLocked(fmt.Sprintf("server iteration count %d outside [%d, %d]", sf.iterations, c.minIter, c.maxIter), nil)
	}

	salted, err := pbkdf2.Key(sha256.New, c.password, sf.salt, sf.iterations, sha256.Size)
	if err != nil {
		return nil, c.failLocked("key derivation", err)
	}
	clientKey := scramHMAC(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := scramHMAC(salted, "Server Key")

	finalBare := "c=" + base64.StdEncoding.EncodeToString([]byte(scramGS2Header)) + ",r=" + sf.nonce
	authMessage := c.firstBare + "," + string(challenge) + "," + finalBare
	proof := scramHMAC(storedKey[:], authMessage)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	c.serverSig = scramHMAC(serverKey, authMessage)
	c.step = scramFinalSent
	return []byte(finalBare + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// Finish checks the server-final-message: the server's signature, or the
// error it reports. The exchange ends either way.
func (c *scramClient) Finish(ctx context.Context, data []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.step != scramFinalSent {
		return c.failLocked("server final data out of order", nil)
	}
	want := c.serverSig
	defer c.resetLocked()
	if err := ctx.Err(); err != nil {
		return c.failLocked("cancelled before the server's final data", err)
	}
	if data == nil {
		return c.failLocked("server sent no final data, so it did not prove it knows the password", nil)
	}
	attr, rest, hasExt := bytes.Cut(data, []byte(","))
	switch {
	case bytes.HasPrefix(attr, []byte("e=")):
		msg := string(attr[2:])
		if !utf8.ValidString(msg) {
			msg = strings.ToValidUTF8(msg, "\uFFFD")
		}
		return &AuthError{Method: SCRAMMethod, Reason: "server rejected the exchange", Server: msg}
	case bytes.HasPrefix(attr, []byte("v=")):
		if hasExt {
			if err := checkSCRAMExtensions(rest); err != nil {
				return c.failLocked("malformed server-final-message", err)
			}
		}
		got, err := base64.StdEncoding.Strict().DecodeString(string(attr[2:]))
		if err != nil {
			return c.failLocked("malformed server-final-message", fmt.Errorf("verifier: %w", err))
		}
		if !hmac.Equal(got, want) {
			return c.failLocked("server signature does not verify", nil)
		}
		return nil
	default:
		return c.failLocked("malformed server-final-message", errors.New("neither v= nor e= attribute"))
	}
}

// resetLocked forgets the exchange in progress.
func (c *scramClient) resetLocked() {
	clear(c.serverSig)
	c.step = scramIdle
	c.clientNonce = ""
	c.firstBare = ""
	c.serverSig = nil
}

// failLocked ends the exchange and returns an *AuthError.
func (c *scramClient) failLocked(reason string, cause error) error {
	c.resetLocked()
	return &AuthError{Method: SCRAMMethod, Reason: reason, Err: cause}
}

// scramServerFirst is a parsed server-first-message.
type scramServerFirst struct {
	nonce      string
	salt       []byte
	iterations int
}

// parseSCRAMServerFirst parses "r=<nonce>,s=<salt>,i=<count>[,ext...]",
// refusing a mandatory extension ("m=") since none is supported.
func parseSCRAMServerFirst(msg []byte) (scramServerFirst, error) {
	var sf scramServerFirst
	if !utf8.Valid(msg) {
		return sf, errors.New("not UTF-8")
	}
	parts := strings.SplitN(string(msg), ",", 4)
	if len(parts) > 0 && strings.HasPrefix(parts[0], "m=") {
		return sf, errors.New("unsupported mandatory extension (m=)")
	}
	if len(parts) < 3 {
		return sf, errors.New("want r=, s= and i= attributes")
	}
	nonce, ok := strings.CutPrefix(parts[0], "r=")
	if !ok || nonce == "" || !scramPrintable(nonce) {
		return sf, errors.New("first attribute is not a printable nonce r=")
	}
	salt64, ok := strings.CutPrefix(parts[1], "s=")
	if !ok {
		return sf, errors.New("second attribute is not the salt s=")
	}
	salt, err := base64.StdEncoding.Strict().DecodeString(salt64)
	if err != nil {
		return sf, fmt.Errorf("salt: %w", err)
	}
	if len(salt) == 0 {
		return sf, errors.New("salt is empty")
	}
	count, ok := strings.CutPrefix(parts[2], "i=")
	if !ok {
		return sf, errors.New("third attribute is not the iteration count i=")
	}
	iter, err := parseSCRAMCount(count)
	if err != nil {
		return sf, err
	}
	if len(parts) == 4 {
		if err := checkSCRAMExtensions([]byte(parts[3])); err != nil {
			return sf, err
		}
	}
	return scramServerFirst{nonce: nonce, salt: salt, iterations: iter}, nil
}

// parseSCRAMCount parses a positive decimal iteration count without sign
// or leading zero.
func parseSCRAMCount(s string) (int, error) {
	if s == "" || s[0] < '1' || s[0] > '9' || len(s) > 9 {
		return 0, fmt.Errorf("iteration count %q is not a positive number below 10^9", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("iteration count: %w", err)
	}
	return n, nil
}

// checkSCRAMExtensions checks the optional attributes after a comma that
// ends the known ones (ignored by this client) for the "a=value" shape.
func checkSCRAMExtensions(rest []byte) error {
	for ext := range bytes.SplitSeq(rest, []byte(",")) {
		if len(ext) < 2 || ext[1] != '=' || !isASCIILetter(ext[0]) {
			return fmt.Errorf("extension attribute %q is not a=value", ext)
		}
	}
	return nil
}

func isASCIILetter(b byte) bool { return b|0x20 >= 'a' && b|0x20 <= 'z' }

// scramPrintable reports whether s holds only printable ASCII other than
// ',', as a nonce must.
func scramPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == ',' {
			return false
		}
	}
	return true
}

// escapeSCRAMName escapes ',' and '=' of a saslname as "=2C" and "=3D".
func escapeSCRAMName(s string) string {
	if !strings.ContainsAny(s, ",=") {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case ',':
			b.WriteString("=2C")
		case '=':
			b.WriteString("=3D")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// scramHMAC returns HMAC-SHA-256(key, msg).
func scramHMAC(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// saslPrep applies the part of SASLprep (RFC 4013) that holds for strings
// made of ASCII after mapping: non-ASCII spaces (stringprep table C.1.2)
// become U+0020, characters mapped to nothing (table B.1) are dropped, and
// ASCII control characters (table C.2.1) are prohibited. NFKC normalization
// leaves ASCII unchanged, so the result is what a full SASLprep would give.
// Any other non-ASCII character is refused, since normalizing it would need
// the Unicode tables. U+200B is in both tables; it becomes a space, as
// RFC 4013 lists the space mapping first. Errors name no character of s.
func saslPrep(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", errors.New("not valid UTF-8")
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r < 0x20 || r == 0x7f:
			return "", errors.New("control characters are prohibited (SASLprep)")
		case r < 0x7f:
			b.WriteRune(r)
		case saslNonASCIISpace(r):
			b.WriteByte(' ')
		case saslMappedToNothing(r):
		default:
			return "", errors.New("non-ASCII characters other than spaces and characters mapped to nothing are not supported (SASLprep normalization)")
		}
	}
	return b.String(), nil
}

// saslNonASCIISpace reports whether r is in stringprep table C.1.2.
func saslNonASCIISpace(r rune) bool {
	switch r {
	case 0x00a0, 0x1680, 0x202f, 0x205f, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200b
}

// saslMappedToNothing reports whether r is in stringprep table B.1.
func saslMappedToNothing(r rune) bool {
	switch r {
	case 0x00ad, 0x034f, 0x1806, 0x180b, 0x180c, 0x180d, 0x200c, 0x200d, 0x2060, 0xfeff:
		return true
	}
	return r >= 0xfe00 && r <= 0xfe0f
}
