// Package scramtest is the server side of SCRAM-SHA-256 (RFC 5802, RFC
// 7677) and SCRAM-SHA-512 for tests of the client: pure functions over the
// exchanged messages, no network. Its knobs make it misbehave in the ways a
// client must catch.
package scramtest

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Authentication Method names of the servers of NewServer and
// NewServerSHA512.
const (
	Method       = "SCRAM-SHA-256"
	MethodSHA512 = "SCRAM-SHA-512"
)

// ErrInvalidProof is returned by Final when the client's proof does not
// match the password: the wrong password, or a tampered message.
var ErrInvalidProof = errors.New("scramtest: client proof does not verify")

// ErrOutOfOrder is returned by Final when no First started the exchange.
var ErrOutOfOrder = errors.New("scramtest: client-final-message before client-first-message")

// Server runs the server side of one SCRAM exchange at a time for
// one user. First starts an exchange (dropping any earlier one) and Final
// ends it. A Server is not safe for concurrent use.
//
// The exported fields may be set between NewServer and First to fix the
// exchange or make the server misbehave.
type Server struct {
	// Salt is the user's salt; NewServer draws 16 random bytes.
	Salt []byte
	// Iterations is the PBKDF2 iteration count announced in the
	// server-first-message, whatever its value.
	Iterations int
	// NonceSuffix is the server's part of the nonce, appended to the
	// client's; when empty, First draws 18 random bytes in base64.
	NonceSuffix string

	// WrongNonce makes First announce a nonce that does not start with
	// the client's.
	WrongNonce bool
	// BadSignature makes Final send a server signature with one bit
	// flipped.
	BadSignature bool
	// FinalError, when not empty, makes Final answer "e=" and the value
	// instead of checking the proof.
	FinalError string

	method   string
	hash     func() hash.Hash
	username string
	password []byte

	// Exchange state, set by First and cleared by Final.
	started     bool
	gs2Header   string
	clientFirst string // client-first-message-bare
	serverFirst string
	nonce       string // client nonce followed by the server's part
}

// NewServer returns a SCRAM-SHA-256 server that knows username (compared
// after unescaping "=2C" and "=3D", without SASLprep) with password,
// announcing iterations. The password is copied.
func NewServer(username string, password []byte, iterations int) *Server {
	return newServer(Method, sha256.New, username, password, iterations)
}

// NewServerSHA512 is NewServer for SCRAM-SHA-512.
func NewServerSHA512(username string, password []byte, iterations int) *Server {
	return newServer(MethodSHA512, sha512.New, username, password, iterations)
}

func newServer(method string, h func() hash.Hash, username string, password []byte, iterations int) *Server {
	salt := make([]byte, 16)
	if _, err := io.ReadFull(rand.Reader, salt); err != nil {
		panic(fmt.Sprintf("scramtest: read random salt: %v", err))
	}
	return &Server{
		Salt:       salt,
		Iterations: iterations,
		method:     method,
		hash:       h,
		username:   username,
		password:   append([]byte(nil), password...),
	}
}

// Method returns the Authentication Method: "SCRAM-SHA-256" or
// "SCRAM-SHA-512".
func (s *Server) Method() string { return s.method }

// First checks a client-first-message and returns the server-first-message
// "r=<nonce>,s=<salt>,i=<iterations>". An unknown user, channel binding
// ("p=" header) or a malformed message is an error.
func (s *Server) First(clientFirst []byte) (serverFirst []byte, err error) {
	s.started = false
	cf, err := parseClientFirst(string(clientFirst))
	if err != nil {
		return nil, err
	}
	if cf.username != s.username {
		return nil, fmt.Errorf("scramtest: unknown user %q", cf.username)
	}
	suffix := s.NonceSuffix
	if suffix == "" {
		b := make([]byte, 18)
		if _, err := io.ReadFull(rand.Reader, b); err != nil {
			return nil, fmt.Errorf("scramtest: read random nonce: %w", err)
		}
		suffix = base64.StdEncoding.EncodeToString(b)
	}
	nonce := cf.nonce + suffix
	if s.WrongNonce {
		nonce = "x" + nonce
	}
	s.gs2Header = cf.gs2Header
	s.clientFirst = cf.bare
	s.nonce = nonce
	s.serverFirst = fmt.Sprintf("r=%s,s=%s,i=%d", nonce, base64.StdEncoding.EncodeToString(s.Salt), s.Iterations)
	s.started = true
	return []byte(s.serverFirst), nil
}

// Final checks a client-final-message and returns the server-final-message
// "v=<server signature>". A proof that does not verify returns
// "e=invalid-proof" together with ErrInvalidProof; a malformed message or
// a call without First returns only an error. The exchange ends either way.
func (s *Server) Final(clientFinal []byte) (serverFinal []byte, err error) {
	if !s.started {
		return nil, ErrOutOfOrder
	}
	s.started = false
	if s.FinalError != "" {
		return []byte("e=" + s.FinalError), nil
	}
	cf, err := parseClientFinal(string(clientFinal))
	if err != nil {
		return nil, err
	}
	if cf.channelBinding != s.gs2Header {
		return nil, fmt.Errorf("scramtest: channel binding %q does not repeat the GS2 header %q", cf.channelBinding, s.gs2Header)
	}
	if cf.nonce != s.nonce {
		return nil, fmt.Errorf("scramtest: nonce %q is not the exchange's %q", cf.nonce, s.nonce)
	}

	salted, err := pbkdf2.Key(s.hash, string(s.password), s.Salt, s.Iterations, s.hash().Size())
	if err != nil {
		return nil, fmt.Errorf("scramtest: key derivation: %w", err)
	}
	storedKey := s.sum(s.mac(salted, "Client Key"))
	serverKey := s.mac(salted, "Server Key")
	authMessage := s.clientFirst + "," + s.serverFirst + "," + cf.withoutProof

	// ClientKey = ClientProof XOR ClientSignature; it must hash to StoredKey.
	clientKey := s.mac(storedKey, authMessage)
	if len(cf.proof) != len(clientKey) {
		return []byte("e=invalid-proof"), ErrInvalidProof
	}
	for i := range clientKey {
		clientKey[i] ^= cf.proof[i]
	}
	if !hmac.Equal(s.sum(clientKey), storedKey) {
		return []byte("e=invalid-proof"), ErrInvalidProof
	}

	sig := s.mac(serverKey, authMessage)
	if s.BadSignature {
		sig[0] ^= 1
	}
	return []byte("v=" + base64.StdEncoding.EncodeToString(sig)), nil
}

// mac returns HMAC(key, msg) with the server's hash function.
func (s *Server) mac(key []byte, msg string) []byte {
	m := hmac.New(s.hash, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// sum returns the hash of b.
func (s *Server) sum(b []byte) []byte {
	h := s.hash()
	h.Write(b)
	return h.Sum(nil)
}
