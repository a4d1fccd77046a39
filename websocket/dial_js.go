//go:build js

package websocket

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"github.com/b4e21b16/mqtt"
	cws "github.com/coder/websocket"
)

// dialWebSocket opens a WebSocket to target with the browser's WebSocket,
// which dials, runs TLS and sends the upgrade request itself: dial and
// tlsConfig do not apply, and header fields cannot be set.
func dialWebSocket(ctx context.Context, target *url.URL, header http.Header, host string, _ mqtt.Dialer, _ *tls.Config) (net.Conn, error) {
	if len(header) > 0 || host != "" {
		return nil, errors.New("mqtt: a browser's WebSocket cannot send header fields: Transport.Header must be empty")
	}
	ws, _, err := cws.Dial(ctx, target.String(), &cws.DialOptions{Subprotocols: []string{subprotocol}})
	if err != nil {
		// The error quotes the URL, with its query, which may hold
		// credentials: keep only its cause.
		if cause := errors.Unwrap(err); cause != nil {
			return nil, fmt.Errorf("mqtt: WebSocket handshake: %w", cause)
		}
		return nil, errors.New("mqtt: WebSocket handshake failed")
	}
	ws.SetReadLimit(-1) // the client limits the size of each packet
	return newConn(ws, target.Host), nil
}
