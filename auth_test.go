package mqtt_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/packet"
)

// testAuthMethod is the Authentication Method of testAuth.
const testAuthMethod = "TEST-HMAC"

// testAuth is a challenge and response mechanism for the tests of the AUTH
// exchange: Start sends the user name, Continue answers the server's
// challenge with testMAC(secret, "client", challenge), and Finish checks
// that the server's final data is testMAC(secret, "server", user). It is
// safe for concurrent use, as it keeps no state. Unlike a real mechanism it
// prints its secret, so the tests also catch a client that would print or
// log its Authenticator.
type testAuth struct {
	user   string
	secret string
}

func (a *testAuth) Method() string { return testAuthMethod }

func (a *testAuth) Start(ctx context.Context) ([]byte, error) { return []byte(a.user), ctx.Err() }

func (a *testAuth) Continue(ctx context.Context, challenge []byte) ([]byte, error) {
	return testMAC([]byte(a.secret), "client", challenge), ctx.Err()
}

func (a *testAuth) Finish(ctx context.Context, data []byte) error {
	if !hmac.Equal(data, testMAC([]byte(a.secret), "server", []byte(a.user))) {
		return errors.New("server proof does not verify")
	}
	return ctx.Err()
}

// testMAC returns HMAC-SHA-256(secret, role + msg) in hex.
func testMAC(secret []byte, role string, msg []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(role))
	m.Write(msg)
	return []byte(hex.EncodeToString(m.Sum(nil)))
}

// testAuthServer is the broker side of testAuth for one user.
type testAuthServer struct {
	secret   []byte
	badProof bool // Final sends a proof that does not verify
	user     []byte
	n        int // exchanges started, to vary the challenge
}

func (s *testAuthServer) Method() string { return testAuthMethod }

// First takes the client's initial data and returns the challenge.
func (s *testAuthServer) First(user []byte) []byte {
	s.user = user
	s.n++
	return []byte("challenge-" + string(rune('0'+s.n%10)))
}

// Final checks the client's answer to challenge and returns the server's
// proof, or an error if the answer does not verify.
func (s *testAuthServer) Final(challenge, answer []byte) ([]byte, error) {
	if !hmac.Equal(answer, testMAC(s.secret, "client", challenge)) {
		return nil, errors.New("client answer does not verify")
	}
	proof := testMAC(s.secret, "server", s.user)
	if s.badProof {
		proof[0] ^= 1
	}
	return proof, nil
}

func authPacket(code packet.ReasonCode, method string, data []byte) *packet.Auth {
	a := &packet.Auth{ReasonCode: code}
	a.Props.AuthMethod = method
	a.Props.Set(packet.PropAuthMethod)
	if data != nil {
		a.Props.AuthData = data
		a.Props.Set(packet.PropAuthData)
	}
	return a
}

// authHandshake plays the server side of an exchange that started with the
// client's initial data, up to and including the client's answer, and
// returns the server's proof (or the server's refusal of the answer).
func authHandshake(t *testing.T, bc *fakebroker.Conn, srv *testAuthServer, initial []byte) ([]byte, error) {
	t.Helper()
	challenge := srv.First(initial)
	bc.Send(t, authPacket(packet.ContinueAuthentication, srv.Method(), challenge))
	a, ok := bc.Read(t).(*packet.Auth)
	if !ok || a.ReasonCode != packet.ContinueAuthentication || a.Props.AuthMethod != testAuthMethod {
		t.Fatalf("want AUTH Continue authentication with the method, got %s", fakebroker.Describe(a))
	}
	return srv.Final(challenge, a.Props.AuthData)
}

// authConnect starts a client with a testAuth for secret against a new
// scripted broker, and plays the server side of the exchange with srv up to
// the client's answer. It returns the pending Connect, the broker side of
// the connection and the server's proof (or its refusal of the answer).
func authConnect(t *testing.T, srv *testAuthServer, secret string) (<-chan fakeConnectResult, *fakebroker.Conn, []byte, error) {
	t.Helper()
	b := fakebroker.New(t)
	res := fakeStartConnect(t, context.Background(), b, mqtt.Config{ClientID: "a", Version: mqtt.Version5,
		Authenticator: &testAuth{user: "alice", secret: secret}})
	bc := fakeAccept(t, b, fakeTimeout)
	cp := bc.ExpectConnect(t)
	if cp.Props.AuthMethod != testAuthMethod || string(cp.Props.AuthData) != "alice" {
		t.Fatalf("CONNECT method %q data %q, want %s with the user name", cp.Props.AuthMethod, cp.Props.AuthData, testAuthMethod)
	}
	final, err := authHandshake(t, bc, srv, cp.Props.AuthData)
	return res, bc, final, err
}

func connackWithAuth(code packet.ReasonCode, data []byte) *packet.Connack {
	ack := &packet.Connack{ReasonCode: code}
	ack.Props.AuthMethod = testAuthMethod
	ack.Props.Set(packet.PropAuthMethod)
	if data != nil {
		ack.Props.AuthData = data
		ack.Props.Set(packet.PropAuthData)
	}
	return ack
}

// TestFakeAuth checks the whole exchange: CONNECT carries the method and
// the initial data, the broker's AUTH challenge (0x18) is answered with an
// AUTH of the same method [MQTT-4.12.0-2] [MQTT-4.12.0-3], and the
// CONNACK's data goes to Finish; then a re-authentication (AUTH 0x19) on
// the live connection succeeds.
func TestFakeAuth(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		srv := &testAuthServer{secret: []byte("pencil")}
		res, bc, final, err := authConnect(t, srv, "pencil")
		if err != nil {
			t.Fatalf("server rejected the answer: %v", err)
		}
		bc.Send(t, connackWithAuth(packet.Success, final))
		c, err := fakeConnectDone(t, res, fakeTimeout)
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}

		// Re-authentication, driven from another goroutine.
		done := make(chan error, 1)
		go func() { done <- c.Reauthenticate(context.Background()) }()
		a, ok := bc.Read(t).(*packet.Auth)
		if !ok || a.ReasonCode != packet.ReAuthenticate {
			t.Fatalf("want AUTH Re-authenticate, got %s", fakebroker.Describe(a))
		}
		final, err = authHandshake(t, bc, srv, a.Props.AuthData)
		if err != nil {
			t.Fatalf("server rejected the re-authentication answer: %v", err)
		}
		bc.Send(t, authPacket(packet.Success, srv.Method(), final))
		if err := <-done; err != nil {
			t.Errorf("Reauthenticate: %v", err)
		}
		if err := c.Err(); err != nil {
			t.Errorf("client stopped: %v", err)
		}
		bc.Close()
	})
}

// TestFakeAuthRefused checks the failures: a broker that refuses the
// answer replies with a CONNACK reason code (Connect returns a
// *ConnectError); a server whose proof does not verify is refused by the
// client (an *AuthError wrapping ErrAuthFailed) and the connection is
// closed.
func TestFakeAuthRefused(t *testing.T) {
	t.Parallel()
	t.Run("wrong secret", func(t *testing.T) {
		fakeBubble(t, func(t *testing.T) {
			srv := &testAuthServer{secret: []byte("pencil")}
			res, bc, _, err := authConnect(t, srv, "crayon")
			if err == nil {
				t.Fatal("the server accepted a wrong secret")
			}
			bc.Send(t, connackWithAuth(packet.NotAuthorized, nil))
			_, err = fakeConnectDone(t, res, fakeTimeout)
			if ce, ok := errors.AsType[*mqtt.ConnectError](err); !ok || ce.Code != packet.NotAuthorized {
				t.Errorf("Connect: %v, want a *ConnectError with Not authorized", err)
			}
		})
	})
	t.Run("bad server proof", func(t *testing.T) {
		fakeBubble(t, func(t *testing.T) {
			srv := &testAuthServer{secret: []byte("pencil"), badProof: true}
			res, bc, final, err := authConnect(t, srv, "pencil")
			if err != nil {
				t.Fatal(err)
			}
			bc.Send(t, connackWithAuth(packet.Success, final))
			_, err = fakeConnectDone(t, res, fakeTimeout)
			ae, ok := errors.AsType[*mqtt.AuthError](err)
			if !ok || ae.Step != "finish" || ae.Method != testAuthMethod || !errors.Is(err, mqtt.ErrAuthFailed) {
				t.Errorf("Connect: %v, want an *AuthError at finish", err)
			}
			bc.ExpectClosed(t)
		})
	})
}

// TestFakeReauthServerNotVerified checks a re-authentication that the
// broker ends with Success but whose data the Authenticator refuses:
// Reauthenticate returns the *AuthError, and the client does not go on
// with a server that did not prove itself. It sends DISCONNECT and the
// connection is lost.
func TestFakeReauthServerNotVerified(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		srv := &testAuthServer{secret: []byte("pencil")}
		res, bc, final, err := authConnect(t, srv, "pencil")
		if err != nil {
			t.Fatal(err)
		}
		bc.Send(t, connackWithAuth(packet.Success, final))
		c, err := fakeConnectDone(t, res, fakeTimeout)
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		fc := fakeWatch(t, bc, fakeTimeout)
		done := make(chan error, 1)
		go func() { done <- c.Reauthenticate(context.Background()) }()
		a := fc.expect(packet.AUTH).(*packet.Auth)
		challenge := srv.First(a.Props.AuthData)
		fc.send(authPacket(packet.ContinueAuthentication, srv.Method(), challenge))
		a = fc.expect(packet.AUTH).(*packet.Auth)
		srv.badProof = true
		final, err = srv.Final(challenge, a.Props.AuthData)
		if err != nil {
			t.Fatal(err)
		}
		fc.send(authPacket(packet.Success, srv.Method(), final))
		err = <-done
		if ae, ok := errors.AsType[*mqtt.AuthError](err); !ok || ae.Step != "finish" || !errors.Is(err, mqtt.ErrAuthFailed) {
			t.Errorf("Reauthenticate: %v, want an *AuthError at finish", err)
		}
		got := fc.expectClosed()
		if len(got) != 1 || got[0].Type() != packet.DISCONNECT {
			t.Errorf("client sent %v before closing, want one DISCONNECT", got)
		}
		if err := fakeWaitDone(t, c, fakeTimeout); !errors.Is(err, mqtt.ErrAuthFailed) || !errors.Is(err, mqtt.ErrConnectionLost) {
			t.Errorf("Err = %v, want ErrAuthFailed and ErrConnectionLost", err)
		}
	})
}

// TestFakeAuthUnexpected checks that AUTH from the broker when no exchange
// runs is a protocol error (0x82), and that an AUTH with
// another method during a re-authentication is one too [MQTT-4.12.0-5];
// Reauthenticate then fails with the connection.
func TestFakeAuthUnexpected(t *testing.T) {
	t.Parallel()
	t.Run("no exchange", func(t *testing.T) {
		fakeBubble(t, func(t *testing.T) {
			c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "a", Version: mqtt.Version5}, &packet.Connack{})
			fc.send(authPacket(packet.ContinueAuthentication, testAuthMethod, []byte("challenge")))
			fakeExpectViolationClose(t, c, fc, packet.V5, packet.ProtocolError)
		})
	})
	t.Run("other method", func(t *testing.T) {
		fakeBubble(t, func(t *testing.T) {
			srv := &testAuthServer{secret: []byte("pencil")}
			res, bc, final, err := authConnect(t, srv, "pencil")
			if err != nil {
				t.Fatal(err)
			}
			bc.Send(t, connackWithAuth(packet.Success, final))
			c, err := fakeConnectDone(t, res, fakeTimeout)
			if err != nil {
				t.Fatal(err)
			}
			fc := fakeWatch(t, bc, fakeTimeout)
			done := make(chan error, 1)
			go func() { done <- c.Reauthenticate(context.Background()) }()
			fc.expect(packet.AUTH)
			fc.send(authPacket(packet.ContinueAuthentication, "PLAIN", nil))
			fakeExpectViolationClose(t, c, fc, packet.V5, packet.ProtocolError)
			if err := <-done; !errors.Is(err, mqtt.ErrConnectionLost) {
				t.Errorf("Reauthenticate: %v, want ErrConnectionLost", err)
			}
		})
	})
}

// TestFakeAuthNeedsAuthenticator checks Reauthenticate without an
// Authenticator: an *ArgumentError, and nothing sent.
func TestFakeAuthNeedsAuthenticator(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "a", Version: mqtt.Version5}, &packet.Connack{})
		if _, ok := errors.AsType[*mqtt.ArgumentError](c.Reauthenticate(context.Background())); !ok {
			t.Error("Reauthenticate without an Authenticator: want *ArgumentError")
		}
		fc.expectNothing()
	})
}

// TestAuthErrorText checks the text of an *AuthError: the method, the step
// and the reason, with a nested AuthError of the same method folded in
// rather than repeating the prefix, and what it wraps.
func TestAuthErrorText(t *testing.T) {
	t.Parallel()
	inner := &mqtt.AuthError{Method: "SCRAM-SHA-256", Reason: "server rejected the exchange", Server: "invalid-proof"}
	outer := &mqtt.AuthError{Method: "SCRAM-SHA-256", Step: "finish", Err: inner}
	want := `mqtt: SCRAM-SHA-256 authentication failed in finish: server rejected the exchange: server says "invalid-proof"`
	if got := outer.Error(); got != want {
		t.Errorf("Error() = %q\nwant %q", got, want)
	}
	if ae, ok := errors.AsType[*mqtt.AuthError](outer); !ok || ae != outer || !errors.Is(outer, mqtt.ErrAuthFailed) {
		t.Errorf("errors.As/Is on %v", outer)
	}
	cause := &mqtt.AuthError{Method: testAuthMethod, Step: "start", Err: context.DeadlineExceeded}
	if !errors.Is(cause, context.DeadlineExceeded) || !errors.Is(cause, mqtt.ErrAuthFailed) {
		t.Errorf("%v does not wrap its cause and ErrAuthFailed", cause)
	}
	if got, want := cause.Error(), "mqtt: TEST-HMAC authentication failed in start: context deadline exceeded"; got != want {
		t.Errorf("Error() = %q\nwant %q", got, want)
	}
}
