package mqtt

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt/packet"
	"github.com/google/go-cmp/cmp"
)

const wsTestTimeout = 10 * time.Second

// wsServer is a WebSocket server for tests, built on net/http: its handler
// records the upgrade request, hijacks the connection, writes the handshake
// response that answer returns for the request's key, and hands the
// connection to the test as a *wsPeer.
type wsServer struct {
	srv      *httptest.Server
	requests chan *http.Request
	peers    chan *wsPeer
}

// wsAccept is the Sec-WebSocket-Accept value for key (RFC 6455, 4.2.2).
func wsAccept(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// wsGoodAnswer is the response of a conforming MQTT WebSocket server.
func wsGoodAnswer(key string) string {
	return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + wsAccept(key) + "\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
}

func startWSServer(t *testing.T, answer func(key string) string) *wsServer {
	t.Helper()
	s := &wsServer{requests: make(chan *http.Request, 1), peers: make(chan *wsPeer, 1)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests <- r.Clone(context.Background())
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		if _, err := io.WriteString(conn, answer(r.Header.Get("Sec-WebSocket-Key"))); err != nil {
			t.Errorf("writing the handshake response: %v", err)
		}
		_ = conn.SetDeadline(time.Now().Add(wsTestTimeout))
		s.peers <- &wsPeer{t: t, conn: conn, br: brw.Reader}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// dial connects to the server with URL path path and returns the client
// connection and the server's side of it.
func (s *wsServer) dial(t *testing.T, path string, header map[string][]string) (net.Conn, *wsPeer) {
	t.Helper()
	nc, err := s.dialErr(t, path, header)
	if err != nil {
		t.Fatalf("dialWebSocket: %v", err)
	}
	p := <-s.peers
	t.Cleanup(func() { p.conn.Close() })
	return nc, p
}

func (s *wsServer) dialErr(t *testing.T, path string, header map[string][]string) (net.Conn, error) {
	t.Helper()
	srv, err := parseServer("ws://" + s.srv.Listener.Addr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(wsTestTimeout))
	ctx, cancel := context.WithTimeout(context.Background(), wsTestTimeout)
	defer cancel()
	ws, err := dialWebSocket(ctx, nc, srv, header)
	if err != nil {
		nc.Close()
		return nil, err
	}
	t.Cleanup(func() { ws.Close() })
	return ws, nil
}

// wsPeer is the server's end of a WebSocket connection.
type wsPeer struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
	rest []byte // unread payload of the last data frame, for Read
}

// writeFrame writes one unmasked frame, as a server does.
func (p *wsPeer) writeFrame(fin bool, op byte, payload []byte) {
	p.t.Helper()
	b0 := op
	if fin {
		b0 |= 0x80
	}
	p.writeRaw(wsFrameHeader(b0, 0, len(payload)), payload)
}

func wsFrameHeader(b0, mask byte, n int) []byte {
	switch {
	case n < 126:
		return []byte{b0, mask | byte(n)}
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16([]byte{b0, mask | 126}, uint16(n))
	}
	return binary.BigEndian.AppendUint64([]byte{b0, mask | 127}, uint64(n))
}

func (p *wsPeer) writeRaw(bs ...[]byte) {
	p.t.Helper()
	if _, err := p.conn.Write(bytes.Join(bs, nil)); err != nil {
		p.t.Fatalf("server write: %v", err)
	}
}

type wsFrame struct {
	Fin     bool
	Op      byte
	Payload []byte
}

// readFrame reads one frame from the client, which must be masked.
func (p *wsPeer) readFrame() wsFrame {
	p.t.Helper()
	f, err := p.tryReadFrame()
	if err != nil {
		p.t.Fatalf("server read: %v", err)
	}
	return f
}

func (p *wsPeer) tryReadFrame() (wsFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(p.br, h[:]); err != nil {
		return wsFrame{}, err
	}
	if h[1]&0x80 == 0 {
		return wsFrame{}, errors.New("unmasked frame from the client")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(p.br, b[:]); err != nil {
			return wsFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(p.br, b[:]); err != nil {
			return wsFrame{}, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	var key [4]byte
	if _, err := io.ReadFull(p.br, key[:]); err != nil {
		return wsFrame{}, err
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(p.br, payload); err != nil {
		return wsFrame{}, err
	}
	for i := range payload {
		payload[i] ^= key[i%4]
	}
	return wsFrame{Fin: h[0]&0x80 != 0, Op: h[0] & 0x0f, Payload: payload}, nil
}

// Read reads the payload of the client's binary frames as a stream, so that
// packet.Read can decode the MQTT packets in it; control frames fail.
func (p *wsPeer) Read(b []byte) (int, error) {
	for len(p.rest) == 0 {
		f, err := p.tryReadFrame()
		if err != nil {
			return 0, err
		}
		if f.Op != wsBinary || !f.Fin {
			return 0, fmt.Errorf("frame opcode %#x fin %t, want a final binary frame", f.Op, f.Fin)
		}
		p.rest = f.Payload
	}
	n := copy(b, p.rest)
	p.rest = p.rest[n:]
	return n, nil
}

func TestWebSocketHandshake(t *testing.T) {
	t.Parallel()
	s := startWSServer(t, wsGoodAnswer)
	s.dial(t, "/mqtt/ws?token=a%20b", map[string][]string{
		"Authorization": {"Bearer secret"},
		"X-Multi":       {"1", "2"},
	})
	r := <-s.requests
	type request struct {
		Method, Target, Proto, Host            string
		Upgrade, Connection, Version, Protocol string
		Authorization                          string
		Multi                                  []string
		KeyLen                                 int
	}
	key, err := base64.StdEncoding.DecodeString(r.Header.Get("Sec-WebSocket-Key"))
	if err != nil {
		t.Errorf("Sec-WebSocket-Key: %v", err)
	}
	got := request{
		Method: r.Method, Target: r.RequestURI, Proto: r.Proto, Host: r.Host,
		Upgrade: r.Header.Get("Upgrade"), Connection: r.Header.Get("Connection"),
		Version: r.Header.Get("Sec-WebSocket-Version"), Protocol: r.Header.Get("Sec-WebSocket-Protocol"),
		Authorization: r.Header.Get("Authorization"), Multi: r.Header.Values("X-Multi"), KeyLen: len(key),
	}
	want := request{
		Method: "GET", Target: "/mqtt/ws?token=a%20b", Proto: "HTTP/1.1", Host: s.srv.Listener.Addr().String(),
		Upgrade: "websocket", Connection: "Upgrade", Version: "13", Protocol: "mqtt",
		Authorization: "Bearer secret", Multi: []string{"1", "2"}, KeyLen: 16,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("upgrade request (-want +got):\n%s", diff)
	}
}

func TestWebSocketHostHeader(t *testing.T) {
	t.Parallel()
	s := startWSServer(t, wsGoodAnswer)
	s.dial(t, "", map[string][]string{"Host": {"broker.example"}})
	if r := <-s.requests; r.Host != "broker.example" || r.RequestURI != "/" {
		t.Errorf("Host %q, target %q; want broker.example and /", r.Host, r.RequestURI)
	}
}

// TestWebSocketRead checks that Read returns the payload stream of the
// server's data frames: fragmented messages reassembled, control frames
// interleaved, empty frames skipped, and every length encoding.
func TestWebSocketRead(t *testing.T) {
	t.Parallel()
	s := startWSServer(t, wsGoodAnswer)
	nc, p := s.dial(t, "/", nil)
	long := bytes.Repeat([]byte("0123456789abcdef"), 5000) // 80 000 bytes: 64-bit length
	medium := long[:300]                                   // 16-bit length
	go func() {
		p.writeFrame(false, wsBinary, []byte("ab"))
		p.writeFrame(true, wsPing, []byte("ping 1"))
		p.writeFrame(false, wsContinuation, []byte("cd"))
		p.writeFrame(true, wsPong, []byte("unsolicited"))
		p.writeFrame(false, wsContinuation, nil)
		p.writeFrame(true, wsContinuation, []byte("ef"))
		p.writeFrame(true, wsBinary, nil)
		p.writeFrame(true, wsBinary, medium)
		p.writeFrame(true, wsBinary, long)
	}()
	want := append([]byte("abcdef"), append(medium, long...)...)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(nc, got); err != nil {
		t.Fatalf("Read: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Read returned %d bytes that differ from the %d sent", len(got), len(want))
	}
	if diff := cmp.Diff(wsFrame{Fin: true, Op: wsPong, Payload: []byte("ping 1")}, p.readFrame()); diff != "" {
		t.Errorf("answer to the ping (-want +got):\n%s", diff)
	}
}

// TestWebSocketWrite checks that each Write is one masked, final binary
// frame, at the boundaries of every length encoding and of the masking
// chunks.
func TestWebSocketWrite(t *testing.T) {
	t.Parallel()
	s := startWSServer(t, wsGoodAnswer)
	nc, p := s.dial(t, "/", nil)
	sizes := []int{0, 1, 125, 126, 65535, 65536, wsWriteChunk - 6, wsWriteChunk - 5, 3*wsWriteChunk + 7}
	done := make(chan error, 1)
	go func() {
		for _, n := range sizes {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(i * 7)
			}
			if m, err := nc.Write(b); err != nil || m != n {
				done <- fmt.Errorf("Write(%d bytes) = %d, %v", n, m, err)
				return
			}
		}
		done <- nil
	}()
	for _, n := range sizes {
		f := p.readFrame()
		if !f.Fin || f.Op != wsBinary || len(f.Payload) != n {
			t.Fatalf("frame fin %t opcode %#x with %d bytes, want a final binary frame of %d", f.Fin, f.Op, len(f.Payload), n)
		}
		for i, c := range f.Payload {
			if c != byte(i*7) {
				t.Fatalf("frame of %d bytes: byte %d is %#x after unmasking, want %#x", n, i, c, byte(i*7))
			}
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWebSocketClose(t *testing.T) {
	t.Parallel()
	t.Run("normal closure by the server", func(t *testing.T) {
		t.Parallel()
		s := startWSServer(t, wsGoodAnswer)
		nc, p := s.dial(t, "/", nil)
		p.writeFrame(true, wsClose, []byte{0x03, 0xe8, 'b', 'y', 'e'})
		if n, err := nc.Read(make([]byte, 10)); !errors.Is(err, io.EOF) {
			t.Errorf("Read = %d, %v; want io.EOF", n, err)
		}
		if diff := cmp.Diff(wsFrame{Fin: true, Op: wsClose, Payload: []byte{0x03, 0xe8}}, p.readFrame()); diff != "" {
			t.Errorf("answer to the close frame (-want +got):\n%s", diff)
		}
		if _, err := nc.Write([]byte("late")); err == nil {
			t.Error("Write after the closing handshake succeeded")
		}
	})
	t.Run("error status", func(t *testing.T) {
		t.Parallel()
		s := startWSServer(t, wsGoodAnswer)
		nc, p := s.dial(t, "/", nil)
		p.writeFrame(true, wsClose, []byte{0x03, 0xf3, 'o', 'v', 'e', 'r', 'l', 'o', 'a', 'd'}) // 1011
		_, err := nc.Read(make([]byte, 10))
		if err == nil || !strings.Contains(err.Error(), `status 1011 "overload"`) {
			t.Errorf("Read error %v, want one naming status 1011 and the reason", err)
		}
		p.readFrame()
	})
	t.Run("by the client", func(t *testing.T) {
		t.Parallel()
		s := startWSServer(t, wsGoodAnswer)
		nc, p := s.dial(t, "/", nil)
		if err := nc.Close(); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wsFrame{Fin: true, Op: wsClose, Payload: []byte{0x03, 0xe8}}, p.readFrame()); diff != "" {
			t.Errorf("close frame (-want +got):\n%s", diff)
		}
		if _, err := p.tryReadFrame(); !errors.Is(err, io.EOF) {
			t.Errorf("after the close frame: %v, want EOF", err)
		}
	})
	t.Run("server closes TCP", func(t *testing.T) {
		t.Parallel()
		s := startWSServer(t, wsGoodAnswer)
		nc, p := s.dial(t, "/", nil)
		p.writeFrame(false, wsBinary, []byte("ab"))
		p.conn.Close()
		b, err := io.ReadAll(nc)
		if string(b) != "ab" || err != nil {
			t.Errorf("ReadAll = %q, %v; want ab and EOF at the frame boundary", b, err)
		}
	})
}

func TestWebSocketBadHandshake(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		answer func(key string) string
		want   string
	}{
		{"wrong accept", func(string) string { return wsGoodAnswer("another key") },
			"Sec-WebSocket-Accept"},
		{"missing accept", func(key string) string {
			return strings.Replace(wsGoodAnswer(key), "Sec-WebSocket-Accept", "X-Accept", 1)
		},
			`Sec-WebSocket-Accept ""`},
		{"refused", func(string) string { return "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n" },
			`server answered "401 Unauthorized" instead of 101`},
		{"not found", func(string) string { return "HTTP/1.1 404 Not Found\r\n\r\n" },
			`"404 Not Found"`},
		{"other subprotocol", func(key string) string {
			return strings.Replace(wsGoodAnswer(key), "Protocol: mqtt", "Protocol: wamp", 1)
		},
			`subprotocol "wamp"`},
		{"extension", func(key string) string {
			return strings.Replace(wsGoodAnswer(key), "\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n", 1)
		}, "extensions"},
		{"no upgrade", func(key string) string {
			return strings.Replace(wsGoodAnswer(key), "Upgrade: websocket", "Upgrade: h2c", 1)
		},
			`Upgrade "h2c"`},
		{"not HTTP", func(string) string { return "SSH-2.0-OpenSSH_9.2\r\n" },
			"not an HTTP response"},
		{"closed", func(string) string { return "HTTP/1.1 101 Switching Protocols\r\n" },
			"closed the connection during the handshake"},
		{"endless header line", func(string) string { return "HTTP/1.1 101 OK\r\nX: " + strings.Repeat("x", 5000) },
			"longer than 4096 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startWSServer(t, func(key string) string { return tc.answer(key) })
			go func() {
				p := <-s.peers
				// Closing after the answer ends the handshake of
				// a client still waiting for more.
				p.conn.Close()
			}()
			_, err := s.dialErr(t, "/", nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("dialWebSocket error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestWebSocketBadFrames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		frame []byte
		want  string
	}{
		{"text frame", []byte{0x81, 0x01, 'x'}, "text frame"},
		{"masked frame", []byte{0x82, 0x81, 1, 2, 3, 4, 'x'}, "masked frame"},
		{"reserved bit", []byte{0xc2, 0x01, 'x'}, "reserved bits"},
		{"reserved opcode", []byte{0x83, 0x01, 'x'}, "reserved opcode 0x3"},
		{"continuation without a message", []byte{0x80, 0x01, 'x'}, "continuation frame without a message"},
		{"new message inside a fragmented one", []byte{0x02, 0x01, 'x', 0x82, 0x01, 'y'}, "new message before"},
		{"fragmented ping", []byte{0x09, 0x00}, "fragmented or oversized control frame"},
		{"oversized ping", append([]byte{0x89, 126, 0, 126}, make([]byte, 126)...), "fragmented or oversized control frame"},
		{"63-bit length", []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}, "most significant bit"},
		{"truncated header", []byte{0x82, 126, 0}, io.ErrUnexpectedEOF.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startWSServer(t, wsGoodAnswer)
			nc, p := s.dial(t, "/", nil)
			p.writeRaw(tc.frame)
			p.conn.Close()
			b, err := io.ReadAll(nc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadAll = %q, %v; want an error mentioning %q", b, err, tc.want)
			}
			if _, again := nc.Read(make([]byte, 1)); again != err {
				t.Errorf("Read after the error = %v, want the same error", again)
			}
		})
	}
}

// TestWebSocketHandshakeTimeout checks that ending the context interrupts a
// handshake with a server that never answers.
func TestWebSocketHandshakeTimeout(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	srv, err := parseServer("ws://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = dialWebSocket(ctx, nc, srv, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "WebSocket handshake not finished") {
		t.Errorf("dialWebSocket error %v, want an unfinished handshake and context.DeadlineExceeded", err)
	}
}

// TestWebSocketClient runs a Client over the test server, which plays a
// broker that frames its packets awkwardly: CONNACK split over two frames,
// two PUBLISH packets in one frame, one PUBLISH spread over three frames
// with a ping among them. The client's own packets, possibly several per
// frame, must decode from the stream of its binary frames.
func TestWebSocketClient(t *testing.T) {
	t.Parallel()
	s := startWSServer(t, wsGoodAnswer)
	ctx, cancel := context.WithTimeout(context.Background(), wsTestTimeout)
	defer cancel()
	type result struct {
		c   *Client
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := Connect(ctx, Config{
			Servers:         []string{"ws://" + s.srv.Listener.Addr().String() + "/mqtt"},
			ClientID:        "ws-client",
			Version:         Version311,
			WebSocketHeader: http.Header{"Authorization": {"Bearer x"}},
		})
		res <- result{c, err}
	}()
	if r := <-s.requests; r.Header.Get("Authorization") != "Bearer x" {
		t.Errorf("Authorization header %q", r.Header.Get("Authorization"))
	}
	p := <-s.peers
	defer p.conn.Close()

	pk, err := packet.Read(p, packet.V311, packet.MaxPacketSize)
	if err != nil {
		t.Fatalf("reading CONNECT: %v", err)
	}
	if cp, ok := pk.(*packet.Connect); !ok || cp.ClientID != "ws-client" {
		t.Fatalf("first packet %#v, want CONNECT from ws-client", pk)
	}
	p.writeFrame(false, wsBinary, []byte{0x20})
	p.writeFrame(true, wsContinuation, []byte{0x02, 0x00, 0x00})
	r := <-res
	if r.err != nil {
		t.Fatalf("Connect: %v", r.err)
	}
	c := r.c
	defer c.Close()

	publish := func(topic, payload string) []byte {
		b, err := (&packet.Publish{Topic: topic, Payload: []byte(payload)}).Append(nil, packet.V311)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	p.writeFrame(true, wsBinary, append(publish("a", "one"), publish("b", "two")...))
	third := publish("c", strings.Repeat("three", 100))
	p.writeFrame(false, wsBinary, third[:1])
	p.writeFrame(false, wsContinuation, third[1:200])
	p.writeFrame(true, wsPing, []byte("are you there"))
	p.writeFrame(true, wsContinuation, third[200:])
	var got []string
	for range 3 {
		select {
		case m := <-c.Messages():
			got = append(got, m.Topic+" "+string(m.Payload))
		case <-time.After(wsTestTimeout):
			t.Fatal("no message")
		}
	}
	if diff := cmp.Diff([]string{"a one", "b two", "c " + strings.Repeat("three", 100)}, got); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wsFrame{Fin: true, Op: wsPong, Payload: []byte("are you there")}, p.readFrame()); diff != "" {
		t.Errorf("answer to the ping (-want +got):\n%s", diff)
	}

	const n = 200
	for i := range n {
		if err := c.Publish(ctx, Message{Topic: "out", Payload: fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
	discErr := make(chan error, 1)
	go func() { discErr <- c.Disconnect(ctx) }()
	for i := range n {
		pk, err := packet.Read(p, packet.V311, packet.MaxPacketSize)
		if err != nil {
			t.Fatalf("reading PUBLISH %d: %v", i, err)
		}
		if pub, ok := pk.(*packet.Publish); !ok || pub.Topic != "out" || string(pub.Payload) != fmt.Sprint(i) {
			t.Fatalf("packet %d: %#v", i, pk)
		}
	}
	if pk, err := packet.Read(p, packet.V311, packet.MaxPacketSize); err != nil || pk.Type() != packet.DISCONNECT {
		t.Fatalf("after the publishes: %v, %v; want DISCONNECT", pk, err)
	}
	// The client ends the WebSocket with a close frame after DISCONNECT.
	if _, err := p.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "opcode 0x8") {
		t.Errorf("after DISCONNECT: %v, want a close frame", err)
	}
	if err := <-discErr; err != nil {
		t.Errorf("Disconnect: %v", err)
	}
}
