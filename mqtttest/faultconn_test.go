package mqtttest

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// window is how long a test watches for something that must not happen.
const window = 50 * time.Millisecond

// tcpPair returns a FaultConn around one end of a loopback TCP connection
// and the other end.
func tcpPair(t *testing.T) (*FaultConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, ok := <-accepted
	if !ok {
		c.Close()
		t.Fatal("accept failed")
	}
	fc := NewFaultConn(c)
	t.Cleanup(func() { fc.Close(); peer.Close() })
	return fc, peer
}

type result struct {
	n   int
	err error
	buf []byte
}

// goRead reads once from c in a goroutine and delivers the outcome.
func goRead(c net.Conn) <-chan result {
	ch := make(chan result, 1)
	go func() {
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		ch <- result{n, err, buf[:n]}
	}()
	return ch
}

// goWrite writes p to c in a goroutine and delivers the outcome.
func goWrite(c net.Conn, p string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		n, err := c.Write([]byte(p))
		ch <- result{n: n, err: err}
	}()
	return ch
}

func await(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(testTimeout):
		t.Fatal("the operation did not return")
		return result{}
	}
}

func pending(t *testing.T, ch <-chan result, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s returned (%d, %v) while stalled", what, r.n, r.err)
	case <-time.After(window):
	}
}

func readString(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	buf := make([]byte, n)
	if err := c.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	return string(buf)
}

func TestFaultConnPassThrough(t *testing.T) {
	t.Parallel()
	fc, peer := tcpPair(t)
	if fc.NetConn() == nil || fc.LocalAddr().String() != peer.RemoteAddr().String() || fc.RemoteAddr().String() != peer.LocalAddr().String() {
		t.Fatal("addresses are not those of the wrapped connection")
	}
	if _, err := fc.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, peer, 5); got != "hello" {
		t.Fatalf("peer read %q", got)
	}
	if _, err := peer.Write([]byte("world!")); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, fc, 6); got != "world!" {
		t.Fatalf("read %q", got)
	}
	if fc.BytesWritten() != 5 || fc.BytesRead() != 6 {
		t.Fatalf("counted %d written, %d read; want 5, 6", fc.BytesWritten(), fc.BytesRead())
	}
}

func TestFaultConnCut(t *testing.T) {
	t.Parallel()
	fc, peer := tcpPair(t)
	blocked := goRead(fc)
	pending(t, blocked, "a read with nothing to read")
	fc.Cut()
	if r := await(t, blocked); !errors.Is(r.err, ErrCut) {
		t.Fatalf("blocked read: %v, want ErrCut", r.err)
	}
	if _, err := fc.Write([]byte("x")); !errors.Is(err, ErrCut) {
		t.Fatalf("write after Cut: %v, want ErrCut", err)
	}
	if _, err := fc.Read(make([]byte, 1)); !errors.Is(err, ErrCut) {
		t.Fatalf("read after Cut: %v, want ErrCut", err)
	}
	if !fc.IsCut() {
		t.Fatal("IsCut is false")
	}
	peer.SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := peer.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("peer read %v, want EOF", err)
	}
	fc.Cut()
	if err := fc.Close(); err != nil {
		t.Fatalf("Close after Cut: %v", err)
	}
}

func TestFaultConnStall(t *testing.T) {
	t.Parallel()
	fc, peer := tcpPair(t)
	fc.Stall()
	w := goWrite(fc, "out")
	pending(t, w, "write")
	if _, err := peer.Write([]byte("in")); err != nil {
		t.Fatal(err)
	}
	r := goRead(fc)
	pending(t, r, "read")
	if fc.BytesRead() != 0 || fc.BytesWritten() != 0 {
		t.Fatal("bytes counted while stalled")
	}
	fc.Resume()
	if res := await(t, w); res.err != nil || res.n != 3 {
		t.Fatalf("write after Resume: %d, %v", res.n, res.err)
	}
	if got := readString(t, peer, 3); got != "out" {
		t.Fatalf("peer read %q", got)
	}
	if res := await(t, r); res.err != nil || string(res.buf) != "in" {
		t.Fatalf("read after Resume: %q, %v", res.buf, res.err)
	}
}

// TestFaultConnStallHoldsRead checks that data arriving for a read that was
// already waiting in the wrapped connection when Stall was called is held
// back until Resume.
func TestFaultConnStallHoldsRead(t *testing.T) {
	t.Parallel()
	fc, peer := tcpPair(t)
	r := goRead(fc)
	pending(t, r, "a read with nothing to read")
	fc.Stall()
	if _, err := peer.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	pending(t, r, "read")
	fc.Resume()
	if res := await(t, r); res.err != nil || string(res.buf) != "late" {
		t.Fatalf("read after Resume: %q, %v", res.buf, res.err)
	}
}

func TestFaultConnStallDeadline(t *testing.T) {
	t.Parallel()
	fc, _ := tcpPair(t)
	fc.Stall()
	if err := fc.SetReadDeadline(time.Now().Add(window)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := fc.Read(make([]byte, 1))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read: %v, want a timeout", err)
	}
	if time.Since(start) < window/2 {
		t.Fatalf("timed out after %v, before the deadline", time.Since(start))
	}
	// A deadline in the past set during a wait ends it, as clients do to
	// interrupt I/O.
	w := goWrite(fc, "x")
	pending(t, w, "write")
	if err := fc.SetDeadline(time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	if res := await(t, w); !errors.Is(res.err, os.ErrDeadlineExceeded) {
		t.Fatalf("write: %v, want a timeout", res.err)
	}
	// Clearing the deadline lets the wait go on until Resume.
	fc.SetDeadline(time.Time{})
	w = goWrite(fc, "y")
	pending(t, w, "write")
	fc.Resume()
	if res := await(t, w); res.err != nil {
		t.Fatal(res.err)
	}
}

func TestFaultConnStallCutClose(t *testing.T) {
	t.Parallel()
	fc, _ := tcpPair(t)
	fc.Stall()
	w := goWrite(fc, "x")
	pending(t, w, "write")
	fc.Cut()
	if res := await(t, w); !errors.Is(res.err, ErrCut) {
		t.Fatalf("write: %v, want ErrCut", res.err)
	}

	fc2, _ := tcpPair(t)
	fc2.Stall()
	r := goRead(fc2)
	pending(t, r, "read")
	if err := fc2.Close(); err != nil {
		t.Fatal(err)
	}
	if res := await(t, r); !errors.Is(res.err, net.ErrClosed) {
		t.Fatalf("read: %v, want net.ErrClosed", res.err)
	}
	if err := fc2.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestFaultConnDelay(t *testing.T) {
	t.Parallel()
	fc, peer := tcpPair(t)
	const delay = 80 * time.Millisecond
	fc.SetDelay(delay)
	start := time.Now()
	if _, err := fc.Write([]byte("slow")); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < delay {
		t.Fatalf("write took %v, want at least %v", took, delay)
	}
	if got := readString(t, peer, 4); got != "slow" {
		t.Fatalf("peer read %q", got)
	}
	// Cut ends a delayed write at once.
	fc.SetDelay(time.Hour)
	w := goWrite(fc, "never")
	pending(t, w, "delayed write")
	fc.Cut()
	if res := await(t, w); !errors.Is(res.err, ErrCut) {
		t.Fatalf("write: %v, want ErrCut", res.err)
	}
}

func TestDialer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 8)
	go func() {
		defer close(accepted)
		for range cap(accepted) {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range accepted {
			c.Close()
		}
	})

	ctx := testContext(t)
	d := NewDialer()
	if d.Last() != nil || d.Dials() != 0 {
		t.Fatal("a new Dialer has connections")
	}
	refused := errors.New("broker down")
	d.Refuse(refused)
	if _, err := d.Dial(ctx, "tcp", ln.Addr().String()); !errors.Is(err, refused) {
		t.Fatalf("dial while refusing: %v", err)
	}
	d.Refuse(nil)
	d.SetDelay(time.Millisecond)
	first, err := d.Dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	second := make(chan *FaultConn, 1)
	go func() {
		f := new(fakeTB)
		var c *FaultConn
		f.run(func(tb testing.TB) { c = d.WaitDials(tb, 2, testTimeout) })
		second <- c
	}()
	c2, err := d.Dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if got := <-second; got != c2 {
		t.Fatal("WaitDials(2) did not return the second connection")
	}
	if d.Dials() != 2 || d.Last() != c2 || d.Conns()[0] != first {
		t.Fatal("Dials, Last or Conns disagree with the dials made")
	}
	start := time.Now()
	d.SetDelay(window)
	if _, err := first.Write([]byte("x")); err != nil || time.Since(start) < window {
		t.Fatalf("write on an existing connection after SetDelay: %v after %v", err, time.Since(start))
	}
	d.Cut()
	for i, c := range d.Conns() {
		if !c.IsCut() {
			t.Errorf("connection %d not cut", i)
		}
	}
	if _, err := d.Dial(ctx, "udp", "not an address"); err == nil {
		t.Fatal("a bad dial succeeded")
	}

	wantFatal(t, func(tb testing.TB) { d.WaitDials(tb, 3, window) }, "2 connection(s) dialed within 50ms, want 3")
	wantFatal(t, func(tb testing.TB) { d.WaitDials(tb, 0, window) }, "n = 0")
}
