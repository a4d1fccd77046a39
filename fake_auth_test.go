package mqtt_test

import (
	"context"
	"errors"
	"testing"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/internal/scramtest"
	"github.com/b4e21b16/mqtt/packet"
)

// Enhanced authentication (MQTT 5.0 section 4.12) with SCRAM-SHA-256 against
// the scripted broker, which runs the server side of SCRAM.

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

// scramHandshake plays the server side of a SCRAM exchange that started
// with clientFirst, up to and including the client's final message, and
// returns the server-final-message (or the server's error).
func scramHandshake(t *testing.T, bc *fakebroker.Conn, srv *scramtest.Server, clientFirst []byte) ([]byte, error) {
	t.Helper()
	first, err := srv.First(clientFirst)
	if err != nil {
		t.Fatalf("server-first: %v", err)
	}
	bc.Send(t, authPacket(packet.ContinueAuthentication, srv.Method(), first))
	a, ok := bc.Read(t).(*packet.Auth)
	if !ok || a.ReasonCode != packet.ContinueAuthentication || a.Props.AuthMethod != "SCRAM-SHA-256" {
		t.Fatalf("want AUTH Continue authentication with the method, got %s", fakebroker.Describe(a))
	}
	return srv.Final(a.Props.AuthData)
}

// scramConnect starts a client with a SCRAM-SHA-256 Authenticator for
// password against a new scripted broker, and plays the server side of the
// exchange with srv up to the client's final message. It returns the
// pending Connect, the broker side of the connection and the
// server-final-message (or the server's refusal of the proof).
func scramConnect(t *testing.T, srv *scramtest.Server, password string) (<-chan fakeConnectResult, *fakebroker.Conn, []byte, error) {
	t.Helper()
	b := fakebroker.New(t)
	res := fakeStartConnect(t, context.Background(), b, mqtt.Config{ClientID: "a", Version: mqtt.Version5,
		Authenticator: mqtt.NewSCRAMSHA256("alice", []byte(password))})
	bc := fakeAccept(t, b, fakeTimeout)
	cp := bc.ExpectConnect(t)
	if cp.Props.AuthMethod != "SCRAM-SHA-256" || len(cp.Props.AuthData) == 0 {
		t.Fatalf("CONNECT method %q data %q, want SCRAM-SHA-256 with the client-first-message", cp.Props.AuthMethod, cp.Props.AuthData)
	}
	final, err := scramHandshake(t, bc, srv, cp.Props.AuthData)
	return res, bc, final, err
}

func connackWithAuth(code packet.ReasonCode, data []byte) *packet.Connack {
	ack := &packet.Connack{ReasonCode: code}
	ack.Props.AuthMethod = "SCRAM-SHA-256"
	ack.Props.Set(packet.PropAuthMethod)
	if data != nil {
		ack.Props.AuthData = data
		ack.Props.Set(packet.PropAuthData)
	}
	return ack
}

// TestFakeAuthSCRAM checks the whole exchange: CONNECT carries the method
// and the client-first-message, the broker's AUTH challenge
// (0x18) is answered with an AUTH of the same method [MQTT-4.12.0-2]
// [MQTT-4.12.0-3], and the CONNACK's server signature is verified; then a
// re-authentication (AUTH 0x19) on the live connection succeeds.
func TestFakeAuthSCRAM(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		srv := scramtest.NewServer("alice", []byte("pencil"), 4096)
		res, bc, final, err := scramConnect(t, srv, "pencil")
		if err != nil {
			t.Fatalf("server rejected the proof: %v", err)
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
		final, err = scramHandshake(t, bc, srv, a.Props.AuthData)
		if err != nil {
			t.Fatalf("server rejected the re-authentication proof: %v", err)
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

// TestFakeAuthRefused checks the failures: a broker that refuses the proof
// answers with a CONNACK reason code (Connect returns a *ConnectError); a
// server whose signature does not verify is refused by the client (an
// *AuthError wrapping ErrAuthFailed) and the connection is closed.
func TestFakeAuthRefused(t *testing.T) {
	t.Parallel()
	t.Run("wrong password", func(t *testing.T) {
		fakeBubble(t, func(t *testing.T) {
			srv := scramtest.NewServer("alice", []byte("pencil"), 4096)
			res, bc, final, err := scramConnect(t, srv, "crayon")
			if err == nil {
				t.Fatal("the server accepted a wrong password")
			}
			bc.Send(t, connackWithAuth(packet.NotAuthorized, final))
			_, err = fakeConnectDone(t, res, fakeTimeout)
			if ce, ok := errors.AsType[*mqtt.ConnectError](err); !ok || ce.Code != packet.NotAuthorized {
				t.Errorf("Connect: %v, want a *ConnectError with Not authorized", err)
			}
		})
	})
	t.Run("bad server signature", func(t *testing.T) {
		fakeBubble(t, func(t *testing.T) {
			srv := scramtest.NewServer("alice", []byte("pencil"), 4096)
			srv.BadSignature = true
			res, bc, final, err := scramConnect(t, srv, "pencil")
			if err != nil {
				t.Fatal(err)
			}
			bc.Send(t, connackWithAuth(packet.Success, final))
			_, err = fakeConnectDone(t, res, fakeTimeout)
			ae, ok := errors.AsType[*mqtt.AuthError](err)
			if !ok || ae.Step != "finish" || !errors.Is(err, mqtt.ErrAuthFailed) {
				t.Errorf("Connect: %v, want an *AuthError at finish", err)
			}
			bc.ExpectClosed(t)
		})
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
			fc.send(authPacket(packet.ContinueAuthentication, "SCRAM-SHA-256", []byte("r=x")))
			fakeExpectViolationClose(t, c, fc, packet.V5, packet.ProtocolError)
		})
	})
	t.Run("other method", func(t *testing.T) {
		fakeBubble(t, func(t *testing.T) {
			srv := scramtest.NewServer("alice", []byte("pencil"), 4096)
			res, bc, final, err := scramConnect(t, srv, "pencil")
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
