package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// useTLS reports whether a TLS flag was given.
func (c *connFlags) useTLS() bool {
	return c.caFile != "" || c.certFile != "" || c.key != "" || c.insecure
}

// tlsConfig builds the TLS configuration from --cafile, --cert, --key and
// --insecure.
func (c *connFlags) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{InsecureSkipVerify: c.insecure}
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return nil, fmt.Errorf("--cafile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cafile %s holds no PEM certificate", c.caFile)
		}
		tc.RootCAs = pool
	}
	if (c.certFile == "") != (c.key == "") {
		return nil, usagef("--cert and --key go together: give both or neither")
	}
	if c.certFile != "" {
		pair, err := tls.LoadX509KeyPair(c.certFile, c.key)
		if err != nil {
			return nil, fmt.Errorf("--cert %s with --key %s: %w", c.certFile, c.key, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}
