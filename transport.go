package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
)

// transport is how MQTT packets travel to a server: the layers stacked on
// the socket that Config.Dialer opens.
type transport uint8

const (
	transportTCP  transport = iota // mqtt://, tcp://
	transportTLS                   // mqtts://, ssl://, tls://
	transportWS                    // ws://
	transportWSS                   // wss://: WebSocket over TLS
	transportUnix                  // unix:///path
)

func (t transport) tls() bool       { return t == transportTLS || t == transportWSS }
func (t transport) websocket() bool { return t == transportWS || t == transportWSS }

// server is one parsed entry of Config.Servers. It is immutable.
type server struct {
	url       string // for errors, logs and events: redacted by redactURL
	transport transport
	network   string // "tcp" or "unix", passed to Config.Dialer
	addr      string // host:port, or the socket path
	host      string // host name without port: the TLS server name
	wsHost    string // WebSocket: the Host header (host, and port if given)
	wsPath    string // WebSocket: the request target (path and query)
}

// Default ports by scheme.
const (
	portMQTT  = "1883"
	portMQTTS = "8883"
	portWS    = "80"
	portWSS   = "443"
)

// parseServer parses a server URL. Schemes: mqtt:// and tcp:// (default port
// 1883), mqtts://, ssl:// and tls:// (8883), ws:// (80) and wss:// (443),
// whose path and query are the WebSocket request target, and unix:///path.
func parseServer(s string) (server, error) {
	u, err := url.Parse(s)
	if err != nil {
		return server{}, &ArgumentError{What: "server URL", Value: redactURL(s), Err: fmt.Errorf("cannot parse: %w", redactErr(err))}
	}
	shown := redactURL(s)
	bad := func(format string, args ...any) (server, error) {
		return server{}, &ArgumentError{What: "server URL", Value: shown, Err: fmt.Errorf(format, args...)}
	}
	srv := server{url: shown, network: "tcp"}
	var port string
	switch u.Scheme { // url.Parse lowers the scheme
	case "mqtt", "tcp":
		srv.transport, port = transportTCP, portMQTT
	case "mqtts", "ssl", "tls":
		srv.transport, port = transportTLS, portMQTTS
	case "ws":
		srv.transport, port = transportWS, portWS
	case "wss":
		srv.transport, port = transportWSS, portWSS
	case "unix":
		if u.Host != "" || u.Opaque != "" || u.Path == "" {
			return bad("want unix:///path/to/socket")
		}
		srv.transport, srv.network, srv.addr = transportUnix, "unix", u.Path
		return srv, nil
	case "":
		return bad("no scheme: want mqtt://host:port (or mqtts, ws, wss, unix)")
	default:
		if isPort(u.Opaque) {
			return bad("no scheme: want mqtt://host:port (or mqtts, ws, wss, unix)")
		}
		return bad("unsupported scheme %q: want mqtt, tcp, mqtts, ssl, tls, ws, wss or unix", u.Scheme)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return bad("no host")
	}
	srv.host = u.Hostname()
	if p := u.Port(); p != "" {
		port = p
	}
	srv.addr = net.JoinHostPort(srv.host, port)
	if srv.transport.websocket() {
		srv.wsHost = u.Host
		srv.wsPath = u.EscapedPath()
		if srv.wsPath == "" {
			srv.wsPath = "/"
		}
		if u.RawQuery != "" {
			srv.wsPath += "?" + u.RawQuery
		}
	}
	return srv, nil
}

// isPort reports whether s is a decimal port number, as in "host:1883"
// given without a scheme.
func isPort(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// dialTransport opens the connection that MQTT packets travel on: a socket
// from cfg.Dialer, then TLS and the WebSocket handshake as srv's scheme
// asks, all within ctx. A plain TCP or unix connection is returned as the
// dialer made it, so those transports cost nothing extra per packet.
func dialTransport(ctx context.Context, cfg *Config, srv server) (net.Conn, error) {
	nc, err := cfg.Dialer(ctx, srv.network, srv.addr)
	if err != nil {
		return nil, err
	}
	if srv.transport.tls() {
		tc, err := tlsHandshake(ctx, nc, cfg.TLSConfig, srv)
		if err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	if srv.transport.websocket() {
		ws, err := dialWebSocket(ctx, nc, srv, cfg.WebSocketHeader)
		if err != nil {
			nc.Close()
			return nil, err
		}
		nc = ws
	}
	return nc, nil
}

// tlsHandshake runs the client side of a TLS handshake on nc within ctx. A
// certificate problem keeps its x509 error in the chain, for errors.As:
// x509.UnknownAuthorityError, x509.HostnameError,
// x509.CertificateInvalidError.
func tlsHandshake(ctx context.Context, nc net.Conn, base *tls.Config, srv server) (net.Conn, error) {
	config, asked := tlsConfigFor(base, srv)
	tc := tls.Client(nc, config)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	if asked.Load() {
		return &noClientCertConn{Conn: tc}, nil
	}
	return tc, nil
}

// tlsConfigFor returns a copy of base (or of the zero tls.Config, which
// verifies against the system's roots) whose ServerName is srv's host when
// base leaves it empty. The caller's config is never modified. When the
// copy has no client certificate to offer, asked reports whether the server
// asked for one.
func tlsConfigFor(base *tls.Config, srv server) (c *tls.Config, asked *atomic.Bool) {
	if base != nil {
		c = base.Clone()
	} else {
		c = &tls.Config{}
	}
	if c.ServerName == "" {
		c.ServerName = srv.host
	}
	asked = new(atomic.Bool)
	if len(c.Certificates) == 0 && c.GetClientCertificate == nil {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			asked.Store(true)
			return &tls.Certificate{}, nil // none, as without this callback
		}
	}
	return c, asked
}

// noClientCertConn is a TLS connection to a server that asked for a client
// certificate when the client had none. With TLS 1.3 a server that requires
// one refuses the connection only after the handshake, so the refusal shows
// as a bare alert or reset on the first read or write; until the server has
// sent anything, errors say what is missing.
type noClientCertConn struct {
	*tls.Conn
	answered atomic.Bool // a read succeeded: the server accepted the connection
}

func (c *noClientCertConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.answered.Store(true)
	}
	return n, c.explain(err)
}

func (c *noClientCertConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	return n, c.explain(err)
}

func (c *noClientCertConn) explain(err error) error {
	if err == nil || c.answered.Load() {
		return err
	}
	return fmt.Errorf("%w (the server asked for a client certificate, and Config.TLSConfig has none)", err)
}

// checkWebSocketHeader refuses header fields that the WebSocket handshake
// sets itself, and names or values that would break the request.
func checkWebSocketHeader(h map[string][]string) error {
	for name, values := range h {
		if !validHeaderName(name) {
			return &ArgumentError{What: "WebSocket header", Value: name, Err: errors.New("not a valid header field name")}
		}
		switch strings.ToLower(name) {
		case "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
			"sec-websocket-protocol", "sec-websocket-extensions", "content-length", "transfer-encoding":
			return &ArgumentError{What: "WebSocket header", Value: name, Err: errors.New("set by the WebSocket handshake")}
		}
		for _, v := range values {
			if strings.ContainsAny(v, "\r\n\x00") {
				return &ArgumentError{What: "WebSocket header", Value: name, Err: errors.New("value contains CR, LF or NUL")}
			}
		}
	}
	return nil
}

// validHeaderName reports whether name is an HTTP token (RFC 9110, 5.6.2).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
