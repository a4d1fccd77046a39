//go:build !js

package websocket_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/b4e21b16/mqtt/packet"
	cws "github.com/coder/websocket"
)

// wsServer is a WebSocket server for tests, on net/http and
// coder/websocket: its handler records each upgrade request, accepts it
// with the "mqtt" subprotocol and hands the connection to the test as a
// *peer, which plays the broker.
type wsServer struct {
	srv      *httptest.Server
	requests chan *http.Request
	peers    chan *peer
}

func startWSServer(t *testing.T) *wsServer {
	t.Helper()
	s := &wsServer{requests: make(chan *http.Request, 1), peers: make(chan *peer, 1)}
	done := make(chan struct{})
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests <- r.Clone(context.Background())
		ws, err := cws.Accept(w, r, &cws.AcceptOptions{Subprotocols: []string{"mqtt"}})
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer ws.CloseNow()
		s.peers <- &peer{t: t, ws: ws}
		<-done // the test owns the connection until it ends
	}))
	t.Cleanup(s.srv.Close)
	t.Cleanup(func() { close(done) })
	return s
}

// url returns the server's ws:// URL with path.
func (s *wsServer) url(path string) string {
	return "ws://" + s.srv.Listener.Addr().String() + path
}

// rawServer answers every request with what answer returns for the
// request's Sec-WebSocket-Key, written on the hijacked connection, and
// then closes it.
func rawServer(t *testing.T, answer func(key string) string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, answer(r.Header.Get("Sec-WebSocket-Key"))); err != nil {
			t.Errorf("writing the handshake response: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// goodAnswer is the handshake response of a conforming MQTT WebSocket
// server (RFC 6455, 4.2.2).
func goodAnswer(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
}

// peer is the server's end of a WebSocket connection. Read reads the
// payload of the client's binary messages as a stream, so that packet.Read
// can decode the MQTT packets in it.
type peer struct {
	t   *testing.T
	ws  *cws.Conn
	msg io.Reader // the rest of the message being read
}

func (p *peer) Read(b []byte) (int, error) {
	for {
		if p.msg == nil {
			typ, r, err := p.ws.Reader(context.Background())
			if err != nil {
				return 0, err
			}
			if typ != cws.MessageBinary {
				return 0, fmt.Errorf("client sent a message of type %v", typ)
			}
			p.msg = r
		}
		n, err := p.msg.Read(b)
		if errors.Is(err, io.EOF) {
			p.msg, err = nil, nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// readPacket reads the client's next packet.
func (p *peer) readPacket(v packet.Version) packet.Packet {
	p.t.Helper()
	pk, err := packet.Read(p, v, packet.MaxPacketSize)
	if err != nil {
		p.t.Fatalf("server: reading a packet: %v", err)
	}
	return pk
}

// readClose reads until the client ends the WebSocket and returns the
// status code of its close frame.
func (p *peer) readClose() cws.StatusCode {
	p.t.Helper()
	for {
		if _, err := p.Read(make([]byte, 512)); err != nil {
			if code := cws.CloseStatus(err); code != -1 {
				return code
			}
			p.t.Fatalf("server: the client ended the connection without a close frame: %v", err)
		}
	}
}

// writeMessage writes one binary message made of frames, one per part.
func (p *peer) writeMessage(parts ...[]byte) {
	p.t.Helper()
	w, err := p.ws.Writer(context.Background(), cws.MessageBinary)
	if err != nil {
		p.t.Fatalf("server: %v", err)
	}
	for _, part := range parts {
		if _, err := w.Write(part); err != nil {
			p.t.Fatalf("server: writing a frame: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		p.t.Fatalf("server: ending a message: %v", err)
	}
}

// accept reads CONNECT and answers it with a successful CONNACK.
func (p *peer) accept(v packet.Version) {
	p.t.Helper()
	if pk := p.readPacket(v); pk.Type() != packet.CONNECT {
		p.t.Fatalf("server: first packet %v, want CONNECT", pk.Type())
	}
	p.writeMessage(encode(p.t, &packet.Connack{}, v))
}

// encode returns the bytes of pk.
func encode(t *testing.T, pk interface {
	Append([]byte, packet.Version) ([]byte, error)
}, v packet.Version) []byte {
	t.Helper()
	b, err := pk.Append(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hasAll reports whether s contains every one of parts.
func hasAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
