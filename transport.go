package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
)

// Transport carries MQTT over a protocol that the client does not speak
// itself, for the URL schemes it serves (see RegisterTransport and
// Config.Transports). Package github.com/b4e21b16/mqtt/websocket is one: it
// serves ws:// and wss://.
//
// The client calls Dial for every connection attempt, from its own
// goroutine, possibly for several clients at once, so an implementation must
// be safe for concurrent use.
type Transport interface {
	// Dial connects to server within ctx and returns a connection whose
	// byte stream carries the MQTT packets both ways; packet boundaries need
	// not coincide with those of the transport's own messages. ctx bounds
	// the dial only: the connection outlives it.
	//
	// server is the URL from Config.Servers (or from a broker's
	// redirection) as configured, with its user info, path and query; Dial
	// may modify it. dial is Config.Dialer (a net.Dialer by default): the
	// transport opens its network connections with it, with network "tcp"
	// and a host:port address, so that the client's proxies and test
	// dialers apply. tlsConfig is for schemes that use TLS: a copy of
	// Config.TLSConfig (or an empty config, which verifies against the
	// system's roots) whose ServerName is the URL's host unless
	// Config.TLSConfig sets one; it is never nil.
	//
	// The client shows errors in its own errors, logs and events, so an
	// error must not quote the URL's password or query, which may hold
	// credentials.
	//
	// The client reads from the connection in one goroutine while it
	// writes in another; it may call Close more than once. To end a
	// connection it sets a deadline in the past, which must make a blocked
	// Read or Write return without ending the connection: the client may
	// still write (a DISCONNECT) after it stopped reading, and then closes
	// the connection. A connection that has a CloseWrite method (as
	// *net.TCPConn has) is half-closed after the client's last packet, and
	// read until it ends or a deadline passes, so that the server sees the
	// packet before the connection ends.
	Dial(ctx context.Context, server *url.URL, dial Dialer, tlsConfig *tls.Config) (net.Conn, error)
}

// transports holds the transports registered with RegisterTransport, by
// scheme.
var transports struct {
	sync.RWMutex
	m map[string]Transport
}

// RegisterTransport makes t serve the URL scheme (such as "ws") in every
// client of the process, for servers whose URL has that scheme;
// Config.Transports can override it for one client. A later registration
// for the same scheme replaces the earlier one; clients look the scheme up
// in Connect. Packages that implement a transport register it in their init
// function, so that importing them enables their schemes.
//
// The schemes the client handles itself (mqtt, tcp, mqtts, ssl, tls and
// unix) cannot be registered. RegisterTransport panics for those, for a
// scheme that is not a URL scheme and for a nil t.
func RegisterTransport(scheme string, t Transport) {
	scheme = strings.ToLower(scheme)
	if err := checkTransportScheme(scheme); err != nil {
		panic(err)
	}
	if t == nil {
		panic("mqtt: RegisterTransport with a nil Transport for scheme " + scheme)
	}
	transports.Lock()
	defer transports.Unlock()
	if transports.m == nil {
		transports.m = make(map[string]Transport)
	}
	transports.m[scheme] = t
}

// registeredTransport returns the transport registered for scheme, or nil.
func registeredTransport(scheme string) Transport {
	transports.RLock()
	defer transports.RUnlock()
	return transports.m[scheme]
}

// checkTransports checks the schemes and transports of Config.Transports.
func checkTransports(m map[string]Transport) error {
	for scheme, t := range m {
		if err := checkTransportScheme(scheme); err != nil {
			return &ArgumentError{What: "Transports scheme", Value: scheme, Err: err}
		}
		if t == nil {
			return &ArgumentError{What: "Transports scheme", Value: scheme, Err: errors.New("nil Transport")}
		}
	}
	return nil
}

// checkTransportScheme refuses a scheme that cannot be served by a
// Transport: one the client handles itself, or one that is not a lowercase
// URL scheme.
func checkTransportScheme(scheme string) error {
	if !isScheme(scheme) || strings.ToLower(scheme) != scheme {
		return fmt.Errorf("mqtt: %q is not a lowercase URL scheme", scheme)
	}
	if _, ok := builtinSchemes[scheme]; ok {
		return fmt.Errorf("mqtt: the client handles scheme %q itself", scheme)
	}
	return nil
}

// kind is how the client itself connects to a server.
type kind uint8

const (
	kindTCP    kind = iota // mqtt://, tcp://
	kindTLS                // mqtts://, ssl://, tls://
	kindUnix               // unix:///path
	kindCustom             // a scheme served by a Transport
)

// builtinSchemes are the URL schemes the client handles itself.
var builtinSchemes = map[string]kind{
	"mqtt": kindTCP, "tcp": kindTCP,
	"mqtts": kindTLS, "ssl": kindTLS, "tls": kindTLS,
	"unix": kindUnix,
}

// server is one parsed entry of Config.Servers. It is immutable.
type server struct {
	url     string // for errors, logs and events: redacted by redactURL
	scheme  string // lowercase
	kind    kind
	network string // "tcp" or "unix", passed to Config.Dialer
	addr    string // host:port, or the socket path
	host    string // host name without port: the TLS server name

	// A scheme served by a Transport.
	custom Transport
	target *url.URL // the URL as configured, handed to custom: never shown
}

// Default ports by scheme.
const (
	portMQTT  = "1883"
	portMQTTS = "8883"
)

// websocketPackage is the package that serves ws:// and wss://.
const websocketPackage = "github.com/b4e21b16/mqtt/websocket"

// parseServer parses a server URL. Schemes: mqtt:// and tcp:// (default port
// 1883), mqtts://, ssl:// and tls:// (8883), unix:///path, and the schemes
// of custom (Config.Transports) and of RegisterTransport, in this order.
func parseServer(s string, custom map[string]Transport) (server, error) {
	u, err := url.Parse(s)
	if err != nil {
		return server{}, &ArgumentError{What: "server URL", Value: redactURL(s), Err: fmt.Errorf("cannot parse: %w", redactErr(err))}
	}
	shown := redactURL(s)
	bad := func(format string, args ...any) (server, error) {
		return server{}, &ArgumentError{What: "server URL", Value: shown, Err: fmt.Errorf(format, args...)}
	}
	srv := server{url: shown, scheme: u.Scheme, network: "tcp"} // url.Parse lowers the scheme
	k, builtin := builtinSchemes[u.Scheme]
	switch {
	case u.Scheme == "" || !builtin && u.Opaque != "" && isPort(u.Opaque):
		return bad("no scheme: want mqtt://host:port (or mqtts, ws, wss, unix)")
	case !builtin:
		t := custom[u.Scheme]
		if t == nil {
			t = registeredTransport(u.Scheme)
		}
		switch {
		case t != nil:
		case u.Scheme == "ws" || u.Scheme == "wss":
			return bad("no transport for scheme %q: import %s (or register a Transport)", u.Scheme, websocketPackage)
		default:
			return bad("unsupported scheme %q: want mqtt, tcp, mqtts, ssl, tls or unix, or a scheme registered with RegisterTransport or set in Config.Transports", u.Scheme)
		}
		srv.kind, srv.custom, srv.target, srv.host = kindCustom, t, u, u.Hostname()
		return srv, nil
	case k == kindUnix:
		if u.Host != "" || u.Opaque != "" || u.Path == "" {
			return bad("want unix:///path/to/socket")
		}
		srv.kind, srv.network, srv.addr = kindUnix, "unix", u.Path
		return srv, nil
	}
	srv.kind = k
	port := portMQTT
	if k == kindTLS {
		port = portMQTTS
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return bad("no host")
	}
	srv.host = u.Hostname()
	if p := u.Port(); p != "" {
		port = p
	}
	srv.addr = net.JoinHostPort(srv.host, port)
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

// dialTransport opens the connection that MQTT packets travel on, within
// ctx: a socket from cfg.Dialer, with TLS as srv's scheme asks, or what the
// Transport serving srv's scheme returns. A plain TCP or unix connection is
// returned as the dialer made it, so those transports cost nothing extra per
// packet.
func dialTransport(ctx context.Context, cfg *Config, srv server) (net.Conn, error) {
	if srv.kind == kindCustom {
		return dialCustom(ctx, cfg, srv)
	}
	nc, err := cfg.Dialer(ctx, srv.network, srv.addr)
	if err != nil {
		return nil, err
	}
	if srv.kind == kindTLS {
		tc, err := tlsHandshake(ctx, nc, cfg.TLSConfig, srv)
		if err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	return nc, nil
}

// dialCustom dials srv through the Transport that serves its scheme.
func dialCustom(ctx context.Context, cfg *Config, srv server) (net.Conn, error) {
	config, asked := tlsConfigFor(cfg.TLSConfig, srv)
	u := *srv.target
	nc, err := srv.custom.Dial(ctx, &u, cfg.Dialer, config)
	if err != nil {
		if asked.Load() {
			err = fmt.Errorf("%w (the server asked for a client certificate, and Config.TLSConfig has none)", err)
		}
		return nil, err
	}
	return nc, nil
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
