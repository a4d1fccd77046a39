//go:build !js

package mqtt

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync/atomic"
)

// defaultDialer is the Dialer used when Config.Dialer is nil.
func defaultDialer() Dialer {
	var d net.Dialer
	return d.DialContext
}

// checkPlatform reports whether this build can reach srv: every built-in
// transport is available outside the browser.
func checkPlatform(server, bool) error { return nil }

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
