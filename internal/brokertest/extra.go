package brokertest

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// ExtraListener is an additional mosquitto listener for Options.Extra, on a
// port that was free on all interfaces when it was made. Start does not wait
// for it; call Broker.WaitListener.
type ExtraListener struct {
	Port  int
	Lines []string // the configuration lines, for Options.Extra
}

// Addr returns the listener's 127.0.0.1:port address.
func (l ExtraListener) Addr() string { return hostPort(l.Port) }

// SecureWebSocketListener returns an MQTT over WebSocket listener with TLS
// (wss://) serving t's certificate, for Options.Extra. Mosquitto binds
// websockets listeners to all interfaces, so the port is chosen free on all
// of them.
func SecureWebSocketListener(tb testing.TB, t *TLS) ExtraListener {
	tb.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		tb.Fatalf("brokertest: finding a free port: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	lines := []string{
		fmt.Sprintf("listener %d 127.0.0.1", port),
		"protocol websockets",
		"certfile " + t.CertFile,
		"keyfile " + t.KeyFile,
	}
	if t.CAFile != "" {
		lines = append(lines, "cafile "+t.CAFile)
	}
	if t.RequireClientCert {
		lines = append(lines, "require_certificate true")
	}
	return ExtraListener{Port: port, Lines: lines}
}

// WaitListener waits until a listener the broker was given through
// Options.Extra accepts TCP connections at addr, or fails the test after
// the startup timeout.
func (b *Broker) WaitListener(tb testing.TB, addr string) {
	tb.Helper()
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	backoff := 2 * time.Millisecond
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		retry := time.NewTimer(backoff)
		select {
		case <-deadline.C:
			retry.Stop()
			tb.Fatalf("brokertest: listener %s not ready after %v: %v\nbroker log:\n%s", addr, readyTimeout, err, b.logTail(0))
		case <-retry.C:
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}
