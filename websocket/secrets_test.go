//go:build !js

package websocket_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/b4e21b16/mqtt/websocket"
)

// Secrets carried by the configurations of TestSecretsNeverShown. Each is
// spelled so that it cannot turn up in the client's output by chance.
const (
	secretPassword = "pw-Vq3nT8"                  // Config.Password, which the broker accepts
	secretWrong    = "wrong-Bx4sF9"               // a Config.Password the broker refuses
	secretToken    = "tok-Hy5mR2"                 // a query value in WebSocket URLs
	secretHeader   = "Bearer hdr-Lp7wK4"          // the Authorization header value
	secretURLPass  = "up1-Qz7x@up2-Kp9v@up3-Mw4r" // a URL password holding '@'
	secretFragment = "frag-Ik2b"                  // a URL fragment
)

// secretPieces are the strings that must not appear anywhere: the secrets
// above, or the pieces of them that a URL parser would cut out and quote.
var secretPieces = []string{
	"pw-Vq3nT8", "wrong-Bx4sF9", "tok-Hy5mR2", "hdr-Lp7wK4",
	"up1-Qz7x", "up2-Kp9v", "up3-Mw4r", "frag-Ik2b",
}

// shownText is everything a client showed: its log output, and the text of
// the errors and events it returned, in every fmt form.
type shownText struct {
	mu    sync.Mutex
	log   bytes.Buffer // guarded by mu
	texts []labeledText
}

type labeledText struct{ what, text string }

func (s *shownText) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Write(p)
}

// logText returns what was logged.
func (s *shownText) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// logger logs at Debug level, as text, into s.
func (s *shownText) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// value records v printed with every verb that shows a value.
func (s *shownText) value(what string, v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		s.texts = append(s.texts, labeledText{what + " " + verb, fmt.Sprintf(verb, v)})
	}
}

// err records err and every error it wraps.
func (s *shownText) err(what string, err error) {
	if err == nil {
		return
	}
	s.value(what, err)
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		s.err(what+" wrapping", u.Unwrap())
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			s.err(what+" wrapping", e)
		}
	}
}

// event records e and its error.
func (s *shownText) event(e mqtt.Event) {
	s.value("Event "+e.Kind.String(), e)
	s.err("Event "+e.Kind.String()+" Err", e.Err)
}

// check fails the test for every secret piece found in what was shown.
func (s *shownText) check(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	texts := append([]labeledText{{"log", s.log.String()}}, s.texts...)
	s.mu.Unlock()
	for _, secret := range secretPieces {
		for _, x := range texts {
			if strings.Contains(strings.ToLower(x.text), strings.ToLower(secret)) {
				t.Errorf("%s shows %q:\n%s", x.what, secret, x.text)
			}
		}
	}
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// refusingServer returns the address of an HTTP server that answers every
// request with status, and a channel of the requests it got.
func refusingServer(t *testing.T, status int) (string, <-chan *http.Request) {
	t.Helper()
	requests := make(chan *http.Request, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case requests <- r.Clone(context.Background()):
		default:
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), requests
}

// TestSecretsNeverShown is the WebSocket part of the root package's test of
// the same name: clients whose WebSocket URLs hold a password with '@' and
// a token in the query, and whose transport sends an Authorization header,
// go through successful, lost and failed connections (refused CONNACK,
// unreachable server, upgrade refused with 401 and 403, TLS to a plain
// listener); none of the secrets may appear in a log line, an error or an
// event.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{WebSocket: true, Users: map[string]string{"alice": secretPassword}})
	wsAddr := strings.TrimPrefix(b.WebSocketURL(), "ws://")
	down := closedAddr(t)
	wsURL := func(addr string) string {
		return "ws://alice:" + secretURLPass + "@" + addr + "/mqtt?token=" + secretToken + "&x=1"
	}
	tr := &websocket.Transport{Header: http.Header{"Authorization": {secretHeader}}}
	transports := map[string]mqtt.Transport{"ws": tr, "wss": tr}
	var shown shownText
	log := shown.logger()

	t.Run("connect, reconnect and disconnect", func(t *testing.T) {
		ctx := testContext(t)
		dialed := make(chan net.Conn, 8)
		c, err := mqtt.Connect(ctx, mqtt.Config{
			Servers:    []string{wsURL(down), wsURL(wsAddr)},
			ClientID:   uniqueID(t),
			Username:   "alice",
			Password:   []byte(secretPassword),
			Transports: transports,
			Logger:     log,
			Reconnect:  mqtt.ReconnectConfig{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond},
			Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var d net.Dialer
				nc, err := d.DialContext(ctx, network, addr)
				if err == nil {
					select {
					case dialed <- nc:
					default:
					}
				}
				return nc, err
			},
		})
		shown.err("Connect", err)
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		defer c.Close()
		if err := c.Publish(ctx, mqtt.Message{Topic: "secrets/a", QoS: mqtt.AtLeastOnce}); err != nil {
			shown.err("Publish", err)
			t.Fatalf("Publish: %v", err)
		}
		// Cut the connection: the client reconnects, first trying the
		// server where nothing listens.
		(<-dialed).Close()
		connected := 0
		for connected < 2 {
			select {
			case e := <-c.Events():
				shown.event(e)
				if e.Kind == mqtt.EventConnected {
					connected++
					if want := "ws://alice:xxxxx@" + wsAddr + "/mqtt?token=xxxxx&x=xxxxx"; e.Server != want {
						t.Errorf("EventConnected.Server = %q, want %q", e.Server, want)
					}
				}
			case <-ctx.Done():
				t.Fatal("no reconnection")
			}
		}
		if err := c.Publish(ctx, mqtt.Message{Topic: "secrets/b", QoS: mqtt.AtLeastOnce}); err != nil {
			shown.err("Publish", err)
			t.Fatalf("Publish after reconnecting: %v", err)
		}
		err = c.Disconnect(ctx)
		shown.err("Disconnect", err)
		shown.err("Err", c.Err())
		for len(c.Events()) > 0 {
			shown.event(<-c.Events())
		}
		if n := c.Stats().EventsDropped; n > 0 {
			t.Errorf("%d events dropped, not checked", n)
		}
	})

	t.Run("CONNACK refused", func(t *testing.T) {
		_, err := mqtt.Connect(testContext(t), mqtt.Config{
			Servers:    []string{wsURL(wsAddr)},
			ClientID:   uniqueID(t),
			Username:   "alice",
			Password:   []byte(secretWrong),
			Transports: transports,
			Logger:     log,
		})
		shown.err("Connect", err)
		if _, ok := errors.AsType[*mqtt.ConnectError](err); !ok {
			t.Errorf("Connect error %v, want a *ConnectError", err)
		}
	})

	t.Run("unreachable, upgrade refused, TLS refused", func(t *testing.T) {
		ctx := testContext(t)
		addr401, requests := refusingServer(t, http.StatusUnauthorized)
		addr403, _ := refusingServer(t, http.StatusForbidden)
		_, err := mqtt.Connect(ctx, mqtt.Config{
			Servers: []string{
				wsURL(down), wsURL(addr401), wsURL(addr403),
				"wss://alice:" + secretURLPass + "@" + wsAddr + "/mqtt?token=" + secretToken + "#" + secretFragment, // TLS to a plain listener
			},
			ClientID:       uniqueID(t),
			Username:       "alice",
			Password:       []byte(secretPassword),
			Transports:     transports,
			Logger:         log,
			ConnectTimeout: 5 * time.Second,
		})
		shown.err("Connect", err)
		if err == nil {
			t.Fatal("Connect succeeded")
		}
		// The secrets are sent where they belong.
		var r *http.Request
		select {
		case r = <-requests:
		case <-ctx.Done():
			t.Fatal("no WebSocket request")
		}
		if r.URL.RawQuery != "token="+secretToken+"&x=1" || r.Header.Get("Authorization") != secretHeader {
			t.Errorf("WebSocket request with query %q and Authorization %q, want the configured ones",
				r.URL.RawQuery, r.Header.Get("Authorization"))
		}
	})

	logged := shown.logText()
	for _, want := range []string{
		`msg="mqtt: connected"`,
		`msg="mqtt: connection lost"`,
		`msg="mqtt: reconnect attempt failed"`,
		`msg="mqtt: connect failed"`,
		`msg="mqtt: disconnected"`,
		`level=DEBUG msg="mqtt: send" packet=PUBLISH`,
	} {
		if !strings.Contains(logged, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	shown.check(t)
	if t.Failed() {
		t.Log(logged)
	}
}
