//go:build !js

package websocket_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/b4e21b16/mqtt/websocket"
	"github.com/google/go-cmp/cmp"
)

// connectResult is what a Connect running in its own goroutine returned.
type connectResult struct {
	c   *mqtt.Client
	err error
}

// connectAsync runs Connect with cfg in a goroutine, so that the test can
// play the server meanwhile; a client it returns is closed when the test
// ends.
func connectAsync(t *testing.T, cfg mqtt.Config) <-chan connectResult {
	t.Helper()
	res := make(chan connectResult, 1)
	ctx := testContext(t)
	go func() {
		c, err := mqtt.Connect(ctx, cfg)
		if c != nil {
			t.Cleanup(func() { c.Close() })
		}
		res <- connectResult{c, err}
	}()
	return res
}

// TestHandshakeRequest checks the upgrade request: the request target from
// the URL's path and query, the Host, the "mqtt" subprotocol
// [MQTT-6.0.0-3], the transport's header fields, and no credentials from
// the URL's user info.
func TestHandshakeRequest(t *testing.T) {
	t.Parallel()
	type request struct {
		Method, Target, Proto, Host            string
		Upgrade, Connection, Version, Protocol string
		Authorization                          string
		Multi                                  []string
	}
	for _, tc := range []struct {
		name   string
		path   string
		header http.Header
		want   func(host string) request
	}{
		{"header fields", "/mqtt/ws?token=a%20b#fragment",
			http.Header{"Authorization": {"Bearer secret"}, "X-Multi": {"1", "2"}},
			func(host string) request {
				return request{Target: "/mqtt/ws?token=a%20b", Host: host, Authorization: "Bearer secret", Multi: []string{"1", "2"}}
			}},
		{"empty path", "", nil, func(host string) request { return request{Target: "/", Host: host} }},
		{"host header", "/mqtt", http.Header{"host": {"broker.example"}},
			func(string) request { return request{Target: "/mqtt", Host: "broker.example"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startWSServer(t)
			url := strings.Replace(s.url(tc.path), "ws://", "ws://alice:password@", 1)
			res := connectAsync(t, mqtt.Config{Servers: []string{url}, Version: mqtt.Version311,
				Transports: map[string]mqtt.Transport{"ws": &websocket.Transport{Header: tc.header}}})
			r := <-s.requests
			(<-s.peers).accept(packet.V311)
			if r := <-res; r.err != nil {
				t.Fatalf("Connect: %v", r.err)
			}
			got := request{
				Method: r.Method, Target: r.RequestURI, Proto: r.Proto, Host: r.Host,
				Upgrade: r.Header.Get("Upgrade"), Connection: r.Header.Get("Connection"),
				Version: r.Header.Get("Sec-WebSocket-Version"), Protocol: r.Header.Get("Sec-WebSocket-Protocol"),
				Authorization: r.Header.Get("Authorization"), Multi: r.Header.Values("X-Multi"),
			}
			want := tc.want(s.srv.Listener.Addr().String())
			want.Method, want.Proto, want.Upgrade, want.Connection, want.Version, want.Protocol = "GET", "HTTP/1.1", "websocket", "Upgrade", "13", "mqtt"
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("upgrade request (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHandshakeRefused checks that an HTTP status other than 101 fails
// Connect with a *websocket.StatusError, and that handshake responses that
// break RFC 6455 or MQTT's rules fail it with an error saying what is
// wrong.
func TestHandshakeRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		answer func(key string) string
		status int    // for a *StatusError
		want   string // in the error text
	}{
		{"unauthorized", func(string) string { return "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n" },
			401, `the server answered "401 Unauthorized" instead of 101 Switching Protocols`},
		{"forbidden", func(string) string { return "HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope\n" },
			403, `"403 Forbidden"`},
		{"redirect", func(string) string {
			return "HTTP/1.1 302 Found\r\nLocation: ws://elsewhere.example/\r\nContent-Length: 0\r\n\r\n"
		}, 302, `"302 Found"`},
		{"wrong accept", func(string) string { return goodAnswer("another key") }, 0, "Sec-WebSocket-Accept"},
		{"other subprotocol", func(key string) string {
			return strings.Replace(goodAnswer(key), "Protocol: mqtt", "Protocol: wamp", 1)
		}, 0, `unexpected Sec-WebSocket-Protocol from server: "wamp"`},
		{"extension", func(key string) string {
			return strings.Replace(goodAnswer(key), "\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n", 1)
		}, 0, "unsupported extensions"},
		{"no upgrade", func(key string) string {
			return strings.Replace(goodAnswer(key), "Upgrade: websocket", "Upgrade: h2c", 1)
		}, 0, `Upgrade header "h2c"`},
		{"not HTTP", func(string) string { return "SSH-2.0-OpenSSH_9.2\r\n" }, 0, "malformed HTTP"},
		{"closed", func(string) string { return "" }, 0, "EOF"},
		{"endless header", func(string) string { return "HTTP/1.1 101 OK\r\nX: " + strings.Repeat("x", 70<<10) + "\r\n\r\n" },
			0, "header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := rawServer(t, tc.answer)
			url := "ws://" + addr + "/mqtt?token=hunter2"
			_, err := mqtt.Connect(testContext(t), mqtt.Config{Servers: []string{url}})
			if err == nil {
				t.Fatal("Connect succeeded")
			}
			se, ok := errors.AsType[*websocket.StatusError](err)
			if tc.status != 0 && (!ok || se.StatusCode != tc.status) {
				t.Errorf("Connect error %v, want a *websocket.StatusError with status %d", err, tc.status)
			}
			if msg := err.Error(); !hasAll(msg, "ws://"+addr+"/mqtt?token=xxxxx", "WebSocket handshake", tc.want) || strings.Contains(msg, "hunter2") {
				t.Errorf("Connect error %q: want the redacted URL, the handshake and %q", msg, tc.want)
			}
		})
	}
}

// TestHandshakeBadHeader checks that header fields the handshake sets
// itself, and fields that would break the request, are refused before
// anything is dialed.
func TestHandshakeBadHeader(t *testing.T) {
	t.Parallel()
	for _, h := range []http.Header{
		{"Sec-WebSocket-Protocol": {"other"}},
		{"Sec-Websocket-Extensions": {"permessage-deflate"}},
		{"connection": {"close"}},
		{"Upgrade": {"h2c"}},
		{"Content-Length": {"1"}},
		{"X-Token": {"a\r\nInjected: yes"}},
		{"Bad Name": {"x"}},
		{"": {"x"}},
	} {
		_, err := mqtt.Connect(testContext(t), mqtt.Config{
			Servers:    []string{"ws://127.0.0.1:1/mqtt"},
			Transports: map[string]mqtt.Transport{"ws": &websocket.Transport{Header: h}},
			Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
				t.Errorf("header %q: dialed %s %s", h, network, addr)
				return nil, errors.New("must not dial")
			},
		})
		if ae, ok := errors.AsType[*mqtt.ArgumentError](err); !ok || ae.What != "WebSocket header" {
			t.Errorf("header %q: Connect error %v, want an *ArgumentError for the WebSocket header", h, err)
		}
	}
}

// TestHandshakeTimeout checks that ConnectTimeout bounds the TLS and
// WebSocket handshakes with a server that accepts the connection and never
// answers, and the CONNECT/CONNACK exchange with one that completes the
// WebSocket handshake only: the WebSocket then ends with status 1000.
func TestHandshakeTimeout(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // held open, never answered
		}
	})
	const timeout = 300 * time.Millisecond
	check := func(t *testing.T, url string) {
		t.Helper()
		start := time.Now()
		c, err := mqtt.Connect(testContext(t), mqtt.Config{Servers: []string{url}, ConnectTimeout: timeout, Version: mqtt.Version311})
		if err == nil {
			c.Close()
			t.Error("Connect succeeded")
			return
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Connect error %v, want one wrapping context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d < timeout || d > timeout+5*time.Second {
			t.Errorf("Connect returned after %v, want about %v", d, timeout)
		}
	}
	for _, scheme := range schemes {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			check(t, scheme+"://"+ln.Addr().String()+"/mqtt")
		})
	}
	t.Run("no CONNACK", func(t *testing.T) {
		t.Parallel()
		s := startWSServer(t)
		checked := make(chan struct{})
		go func() {
			defer close(checked)
			check(t, s.url("/mqtt"))
		}()
		defer func() { <-checked }()
		p := <-s.peers
		if pk := p.readPacket(packet.V311); pk.Type() != packet.CONNECT {
			t.Fatalf("first packet %v, want CONNECT", pk.Type())
		}
		if code := p.readClose(); code != 1000 {
			t.Errorf("close status %d, want 1000", code)
		}
	})
}
