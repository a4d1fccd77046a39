package scram_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/internal/scramtest"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/b4e21b16/mqtt/scram"
)

// Enhanced authentication (MQTT 5.0 section 4.12) with SCRAM between the
// client and the scripted broker, which plays the server side of SCRAM with
// scramtest.

// timeout bounds each wait; inside a synctest bubble it is fake time.
const timeout = time.Hour

// mechanisms are the constructors with the test servers of their method.
var mechanisms = []struct {
	method    string
	new       func(string, []byte) mqtt.Authenticator
	newServer func(string, []byte, int) *scramtest.Server
}{
	{scram.MethodSHA256, scram.SHA256, scramtest.NewServer},
	{scram.MethodSHA512, scram.SHA512, scramtest.NewServerSHA512},
}

type connectResult struct {
	c   *mqtt.Client
	err error
}

// startConnect runs mqtt.Connect with cfg against b in its own goroutine,
// over MQTT 5.0, without keepalive (the scripts answer no PINGREQ), and
// without reconnection unless cfg asks for it.
func startConnect(b *fakebroker.Broker, cfg mqtt.Config) <-chan connectResult {
	cfg.Servers = []string{b.URL()}
	cfg.Dialer = b.Dial
	cfg.Version = mqtt.Version5
	cfg.KeepAlive = -1
	if cfg.ClientID == "" {
		cfg.ClientID = "scram"
	}
	if cfg.Reconnect == (mqtt.ReconnectConfig{}) {
		cfg.Reconnect.Disable = true
	}
	ch := make(chan connectResult, 1)
	go func() {
		c, err := mqtt.Connect(context.Background(), cfg)
		ch <- connectResult{c, err}
	}()
	return ch
}

// connectDone waits for the result of startConnect and closes a client
// that connected at the end of the test.
func connectDone(t *testing.T, ch <-chan connectResult) (*mqtt.Client, error) {
	t.Helper()
	select {
	case r := <-ch:
		if r.c != nil {
			t.Cleanup(func() { r.c.Close() })
		}
		return r.c, r.err
	case <-time.After(timeout):
		t.Fatal("Connect did not return")
		return nil, nil
	}
}

func accept(t *testing.T, b *fakebroker.Broker) *fakebroker.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	bc, err := b.AcceptContext(ctx)
	if err != nil {
		t.Fatalf("no connection from the client: %v", err)
	}
	return bc
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

func connackWithAuth(code packet.ReasonCode, method string, data []byte) *packet.Connack {
	ack := &packet.Connack{ReasonCode: code}
	ack.Props.AuthMethod = method
	ack.Props.Set(packet.PropAuthMethod)
	if data != nil {
		ack.Props.AuthData = data
		ack.Props.Set(packet.PropAuthData)
	}
	return ack
}

// handshake plays the server side of an exchange that began with
// clientFirst, up to and including the client's final message, and returns
// the server-final-message (or the server's refusal of the proof). The
// client's answer must come in an AUTH Continue authentication of the
// exchange's method [MQTT-4.12.0-2] [MQTT-4.12.0-3].
func handshake(t *testing.T, bc *fakebroker.Conn, srv *scramtest.Server, clientFirst []byte) ([]byte, error) {
	t.Helper()
	first, err := srv.First(clientFirst)
	if err != nil {
		t.Fatalf("server-first: %v", err)
	}
	bc.Send(t, authPacket(packet.ContinueAuthentication, srv.Method(), first))
	a, ok := bc.Read(t).(*packet.Auth)
	if !ok || a.ReasonCode != packet.ContinueAuthentication || a.Props.AuthMethod != srv.Method() {
		t.Fatalf("want AUTH Continue authentication with %s, got %s", srv.Method(), fakebroker.Describe(a))
	}
	return srv.Final(a.Props.AuthData)
}

// connectHandshake accepts the client's connection on b, checks that its
// CONNECT carries the method and a client-first-message, and plays the
// exchange with srv up to the client's final message.
func connectHandshake(t *testing.T, b *fakebroker.Broker, srv *scramtest.Server) (*fakebroker.Conn, []byte, error) {
	t.Helper()
	bc := accept(t, b)
	cp := bc.ExpectConnect(t)
	if cp.Props.AuthMethod != srv.Method() || len(cp.Props.AuthData) == 0 {
		t.Fatalf("CONNECT method %q data %q, want %s with the client-first-message", cp.Props.AuthMethod, cp.Props.AuthData, srv.Method())
	}
	final, err := handshake(t, bc, srv, cp.Props.AuthData)
	return bc, final, err
}

// TestConnectAndReauthenticate checks the whole exchange with each
// mechanism: CONNECT carries the method and the client-first-message, the
// broker's challenge is answered, the CONNACK's server signature is
// verified; then a re-authentication (AUTH 0x19) on the live connection
// succeeds, and one the broker answers with a bad signature ends the
// connection with an *mqtt.AuthError.
func TestConnectAndReauthenticate(t *testing.T) {
	t.Parallel()
	for _, m := range mechanisms {
		t.Run(m.method, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				b := fakebroker.New(t)
				srv := m.newServer("alice", []byte("pencil"), 4096)
				res := startConnect(b, mqtt.Config{Authenticator: m.new("alice", []byte("pencil"))})
				bc, final, err := connectHandshake(t, b, srv)
				if err != nil {
					t.Fatalf("server rejected the proof: %v", err)
				}
				bc.Send(t, connackWithAuth(packet.Success, m.method, final))
				c, err := connectDone(t, res)
				if err != nil {
					t.Fatalf("Connect: %v", err)
				}

				reauth := func() <-chan error {
					done := make(chan error, 1)
					go func() { done <- c.Reauthenticate(context.Background()) }()
					a, ok := bc.Read(t).(*packet.Auth)
					if !ok || a.ReasonCode != packet.ReAuthenticate || a.Props.AuthMethod != m.method {
						t.Fatalf("want AUTH Re-authenticate, got %s", fakebroker.Describe(a))
					}
					final, err := handshake(t, bc, srv, a.Props.AuthData)
					if err != nil {
						t.Fatalf("server rejected the re-authentication proof: %v", err)
					}
					bc.Send(t, authPacket(packet.Success, m.method, final))
					return done
				}
				if err := <-reauth(); err != nil {
					t.Errorf("Reauthenticate: %v", err)
				}
				if err := c.Err(); err != nil {
					t.Fatalf("client stopped: %v", err)
				}

				srv.BadSignature = true
				err = <-reauth()
				if ae, ok := errors.AsType[*mqtt.AuthError](err); !ok || ae.Step != "finish" || ae.Method != m.method || !errors.Is(err, mqtt.ErrAuthFailed) {
					t.Errorf("Reauthenticate with a bad server signature: %v, want an *mqtt.AuthError in finish", err)
				}
				bc.ExpectDisconnect(t)
				bc.ExpectClosed(t)
			})
		})
	}
}

// TestReconnectAuthenticatesAgain checks that the Authenticator runs a new
// exchange, with a new nonce, on each connection of one client.
func TestReconnectAuthenticatesAgain(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := fakebroker.New(t)
		srv := scramtest.NewServer("alice", []byte("pencil"), 4096)
		res := startConnect(b, mqtt.Config{
			Authenticator: scram.SHA256("alice", []byte("pencil")),
			Reconnect:     mqtt.ReconnectConfig{MinDelay: time.Second, MaxDelay: time.Second},
		})
		var firsts []string
		for i := range 3 {
			bc := accept(t, b)
			cp := bc.ExpectConnect(t)
			firsts = append(firsts, string(cp.Props.AuthData))
			final, err := handshake(t, bc, srv, cp.Props.AuthData)
			if err != nil {
				t.Fatalf("connection %d: server rejected the proof: %v", i, err)
			}
			bc.Send(t, connackWithAuth(packet.Success, scram.MethodSHA256, final))
			if i == 0 {
				if _, err := connectDone(t, res); err != nil {
					t.Fatalf("Connect: %v", err)
				}
			}
			bc.Close() // the client reconnects
		}
		if firsts[0] == firsts[1] || firsts[1] == firsts[2] {
			t.Errorf("client-first-messages repeat a nonce: %q", firsts)
		}
	})
}

// TestConnectRefused checks the failures of a connect: a broker that
// refuses the proof answers with a CONNACK reason code (a
// *mqtt.ConnectError); a server whose signature does not verify, or that
// asks for more than MaxIterations, is refused by the client with an
// *mqtt.AuthError wrapping mqtt.ErrAuthFailed, and the connection is
// closed.
func TestConnectRefused(t *testing.T) {
	t.Parallel()
	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			b := fakebroker.New(t)
			srv := scramtest.NewServer("alice", []byte("pencil"), 4096)
			res := startConnect(b, mqtt.Config{Authenticator: scram.SHA256("alice", []byte("crayon"))})
			bc, final, err := connectHandshake(t, b, srv)
			if err == nil {
				t.Fatal("the server accepted a wrong password")
			}
			bc.Send(t, connackWithAuth(packet.NotAuthorized, scram.MethodSHA256, final))
			_, err = connectDone(t, res)
			if ce, ok := errors.AsType[*mqtt.ConnectError](err); !ok || ce.Code != packet.NotAuthorized {
				t.Errorf("Connect: %v, want a *mqtt.ConnectError with Not authorized", err)
			}
		})
	})
	t.Run("bad server signature", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			b := fakebroker.New(t)
			srv := scramtest.NewServer("alice", []byte("pencil"), 4096)
			srv.BadSignature = true
			res := startConnect(b, mqtt.Config{Authenticator: scram.SHA256("alice", []byte("pencil"))})
			bc, final, err := connectHandshake(t, b, srv)
			if err != nil {
				t.Fatal(err)
			}
			bc.Send(t, connackWithAuth(packet.Success, scram.MethodSHA256, final))
			_, err = connectDone(t, res)
			if ae, ok := errors.AsType[*mqtt.AuthError](err); !ok || ae.Step != "finish" || !errors.Is(err, mqtt.ErrAuthFailed) {
				t.Errorf("Connect: %v, want an *mqtt.AuthError in finish", err)
			}
			bc.ExpectClosed(t)
		})
	})
	t.Run("iteration count too high", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			b := fakebroker.New(t)
			srv := scramtest.NewServer("alice", []byte("pencil"), scram.MaxIterations+1)
			res := startConnect(b, mqtt.Config{Authenticator: scram.SHA256("alice", []byte("pencil"))})
			bc := accept(t, b)
			cp := bc.ExpectConnect(t)
			first, err := srv.First(cp.Props.AuthData)
			if err != nil {
				t.Fatal(err)
			}
			bc.Send(t, authPacket(packet.ContinueAuthentication, srv.Method(), first))
			_, err = connectDone(t, res)
			if ae, ok := errors.AsType[*mqtt.AuthError](err); !ok || ae.Step != "continue" || !errors.Is(err, mqtt.ErrAuthFailed) {
				t.Errorf("Connect: %v, want an *mqtt.AuthError in continue", err)
			}
			bc.ExpectClosed(t)
		})
	})
}
