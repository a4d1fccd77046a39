//go:build !js

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
	"sync"

	"github.com/b4e21b16/mqtt"
	cws "github.com/coder/websocket"
)

// maxResponseHeader bounds the header of the server's handshake response.
const maxResponseHeader = 64 << 10

// dialWebSocket performs the opening handshake with target over a
// connection from dial (secured with tlsConfig for wss) and returns the
// WebSocket as a *conn. A nil dial stands for a net.Dialer, a nil
// tlsConfig for one with the host of target.
func dialWebSocket(ctx context.Context, target *url.URL, header http.Header, host string, dial mqtt.Dialer, tlsConfig *tls.Config) (net.Conn, error) {
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	if tlsConfig == nil {
		tlsConfig = &tls.Config{ServerName: target.Hostname()}
	}
	var under underConn
	ht := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			cc := &coalescingConn{Conn: nc}
			under.set(cc)
			return cc, nil
		},
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(nc, tlsConfig)
			if err := tc.HandshakeContext(ctx); err != nil {
				nc.Close()
				return nil, fmt.Errorf("TLS handshake: %w", err)
			}
			cc := &coalescingConn{Conn: tc}
			under.set(cc)
			return cc, nil
		},
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxResponseHeader,
	}
	defer ht.CloseIdleConnections()
	ws, resp, err := cws.Dial(ctx, target.String(), &cws.DialOptions{
		HTTPClient: &http.Client{
			Transport:     ht,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		HTTPHeader:   header,
		Host:         host,
		Subprotocols: []string{subprotocol},
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, &StatusError{StatusCode: resp.StatusCode, Status: resp.Status}
		}
		return nil, handshakeError(err)
	}
	nc := under.get()
	if nc == nil {
		// The HTTP client dialed through a function other than ours,
		// which would be a change in net/http.
		ws.CloseNow()
		return nil, errors.New("mqtt: WebSocket handshake: no connection under the WebSocket")
	}
	ws.SetReadLimit(-1) // the client limits the size of each packet
	return &conn{ws: ws, under: nc}, nil
}

// underConn records the connection that the HTTP client dialed for the
// handshake, from the goroutine that dials it.
type underConn struct {
	mu sync.Mutex
	nc *coalescingConn
}

func (u *underConn) set(nc *coalescingConn) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.nc = nc
}

func (u *underConn) get() *coalescingConn {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.nc
}

// handshakeError describes a failed opening handshake without quoting the
// URL: net/http's errors (*url.Error) quote it with its query, which may
// hold credentials, so only their cause is kept. The prefix that
// coder/websocket gives its own errors is left out too, as "WebSocket
// handshake" says it already.
func handshakeError(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	} else if inner := errors.Unwrap(err); inner != nil && strings.HasPrefix(err.Error(), "failed to WebSocket dial: ") {
		err = inner
	}
	return fmt.Errorf("mqtt: WebSocket handshake: %w", err)
}
