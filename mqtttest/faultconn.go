package mqtttest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ErrCut is the error of every read and write on a FaultConn after Cut.
var ErrCut = errors.New("mqtttest: connection cut")

// FaultConn wraps a net.Conn so that a test can break it on purpose: Cut
// fails it in both directions, Stall holds every read and write until
// Resume, SetDelay slows each write down, and the byte counters tell how
// much went through.
//
// A FaultConn starts no goroutines: reads and writes wait in the goroutine
// that called them. Deadlines set with SetDeadline, SetReadDeadline and
// SetWriteDeadline apply to the underlying connection and also end a wait
// caused by Stall or SetDelay, so a client that interrupts its I/O with a
// deadline is never stuck. All methods are safe for concurrent use.
type FaultConn struct {
	conn net.Conn

	// bytesRead and bytesWritten count what passed through Read and Write.
	bytesRead    atomic.Int64
	bytesWritten atomic.Int64

	mu sync.Mutex
	// changed is closed, and replaced, whenever a field below changes, to
	// wake reads and writes that wait for the state to change.
	changed                     chan struct{}
	cut, closed, stalled        bool
	delay                       time.Duration
	readDeadline, writeDeadline time.Time
}

// NewFaultConn wraps conn. The wrapper passes everything through until the
// test calls Cut, Stall or SetDelay.
func NewFaultConn(conn net.Conn) *FaultConn {
	return &FaultConn{conn: conn, changed: make(chan struct{})}
}

// NetConn returns the wrapped connection.
func (c *FaultConn) NetConn() net.Conn { return c.conn }

// Read reads from the wrapped connection. While the connection is stalled
// it waits, before reading and again before returning the data, so data that
// arrives during a stall is held back until Resume; if Cut or a deadline ends
// that second wait, the data is discarded.
func (c *FaultConn) Read(p []byte) (int, error) {
	if err := c.await(false, 0); err != nil {
		return 0, err
	}
	n, err := c.conn.Read(p)
	if werr := c.await(false, 0); werr != nil {
		return 0, werr
	}
	c.bytesRead.Add(int64(n))
	return n, err
}

// Write writes p to the wrapped connection after the configured delay,
// waiting first while the connection is stalled.
func (c *FaultConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	delay := c.delay
	c.mu.Unlock()
	if err := c.await(true, delay); err != nil {
		return 0, err
	}
	n, err := c.conn.Write(p)
	c.bytesWritten.Add(int64(n))
	if err != nil {
		if cerr := c.stateErr("write"); cerr != nil {
			err = cerr
		}
	}
	return n, err
}

// Cut breaks the connection: the wrapped connection is closed, so the peer
// sees it end, and every read and write, including those waiting now, fails
// with an error matching ErrCut. Cut is idempotent.
func (c *FaultConn) Cut() {
	c.mu.Lock()
	first := !c.cut && !c.closed
	c.cut = true
	c.signalLocked()
	c.mu.Unlock()
	if first {
		_ = c.conn.Close()
	}
}

// Stall holds every read and write, including those in progress, until
// Resume or Cut. The wrapped connection stays open and the peer notices
// nothing but silence, as on a network that drops every packet.
func (c *FaultConn) Stall() {
	c.mu.Lock()
	c.stalled = true
	c.signalLocked()
	c.mu.Unlock()
}

// Resume lets reads and writes held by Stall go on.
func (c *FaultConn) Resume() {
	c.mu.Lock()
	c.stalled = false
	c.signalLocked()
	c.mu.Unlock()
}

// SetDelay makes every later Write wait d before writing (zero: no delay).
func (c *FaultConn) SetDelay(d time.Duration) {
	c.mu.Lock()
	c.delay = d
	c.signalLocked()
	c.mu.Unlock()
}

// BytesRead returns how many bytes Read has returned so far.
func (c *FaultConn) BytesRead() int64 { return c.bytesRead.Load() }

// BytesWritten returns how many bytes Write has written so far.
func (c *FaultConn) BytesWritten() int64 { return c.bytesWritten.Load() }

// IsCut reports whether Cut was called.
func (c *FaultConn) IsCut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut
}

// Close closes the wrapped connection and wakes waiting reads and writes,
// which fail with net.ErrClosed.
func (c *FaultConn) Close() error {
	c.mu.Lock()
	first := !c.cut && !c.closed
	c.closed = true
	c.signalLocked()
	c.mu.Unlock()
	if !first {
		return nil
	}
	return c.conn.Close()
}

// LocalAddr returns the wrapped connection's local address.
func (c *FaultConn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the wrapped connection's remote address.
func (c *FaultConn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// SetDeadline sets the read and write deadlines, as net.Conn describes.
func (c *FaultConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadline, c.writeDeadline = t, t
	c.signalLocked()
	c.mu.Unlock()
	return c.conn.SetDeadline(t)
}

// SetReadDeadline sets the read deadline, as net.Conn describes.
func (c *FaultConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadline = t
	c.signalLocked()
	c.mu.Unlock()
	return c.conn.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline, as net.Conn describes.
func (c *FaultConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.writeDeadline = t
	c.signalLocked()
	c.mu.Unlock()
	return c.conn.SetWriteDeadline(t)
}

// signalLocked wakes every wait in progress; c.mu must be held.
func (c *FaultConn) signalLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// stateErr returns the error an operation fails with after Cut or Close,
// or nil.
func (c *FaultConn) stateErr(op string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stateErrLocked(op)
}

func (c *FaultConn) stateErrLocked(op string) error {
	switch {
	case c.cut:
		return fmt.Errorf("%s: %w", op, ErrCut)
	case c.closed:
		return fmt.Errorf("%s: %w", op, net.ErrClosed)
	}
	return nil
}

// await returns once the connection is not stalled and, when pause is
// positive, pause has passed since the call. It fails at once after Cut or
// Close, and when the read (write) deadline passes first.
func (c *FaultConn) await(write bool, pause time.Duration) error {
	op := "read"
	if write {
		op = "write"
	}
	var until time.Time
	if pause > 0 {
		until = time.Now().Add(pause)
	}
	// Each round either returns or waits for a state change, the deadline
	// or the pause, so the number of rounds is bounded by the number of
	// state changes the test makes.
	for {
		c.mu.Lock()
		if err := c.stateErrLocked(op); err != nil {
			c.mu.Unlock()
			return err
		}
		deadline := c.readDeadline
		if write {
			deadline = c.writeDeadline
		}
		stalled, changed := c.stalled, c.changed
		c.mu.Unlock()

		now := time.Now()
		if !deadline.IsZero() && !now.Before(deadline) && (stalled || now.Before(until)) {
			return fmt.Errorf("%s: %w", op, os.ErrDeadlineExceeded)
		}
		if !stalled && !now.Before(until) {
			return nil
		}
		wake := deadline
		if !stalled && (wake.IsZero() || until.Before(wake)) {
			wake = until
		}
		if wake.IsZero() {
			<-changed
			continue
		}
		t := time.NewTimer(wake.Sub(now))
		select {
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}
