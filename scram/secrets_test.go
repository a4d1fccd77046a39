package scram_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/internal/scramtest"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/b4e21b16/mqtt/scram"
)

// secret is the password of TestPasswordNeverShown, spelled so that it
// cannot turn up in the client's output by chance.
const secret = "scram-Jd6cN1"

// shown is everything a client showed: its log output, and the text of the
// errors, events and values it returned, in every fmt form.
type shown struct {
	mu    sync.Mutex
	log   bytes.Buffer
	texts []string
}

func (s *shown) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Write(p)
}

// value records v printed with every verb that shows a value.
func (s *shown) value(v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		s.texts = append(s.texts, fmt.Sprintf(verb, v))
	}
}

// err records err and every error it wraps.
func (s *shown) err(err error) {
	if err == nil {
		return
	}
	s.value(err)
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		s.err(u.Unwrap())
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			s.err(e)
		}
	}
}

// events records the events the client has queued.
func (s *shown) events(c *mqtt.Client) {
	for len(c.Events()) > 0 {
		e := <-c.Events()
		s.value(e)
		s.err(e.Err)
	}
}

// TestPasswordNeverShown runs SCRAM clients with a Debug logger through a
// successful connect and re-authentication, a re-authentication the server
// cannot prove, a wrong password, a bad server signature, a hostile
// iteration count and a password SASLprep refuses, and checks that the
// password appears in no log line, returned error, event or printed value.
func TestPasswordNeverShown(t *testing.T) {
	t.Parallel()
	var out shown
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	connect := func(t *testing.T, b *fakebroker.Broker, password string) <-chan connectResult {
		auth := scram.SHA256("alice", []byte(password))
		out.value(auth)
		log.Info("authenticator", "auth", auth)
		slog.New(slog.NewJSONHandler(&out, nil)).Info("authenticator", "auth", auth)
		cfg := mqtt.Config{Authenticator: auth, Logger: log}
		out.value(cfg)
		return startConnect(b, cfg)
	}

	t.Run("connect and re-authenticate", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := fakebroker.New(t)
			srv := scramtest.NewServer("alice", []byte(secret), 4096)
			res := connect(t, b, secret)
			bc, final, err := connectHandshake(t, b, srv)
			if err != nil {
				t.Fatal(err)
			}
			bc.Send(t, connackWithAuth(packet.Success, scram.MethodSHA256, final))
			c, err := connectDone(t, res)
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			for _, bad := range []bool{false, true} {
				srv.BadSignature = bad
				done := make(chan error, 1)
				go func() { done <- c.Reauthenticate(context.Background()) }()
				a := bc.Read(t).(*packet.Auth)
				final, err := handshake(t, bc, srv, a.Props.AuthData)
				if err != nil {
					t.Fatal(err)
				}
				bc.Send(t, authPacket(packet.Success, scram.MethodSHA256, final))
				err = <-done
				out.err(err)
				if (err != nil) != bad {
					t.Fatalf("Reauthenticate with a bad signature %v: %v", bad, err)
				}
			}
			bc.ExpectClosed(t)
			<-c.Done()
			out.err(c.Err())
			out.events(c)
		})
	})
	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			password string
			setup    func(*scramtest.Server)
		}{
			{"wrong password", secret + "!", nil},
			{"bad server signature", secret, func(s *scramtest.Server) { s.BadSignature = true }},
			{"server error", secret, func(s *scramtest.Server) { s.FinalError = "invalid-proof" }},
			{"iteration count", secret, func(s *scramtest.Server) { s.Iterations = scram.MaxIterations + 1 }},
			{"nonce", secret, func(s *scramtest.Server) { s.WrongNonce = true }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					b := fakebroker.New(t)
					srv := scramtest.NewServer("alice", []byte(secret), 4096)
					if tc.setup != nil {
						tc.setup(srv)
					}
					res := connect(t, b, tc.password)
					bc := accept(t, b)
					cp := bc.ExpectConnect(t)
					first, err := srv.First(cp.Props.AuthData)
					if err != nil {
						t.Fatal(err)
					}
					bc.Send(t, authPacket(packet.ContinueAuthentication, srv.Method(), first))
					if p, err := bc.ReadErr(); err == nil {
						final, err := srv.Final(p.(*packet.Auth).Props.AuthData)
						code := packet.Success
						if err != nil {
							code = packet.NotAuthorized
						}
						bc.Send(t, connackWithAuth(code, scram.MethodSHA256, final))
					}
					_, err = connectDone(t, res)
					out.err(err)
					if err == nil {
						t.Fatal("Connect succeeded")
					}
				})
			})
		}
	})
	t.Run("password refused by SASLprep", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := fakebroker.New(t)
			res := connect(t, b, secret+"\x01")
			_, err := connectDone(t, res)
			out.err(err)
			if err == nil {
				t.Fatal("Connect succeeded")
			}
		})
	})

	out.mu.Lock()
	defer out.mu.Unlock()
	for _, want := range []string{`msg="mqtt: connected"`, `msg="mqtt: connect failed"`, `level=DEBUG msg="mqtt: send" packet=AUTH`} {
		if !strings.Contains(out.log.String(), want) {
			t.Errorf("log lacks %s", want)
		}
	}
	for _, text := range append(out.texts, out.log.String()) {
		for _, s := range []string{secret, fmt.Sprint([]byte(secret)), fmt.Sprintf("%x", secret)} {
			if strings.Contains(strings.ToLower(text), strings.ToLower(s)) {
				t.Errorf("shows the password: %s", text)
			}
		}
	}
	if t.Failed() {
		t.Log(out.log.String())
	}
}
