// Package websocket carries MQTT over WebSocket (RFC 6455) for package
// github.com/b4e21b16/mqtt, on github.com/coder/websocket.
//
// Importing the package registers its Transport for ws:// and wss://
// server URLs in every client of the process:
//
//	import _ "github.com/b4e21b16/mqtt/websocket"
//
//	c, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{"wss://broker.example/mqtt"}})
//
// A Transport of one's own adds header fields to the upgrade request, for
// one client (Config.Transports) or for all (mqtt.RegisterTransport):
//
//	t := &websocket.Transport{Header: http.Header{"Authorization": {"Bearer " + token}}}
//	cfg.Transports = map[string]mqtt.Transport{"ws": t, "wss": t}
//
// The URL's path and query are the request target ("/" when empty); its
// default port is 80 for ws and 443 for wss. The connection under the
// WebSocket is opened with Config.Dialer, and wss uses Config.TLSConfig.
// The URL's user info is not sent: set an Authorization header for HTTP
// authentication. HTTP redirections and proxies are not followed.
//
// As MQTT requires (MQTT 5.0 and 3.1.1, section 6), the client offers the
// subprotocol "mqtt" [MQTT-6.0.0-3] and accepts a server that chooses it or
// none, sends its packets in binary messages [MQTT-6.0.0-1], and treats the
// messages it receives as one byte stream, in which packets may span
// messages and a message may hold several packets [MQTT-6.0.0-2]. A text
// message from the server ends the connection.
//
// Built for a browser (GOOS=js GOARCH=wasm), the package uses the
// browser's WebSocket: Config.Dialer and Config.TLSConfig do not apply
// there, and header fields cannot be set.
package websocket

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/b4e21b16/mqtt"
)

func init() {
	mqtt.RegisterTransport("ws", &Transport{})
	mqtt.RegisterTransport("wss", &Transport{})
}

// subprotocol is the WebSocket subprotocol of MQTT [MQTT-6.0.0-3].
const subprotocol = "mqtt"

// Transport is an mqtt.Transport for ws:// and wss:// URLs. The zero value
// (and a nil *Transport) opens connections with no extra header fields; it
// is what importing the package registers. A Transport is safe for
// concurrent use, and must not be modified once in use.
type Transport struct {
	// Header holds extra header fields for the upgrade request, such as
	// Authorization. A "Host" entry replaces the host from the URL. Fields
	// the handshake sets itself (Upgrade, Connection, Sec-WebSocket-*,
	// Content-Length, Transfer-Encoding) are refused, as are malformed
	// names and values with CR, LF or NUL: Dial then fails with an
	// *mqtt.ArgumentError before anything is dialed. Values never appear
	// in errors, logs or events.
	Header http.Header
}

var _ mqtt.Transport = (*Transport)(nil)

// Dial opens a WebSocket connection to server, a ws:// or wss:// URL, and
// returns it as a net.Conn whose byte stream is carried in binary
// messages. It opens the connection under the WebSocket with dial, and
// secures a wss:// connection with tlsConfig (see mqtt.Transport); nil
// stands for a net.Dialer and for a tls.Config with the URL's host. The
// client calls Dial; a program has no need to.
//
// Closing the connection ends the WebSocket with status 1000 (normal
// closure). A deadline interrupts a blocked Read or Write without ending
// the WebSocket, as on a TCP connection, except in a browser, where it
// interrupts a Read only.
func (t *Transport) Dial(ctx context.Context, server *url.URL, dial mqtt.Dialer, tlsConfig *tls.Config) (net.Conn, error) {
	var header http.Header
	if t != nil {
		header = t.Header
	}
	header, host, err := checkHeader(header)
	if err != nil {
		return nil, err
	}
	switch server.Scheme {
	case "ws", "wss":
	default:
		return nil, fmt.Errorf("mqtt: the WebSocket transport serves ws:// and wss://, not %s://", server.Scheme)
	}
	if server.Opaque != "" || server.Hostname() == "" {
		return nil, errors.New("mqtt: WebSocket URL without a host")
	}
	target := *server
	target.User = nil
	target.Fragment, target.RawFragment = "", ""
	return dialWebSocket(ctx, &target, header, host, dial, tlsConfig)
}

// checkHeader refuses header fields that the WebSocket handshake sets
// itself, and names or values that would break the request. It returns a
// copy of h without a Host entry, and the value of that entry.
func checkHeader(h http.Header) (http.Header, string, error) {
	if len(h) == 0 {
		return nil, "", nil
	}
	out := make(http.Header, len(h))
	var host string
	for name, values := range h {
		if !validHeaderName(name) {
			return nil, "", &mqtt.ArgumentError{What: "WebSocket header", Value: name, Err: errors.New("not a valid header field name")}
		}
		for _, v := range values {
			if strings.ContainsAny(v, "\r\n\x00") {
				return nil, "", &mqtt.ArgumentError{What: "WebSocket header", Value: name, Err: errors.New("value contains CR, LF or NUL")}
			}
		}
		switch lower := strings.ToLower(name); {
		case lower == "upgrade", lower == "connection", strings.HasPrefix(lower, "sec-websocket-"),
			lower == "content-length", lower == "transfer-encoding":
			return nil, "", &mqtt.ArgumentError{What: "WebSocket header", Value: name, Err: errors.New("set by the WebSocket handshake")}
		case lower == "host":
			if len(values) > 0 {
				host = values[0]
			}
		default:
			out[name] = values
		}
	}
	return out, host, nil
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

// errTextMessage ends a connection on which the server sent a text message.
var errTextMessage = errors.New("mqtt: the server sent a WebSocket text message; MQTT travels in binary messages [MQTT-6.0.0-1]")
