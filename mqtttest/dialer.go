package mqtttest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// Dialer opens connections for a client and wraps each one in a FaultConn,
// so a test can break the connection a client is using and watch it
// reconnect. Set its Dial method as mqtt.Config.Dialer:
//
//	d := mqtttest.NewDialer()
//	c := mqtttest.Connect(t, b.URL(), mqtt.Config{Dialer: d.Dial})
//	d.Last().Cut()
//
// The zero value is not usable; call NewDialer. All methods are safe for
// concurrent use.
type Dialer struct {
	net net.Dialer

	mu sync.Mutex
	// conns holds every connection dialed, in order.
	conns []*FaultConn
	// dialed is closed, and replaced, whenever a connection is added.
	dialed chan struct{}
	// refuse, when non-nil, is the error every dial fails with.
	refuse error
	// delay is given to each new connection's SetDelay.
	delay time.Duration
}

// NewDialer returns a Dialer that dials with a net.Dialer.
func NewDialer() *Dialer {
	return &Dialer{dialed: make(chan struct{})}
}

// Dial opens a connection to addr and returns it wrapped in a FaultConn. It
// has the shape of mqtt.Dialer. While Refuse is in force it fails without
// dialing.
func (d *Dialer) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	refuse := d.refuse
	d.mu.Unlock()
	if refuse != nil {
		return nil, fmt.Errorf("mqtttest: dial %s: %w", addr, refuse)
	}
	conn, err := d.net.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("mqtttest: dial %s: %w", addr, err)
	}
	fc := NewFaultConn(conn)
	d.mu.Lock()
	fc.SetDelay(d.delay)
	d.conns = append(d.conns, fc)
	close(d.dialed)
	d.dialed = make(chan struct{})
	d.mu.Unlock()
	return fc, nil
}

// Conns returns every connection dialed so far, oldest first.
func (d *Dialer) Conns() []*FaultConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*FaultConn(nil), d.conns...)
}

// Dials returns how many connections were dialed so far.
func (d *Dialer) Dials() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.conns)
}

// Last returns the connection dialed most recently, or nil if none was.
func (d *Dialer) Last() *FaultConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.conns) == 0 {
		return nil
	}
	return d.conns[len(d.conns)-1]
}

// Cut cuts every connection dialed so far (see FaultConn.Cut).
func (d *Dialer) Cut() {
	for _, c := range d.Conns() {
		c.Cut()
	}
}

// Refuse makes every later dial fail with an error wrapping err, as if
// the broker were unreachable; Refuse(nil) allows dialing again.
// Connections already open are not affected.
func (d *Dialer) Refuse(err error) {
	d.mu.Lock()
	d.refuse = err
	d.mu.Unlock()
}

// SetDelay sets the per-write delay of every connection dialed so far and
// of those dialed later (see FaultConn.SetDelay).
func (d *Dialer) SetDelay(delay time.Duration) {
	d.mu.Lock()
	d.delay = delay
	conns := append([]*FaultConn(nil), d.conns...)
	d.mu.Unlock()
	for _, c := range conns {
		c.SetDelay(delay)
	}
}

// WaitDials waits until at least n connections were dialed and returns the
// n-th (counting from 1). It fails the test if that takes longer than
// timeout (zero or less: DefaultTimeout).
func (d *Dialer) WaitDials(tb testing.TB, n int, timeout time.Duration) *FaultConn {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("mqtttest: WaitDials: n = %d, want at least 1", n)
	}
	timer := time.NewTimer(orDefault(timeout))
	defer timer.Stop()
	// Each round waits for a new connection or the timer, so the loop
	// ends within timeout.
	for {
		d.mu.Lock()
		got, dialed := len(d.conns), d.dialed
		var c *FaultConn
		if got >= n {
			c = d.conns[n-1]
		}
		d.mu.Unlock()
		if c != nil {
			return c
		}
		select {
		case <-dialed:
		case <-timer.C:
			tb.Fatalf("mqtttest: %d connection(s) dialed within %v, want %d", got, orDefault(timeout), n)
			return nil
		}
	}
}
