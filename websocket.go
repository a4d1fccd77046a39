package mqtt

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// MQTT over WebSocket (MQTT 5.0 and 3.1.1, section 6): the client side of
// RFC 6455, offering the "mqtt" subprotocol [MQTT-6.0.0-3], with binary
// frames only [MQTT-6.0.0-1] and no extensions. The connection is a
// net.Conn whose byte stream is the MQTT packet stream, so the reader and
// writer work on it unchanged: frame boundaries carry no meaning, a packet
// may span frames and a frame may hold several packets [MQTT-6.0.0-2].

const (
	// wsGUID is the RFC 6455 key suffix for Sec-WebSocket-Accept.
	wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
	// wsHandshakeBuffer bounds each line of the server's handshake response.
	wsHandshakeBuffer = 4096
	// wsMaxHeaderLines bounds the number of header lines in the response.
	wsMaxHeaderLines = 100
	// wsReadBuffer sizes the frame reader after the handshake. Large
	// payload reads bypass it and go straight to the caller's buffer.
	wsReadBuffer = 1024
	// wsWriteChunk is the size of the pooled buffers in which outgoing
	// payloads are masked; a longer Write is sent in several chunks.
	wsWriteChunk = 32 << 10
)

// Frame opcodes (RFC 6455, 5.2).
const (
	wsContinuation = 0x0
	wsText         = 0x1
	wsBinary       = 0x2
	wsClose        = 0x8
	wsPing         = 0x9
	wsPong         = 0xa
)

// Close status codes (RFC 6455, 7.4.1).
const (
	wsNormalClosure = 1000
	wsNoStatus      = 1005
)

// wsChunks holds *[wsWriteChunk]byte buffers shared by all WebSocket
// connections, so that an idle connection holds no write buffer.
var wsChunks = sync.Pool{New: func() any { return new([wsWriteChunk]byte) }}

// errWebSocketClosed fails writes after the closing handshake started.
var errWebSocketClosed = errors.New("websocket: connection closed")

// wsConn carries a byte stream in binary WebSocket messages over an
// established connection. Read returns the concatenated payload of the
// server's data frames, answering pings and the closing handshake on the
// way; Write sends each call as one masked binary frame. Reads and writes
// may run concurrently, as net.Conn allows; errors are sticky, a timeout
// included. Addresses and deadlines are those of the underlying connection.
type wsConn struct {
	net.Conn

	// Read state.
	readMu     sync.Mutex
	br         *bufio.Reader // guarded by readMu
	remaining  uint64        // payload bytes left in the current data frame; guarded by readMu
	fragmented bool          // the current message continues in a later frame; guarded by readMu
	readErr    error         // sticky; guarded by readMu
	control    [125]byte     // control frame payload; guarded by readMu

	// Write state.
	writeMu  sync.Mutex
	mask     *rand.ChaCha8 // masking keys (RFC 6455, 10.3); guarded by writeMu
	writeErr error         // sticky; guarded by writeMu
}

// dialWebSocket performs the opening handshake on nc within ctx and returns
// the WebSocket connection. It does not close nc on failure.
func dialWebSocket(ctx context.Context, nc net.Conn, srv server, header map[string][]string) (net.Conn, error) {
	// Ending ctx interrupts the handshake through the deadline.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	ws, err := wsHandshake(nc, srv, header)
	if !stop() {
		return nil, fmt.Errorf("WebSocket handshake not finished: %w", context.Cause(ctx))
	}
	if err != nil {
		return nil, fmt.Errorf("WebSocket handshake with %s: %w", srv.wsHost, err)
	}
	return ws, nil
}

func wsHandshake(nc net.Conn, srv server, header map[string][]string) (*wsConn, error) {
	var nonce [16]byte
	_, _ = crand.Read(nonce[:]) // never fails (crypto/rand)
	key := base64.StdEncoding.EncodeToString(nonce[:])

	host := srv.wsHost
	req := make([]byte, 0, 512)
	for _, name := range slices.Sorted(maps.Keys(header)) {
		if strings.EqualFold(name, "Host") {
			if v := header[name]; len(v) > 0 {
				host = v[0]
			}
			continue
		}
		for _, v := range header[name] {
			req = fmt.Appendf(req, "%s: %s\r\n", name, v)
		}
	}
	req = append(fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\n"+
		"Upgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n",
		srv.wsPath, host, key), req...)
	req = append(req, "\r\n"...)
	if _, err := nc.Write(req); err != nil {
		return nil, fmt.Errorf("sending the upgrade request: %w", err)
	}

	br := bufio.NewReaderSize(nc, wsHandshakeBuffer)
	status, err := wsReadLine(br)
	if err != nil {
		return nil, err
	}
	proto, rest, _ := strings.Cut(status, " ")
	code, _, _ := strings.Cut(rest, " ")
	if !strings.HasPrefix(proto, "HTTP/1.") || len(code) != 3 {
		return nil, fmt.Errorf("not an HTTP response: %q", shorten(status, 64))
	}
	if code != "101" {
		return nil, fmt.Errorf("server answered %q instead of 101 Switching Protocols", shorten(rest, 64))
	}
	h := make(map[string]string)
	for i := 0; ; i++ {
		line, err := wsReadLine(br)
		if err != nil {
			return nil, err
		}
		if line == "" {
			break
		}
		if i == wsMaxHeaderLines {
			return nil, fmt.Errorf("more than %d header lines in the response", wsMaxHeaderLines)
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !validHeaderName(name) {
			return nil, fmt.Errorf("malformed response header line %q", shorten(line, 64))
		}
		name, value = strings.ToLower(name), strings.TrimSpace(value)
		if prev, ok := h[name]; ok {
			value = prev + ", " + value
		}
		h[name] = value
	}
	if !strings.EqualFold(h["upgrade"], "websocket") {
		return nil, fmt.Errorf("response has Upgrade %q, want websocket", shorten(h["upgrade"], 64))
	}
	if !hasToken(h["connection"], "upgrade") {
		return nil, fmt.Errorf("response has Connection %q, want upgrade", shorten(h["connection"], 64))
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	if want := base64.StdEncoding.EncodeToString(sum[:]); h["sec-websocket-accept"] != want {
		return nil, fmt.Errorf("response has Sec-WebSocket-Accept %q, want %q: the server did not take the handshake",
			shorten(h["sec-websocket-accept"], 64), want)
	}
	if p, ok := h["sec-websocket-protocol"]; ok && p != "mqtt" {
		// Absent is tolerated: some servers do not echo the subprotocol.
		return nil, fmt.Errorf("server chose subprotocol %q, want mqtt [MQTT-6.0.0-4]", shorten(p, 64))
	}
	if e, ok := h["sec-websocket-extensions"]; ok {
		return nil, fmt.Errorf("server chose extensions %q, none were offered", shorten(e, 64))
	}

	if br.Buffered() == 0 {
		// Nothing beyond the response was read: trade the large handshake
		// buffer for a small one for the life of the connection.
		br = bufio.NewReaderSize(nc, wsReadBuffer)
	}
	var seed [32]byte
	_, _ = crand.Read(seed[:])
	return &wsConn{Conn: nc, br: br, mask: rand.NewChaCha8(seed)}, nil
}

// wsReadLine reads one line of the handshake response without its CRLF.
func wsReadLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", fmt.Errorf("response line longer than %d bytes", wsHandshakeBuffer)
	case errors.Is(err, io.EOF):
		return "", errors.New("server closed the connection during the handshake")
	case err != nil:
		return "", fmt.Errorf("reading the response: %w", err)
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

// hasToken reports whether the comma-separated list v holds token, ignoring case.
func hasToken(v, token string) bool {
	for t := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}

func shorten(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// Read reads payload bytes of binary data frames. A packet boundary and a
// frame boundary need not coincide; Read returns at most the rest of the
// current frame.
func (c *wsConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for c.remaining == 0 {
		if c.readErr != nil {
			return 0, c.readErr
		}
		c.readErr = c.nextFrameLocked()
	}
	if uint64(len(p)) > c.remaining {
		p = p[:c.remaining]
	}
	n, err := c.br.Read(p)
	c.remaining -= uint64(n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // in the middle of a frame
		}
		c.readErr = err
	}
	return n, err
}

// nextFrameLocked reads frame headers, handling control frames, until a data
// frame begins, and sets remaining to its payload length. The caller holds
// readMu.
func (c *wsConn) nextFrameLocked() error {
	var hdr [8]byte
	if _, err := io.ReadFull(c.br, hdr[:2]); err != nil {
		return err // io.EOF at a frame boundary: the server closed without a close frame
	}
	fin, op := hdr[0]&0x80 != 0, hdr[0]&0x0f
	if hdr[0]&0x70 != 0 {
		return errors.New("websocket: frame with reserved bits set, but no extension was negotiated")
	}
	if hdr[1]&0x80 != 0 {
		return errors.New("websocket: the server sent a masked frame")
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(c.br, hdr[:2]); err != nil {
			return unexpectedEOF(err)
		}
		n = uint64(binary.BigEndian.Uint16(hdr[:2]))
	case 127:
		if _, err := io.ReadFull(c.br, hdr[:8]); err != nil {
			return unexpectedEOF(err)
		}
		n = binary.BigEndian.Uint64(hdr[:8])
		if n>>63 != 0 {
			return errors.New("websocket: frame length with the most significant bit set")
		}
	}
	switch op {
	case wsBinary, wsContinuation:
		if (op == wsContinuation) != c.fragmented {
			if c.fragmented {
				return errors.New("websocket: new message before the fragmented one ended")
			}
			return errors.New("websocket: continuation frame without a message to continue")
		}
		c.fragmented = !fin
		c.remaining = n
		return nil
	case wsText:
		return errors.New("websocket: the server sent a text frame; MQTT travels in binary frames [MQTT-6.0.0-1]")
	case wsClose, wsPing, wsPong:
		if !fin || n > uint64(len(c.control)) {
			return errors.New("websocket: fragmented or oversized control frame")
		}
		payload := c.control[:n]
		if _, err := io.ReadFull(c.br, payload); err != nil {
			return unexpectedEOF(err)
		}
		switch op {
		case wsPing:
			c.writeMu.Lock()
			if c.writeErr == nil {
				// A failed pong fails the next data write too, which
				// reports it; the read side goes on.
				c.writeErr = c.writeFrameLocked(wsPong, payload)
			}
			c.writeMu.Unlock()
		case wsClose:
			return c.closedByServerLocked(payload)
		}
		return nil
	}
	return fmt.Errorf("websocket: frame with reserved opcode %#x", op)
}

// closedByServerLocked answers the server's close frame with one carrying
// the same status code and returns how Read ends: io.EOF for a normal
// closure, an error naming the status otherwise. The caller holds readMu.
func (c *wsConn) closedByServerLocked(payload []byte) error {
	code, reason := uint16(wsNoStatus), ""
	if len(payload) >= 2 {
		code, reason = binary.BigEndian.Uint16(payload), string(payload[2:])
	}
	c.writeMu.Lock()
	if c.writeErr == nil {
		echo := payload[:min(len(payload), 2)]
		_ = c.writeFrameLocked(wsClose, echo)
		c.writeErr = errWebSocketClosed
	}
	c.writeMu.Unlock()
	if code == wsNormalClosure || code == wsNoStatus {
		return io.EOF
	}
	if !utf8.ValidString(reason) {
		reason = ""
	}
	return fmt.Errorf("websocket: the server closed the connection with status %d %q", code, shorten(reason, 64))
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Write sends p as one binary frame.
func (c *wsConn) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.writeErr != nil {
		return 0, c.writeErr
	}
	if err := c.writeFrameLocked(wsBinary, p); err != nil {
		c.writeErr = err
		return 0, err
	}
	return len(p), nil
}

// writeFrameLocked writes one final frame with opcode op and payload p,
// masked with a fresh key as a client must (RFC 6455, 5.3). The caller
// holds writeMu.
func (c *wsConn) writeFrameLocked(op byte, p []byte) error {
	buf := wsChunks.Get().(*[wsWriteChunk]byte)
	defer wsChunks.Put(buf)
	buf[0] = 0x80 | op
	h := 2
	switch n := len(p); {
	case n < 126:
		buf[1] = 0x80 | byte(n)
	case n <= 0xffff:
		buf[1] = 0x80 | 126
		binary.BigEndian.PutUint16(buf[2:], uint16(n))
		h = 4
	default:
		buf[1] = 0x80 | 127
		binary.BigEndian.PutUint64(buf[2:], uint64(n))
		h = 10
	}
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], uint32(c.mask.Uint64()))
	h += copy(buf[h:], key[:])
	for pos := 0; ; {
		m := copy(buf[h:], p[pos:])
		wsMaskBytes(key, pos, buf[h:h+m])
		pos += m
		if _, err := c.Conn.Write(buf[:h+m]); err != nil {
			return err
		}
		if pos == len(p) {
			return nil
		}
		h = 0
	}
}

// wsMaskBytes XORs b with the masking key, b being the payload from offset
// pos on (RFC 6455, 5.3), eight bytes at a time.
func wsMaskBytes(key [4]byte, pos int, b []byte) {
	var k [8]byte
	for i := range k {
		k[i] = key[(pos+i)&3]
	}
	k64 := binary.LittleEndian.Uint64(k[:])
	for len(b) >= 32 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k64)
		binary.LittleEndian.PutUint64(b[8:], binary.LittleEndian.Uint64(b[8:])^k64)
		binary.LittleEndian.PutUint64(b[16:], binary.LittleEndian.Uint64(b[16:])^k64)
		binary.LittleEndian.PutUint64(b[24:], binary.LittleEndian.Uint64(b[24:])^k64)
		b = b[32:]
	}
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k64)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= k[i]
	}
}

// Close starts the closing handshake with a normal-closure frame, unless a
// write is in progress or the connection already failed, and closes the
// underlying connection. It does not wait for the server's answer.
func (c *wsConn) Close() error {
	if c.writeMu.TryLock() {
		if c.writeErr == nil {
			_ = c.writeFrameLocked(wsClose, []byte{wsNormalClosure >> 8, wsNormalClosure & 0xff})
			c.writeErr = errWebSocketClosed
		}
		c.writeMu.Unlock()
	}
	return c.Conn.Close()
}
