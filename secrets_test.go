package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/b4e21b16/mqtt/internal/fakebroker"
	"github.com/b4e21b16/mqtt/packet"
)

// Secrets carried by the configurations of TestSecretsNeverShown. Each is
// spelled so that it cannot turn up in the client's output by chance.
const (
	secretPassword = "pw-Vq3nT8"                  // Config.Password, which the broker accepts
	secretWrong    = "wrong-Bx4sF9"               // a Config.Password the broker refuses
	secretToken    = "tok-Hy5mR2"                 // a query value in URLs
	secretURLPass  = "up1-Qz7x@up2-Kp9v@up3-Mw4r" // a URL password holding '@'
	secretSlash    = "sl1-Ty8g/sl2-Rc3h"          // a URL password holding '/'
	secretEscape   = "es1-Wn2%Zq"                 // a URL password with a bad %-escape
	secretNumeric  = "4711/num-Gh5j"              // a URL password that parses as a port and a path
	secretAuth     = "auth-Jd6cN1"                // the Authenticator's secret
	secretQuery    = "qs1-Fe3v@qs2-Xo8p"          // a query value holding '@'
	secretNoScheme = "ns1-Ua4z"                   // the password of a URL without a scheme
	secretRefToken = "ref-Cw9d"                   // a query value in a broker's Server Reference
	secretFragment = "frag-Ik2b"                  // a URL fragment
)

// secretPieces are the strings that must not appear anywhere: the secrets
// above, or the pieces of them that a URL parser would cut out and quote.
// The 4711 of secretNumeric is left out, as a port number may hold it.
var secretPieces = []string{
	"pw-Vq3nT8", "wrong-Bx4sF9", "tok-Hy5mR2",
	"up1-Qz7x", "up2-Kp9v", "up3-Mw4r",
	"sl1-Ty8g", "sl2-Rc3h",
	"es1-Wn2", "%Zq",
	"num-Gh5j",
	"auth-Jd6cN1",
	"qs1-Fe3v", "qs2-Xo8p",
	"ns1-Ua4z",
	"frag-Ik2b",
	"ref-Cw9d",
}

// shownText is everything a client showed: its log output, and the text of
// the errors, events and values it returned, in every fmt form.
type shownText struct {
	log   syncBuffer
	mu    sync.Mutex
	texts []labeledText
}

type labeledText struct{ what, text string }

// logger logs at Debug level, as text, into s.
func (s *shownText) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(&s.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
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

// check fails the test for every secret fragment found in what was shown.
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

// TestSecretsNeverShown runs clients whose configuration holds secrets (a
// password, a token in the URL's query, a password with '@' in the URL's
// user info, an Authenticator's secret) through successful, lost,
// redirected and failed connections and unparseable URLs, and checks that
// none of the secrets appears in any log line, returned error or event. The
// Authenticator is testAuth, which prints its secret: the client must never
// print or log it (how a real mechanism prints itself is tested with it, as
// in package scram). The WebSocket transport's part (upgrade headers,
// refused handshakes) is checked by the same test in package websocket.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Users: map[string]string{"alice": secretPassword}})
	down := closedAddr(t)
	serverURL := func(addr string) string {
		return "mqtt://alice:" + secretURLPass + "@" + addr + "/mqtt?token=" + secretToken + "&x=1"
	}
	var shown shownText
	log := shown.logger()

	t.Run("connect, reconnect and disconnect", func(t *testing.T) {
		ctx := testContext(t)
		dialed := make(chan net.Conn, 8)
		c, err := mqtt.Connect(ctx, mqtt.Config{
			Servers:   []string{serverURL(down), serverURL(b.Addr())},
			ClientID:  uniqueID(t),
			Username:  "alice",
			Password:  []byte(secretPassword),
			Logger:    log,
			Reconnect: mqtt.ReconnectConfig{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond},
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
					if want := "mqtt://alice:xxxxx@" + b.Addr() + "/mqtt?token=xxxxx&x=xxxxx"; e.Server != want {
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
			Servers:  []string{serverURL(b.Addr()), "tcp://alice:" + secretURLPass + "@" + b.Addr() + "/?token=" + secretToken},
			ClientID: uniqueID(t),
			Username: "alice",
			Password: []byte(secretWrong),
			Logger:   log,
		})
		shown.err("Connect", err)
		if _, ok := errors.AsType[*mqtt.ConnectError](err); !ok {
			t.Errorf("Connect error %v, want a *ConnectError", err)
		}
	})

	t.Run("enhanced authentication refused", func(t *testing.T) {
		auth := &testAuth{user: "alice", secret: secretAuth}
		_, err := mqtt.Connect(testContext(t), mqtt.Config{
			Servers:       []string{serverURL(b.Addr())},
			ClientID:      uniqueID(t),
			Version:       mqtt.Version5,
			Authenticator: auth,
			Logger:        log,
		})
		shown.err("Connect", err)
		if err == nil {
			t.Error("Connect succeeded with an authentication method the broker does not have")
		}
	})

	t.Run("unreachable, TLS refused, no transport", func(t *testing.T) {
		_, err := mqtt.Connect(testContext(t), mqtt.Config{
			Servers: []string{
				serverURL(down),
				"mqtts://alice:" + secretURLPass + "@" + b.Addr() + "/mqtt?token=" + secretToken, // TLS to a plain listener
				"mqtt://alice:" + secretURLPass + "@" + down + "?token=" + secretToken + "#" + secretFragment,
			},
			ClientID:       uniqueID(t),
			Username:       "alice",
			Password:       []byte(secretPassword),
			Logger:         log,
			ConnectTimeout: 5 * time.Second,
		})
		shown.err("Connect", err)
		if err == nil {
			t.Fatal("Connect succeeded")
		}
		// No transport serves ws:// in this package's tests.
		_, err = mqtt.Connect(testContext(t), mqtt.Config{
			Servers: []string{"ws://alice:" + secretURLPass + "@" + b.Addr() + "/mqtt?token=" + secretToken + "#" + secretFragment},
			Logger:  log,
		})
		shown.err("Connect", err)
		if err == nil {
			t.Fatal("Connect to a ws:// URL succeeded without a WebSocket transport")
		}
	})

	t.Run("unparseable URLs", func(t *testing.T) {
		for _, u := range []string{
			"mqtt://alice:" + secretURLPass + "@127.0.0.1:18x3/?token=" + secretToken,
			"ws://alice:" + secretSlash + "@127.0.0.1/mqtt?token=" + secretToken,
			"ws://alice:" + secretEscape + "@127.0.0.1/mqtt?token=" + secretToken,
			"wss://127.0.0.1:port/mqtt?token=" + secretToken + "&q=" + secretQuery,
			"alice:" + secretNoScheme + "@127.0.0.1:1883",
			"mqtt://alice:" + secretNumeric + "@127.0.0.1:1883",
		} {
			_, err := mqtt.Connect(testContext(t), mqtt.Config{
				Servers: []string{u},
				Logger:  log,
				Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
					return nil, errors.New("the test dials nothing")
				},
			})
			shown.err("Connect", err)
			if err == nil {
				t.Errorf("Connect to %q succeeded", u)
			}
		}
	})

	t.Run("redirect", func(t *testing.T) {
		ctx := testContext(t)
		fb := fakebroker.NewTCP(t)
		type result struct {
			c   *mqtt.Client
			err error
		}
		res := make(chan result, 1)
		go func() {
			c, err := mqtt.Connect(ctx, mqtt.Config{
				Servers:         []string{"mqtt://alice:" + secretURLPass + "@" + fb.Addr() + "/?token=" + secretToken},
				ClientID:        uniqueID(t),
				Version:         mqtt.Version5,
				Username:        "alice",
				Password:        []byte(secretPassword),
				FollowRedirects: true,
				Logger:          log,
			})
			res <- result{c, err}
		}()
		bc := fb.Accept(t)
		bc.ExpectConnect(t)
		ack := &packet.Connack{ReasonCode: packet.UseAnotherServer}
		ack.Props.ServerReference = b.URL() + "/?token=" + secretRefToken
		ack.Props.Set(packet.PropServerReference)
		bc.Send(t, ack)
		r := <-res
		shown.err("Connect", r.err)
		if r.err != nil {
			t.Fatalf("Connect: %v", r.err)
		}
		err := r.c.Disconnect(ctx)
		shown.err("Disconnect", err)
		for len(r.c.Events()) > 0 {
			shown.event(<-r.c.Events())
		}
		bc.Close()
	})

	logged := shown.log.String()
	for _, want := range []string{
		`msg="mqtt: connected"`,
		`msg="mqtt: connection lost"`,
		`msg="mqtt: reconnect attempt failed"`,
		`msg="mqtt: connect failed"`,
		`msg="mqtt: broker redirects the client"`,
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
