//go:build js

package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
)

// In a browser (GOOS=js) a program cannot open TCP or unix sockets, and Go's
// net package offers only an in-memory fake network there: the built-in
// transports are refused when the configuration is checked, and TLS on TCP
// is not linked. WebSocket servers (ws://, wss://) go through the browser's
// own WebSocket with package github.com/b4e21b16/mqtt/websocket.

// errNoSockets says what the browser lacks; errors.Is matches
// errors.ErrUnsupported.
var errNoSockets = fmt.Errorf("TCP and unix sockets are not available in a browser (GOOS=js): use a ws:// or wss:// server and import %s: %w", websocketPackage, errors.ErrUnsupported)

// errNoTLS says that TLS on TCP is not there; errors.Is matches
// errors.ErrUnsupported.
var errNoTLS = fmt.Errorf("TLS on TCP is not available in a browser (GOOS=js): use wss:// and import %s: %w", websocketPackage, errors.ErrUnsupported)

// defaultDialer is the Dialer used when Config.Dialer is nil: it fails.
func defaultDialer() Dialer {
	return func(context.Context, string, string) (net.Conn, error) { return nil, errNoSockets }
}

// checkPlatform refuses the built-in transports the browser cannot offer:
// TLS on TCP always, TCP and unix sockets unless the application brought
// its own Dialer.
func checkPlatform(srv server, customDialer bool) error {
	switch {
	case srv.kind == kindTLS:
		return &ArgumentError{What: "server URL", Value: srv.url, Err: errNoTLS}
	case (srv.kind == kindTCP || srv.kind == kindUnix) && !customDialer:
		return &ArgumentError{What: "server URL", Value: srv.url, Err: errNoSockets}
	}
	return nil
}

// tlsHandshake is never reached in a browser: checkPlatform refuses TLS
// servers, redirections included.
func tlsHandshake(context.Context, net.Conn, *tls.Config, server) (net.Conn, error) {
	return nil, errNoTLS
}
