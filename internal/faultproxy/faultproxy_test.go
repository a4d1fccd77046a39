package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait for an expected event.
const waitTimeout = 5 * time.Second

// startServer runs handler for every connection accepted on a fresh loopback
// listener and returns the listener's address. Everything is torn down when
// the test ends.
func startServer(t *testing.T, handler func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				handler(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func echo(c net.Conn) { _, _ = io.Copy(c, c) }

// source returns a handler that writes payload and then waits for the peer
// to go away.
func source(payload []byte) func(net.Conn) {
	return func(c net.Conn) {
		if _, err := c.Write(payload); err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, c)
	}
}

// recorder returns a handler that echoes and records everything it reads,
// and the channel on which the recorded bytes of each connection are sent
// once the connection ends.
func recorder() (func(net.Conn), <-chan []byte) {
	ch := make(chan []byte, 16)
	return func(c net.Conn) {
		var got []byte
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					err = werr
				}
			}
			if err != nil {
				ch <- got
				return
			}
		}
	}, ch
}

func newProxy(t *testing.T, upstream string) *Proxy {
	t.Helper()
	p, err := New(upstream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
	got := readN(t, c, len(msg))
	if string(got) != msg {
		t.Fatalf("read %q, want %q", got, msg)
	}
}

func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return buf
}

// readToEnd reads until the connection ends and fails if that takes longer
// than waitTimeout. A reset counts as an end.
func readToEnd(t *testing.T, c net.Conn) []byte {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if isTimeout(err) {
		t.Fatalf("connection still open after %v (read %d bytes)", waitTimeout, len(got))
	}
	return got
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func randomBytes(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestPassThrough(t *testing.T) {
	t.Parallel()
	p := newProxy(t, startServer(t, echo))
	if want := "mqtt://" + p.Addr(); p.URL() != want {
		t.Errorf("URL() = %q, want %q", p.URL(), want)
	}
	c := dial(t, p)

	data := randomBytes(1 << 20)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		werr <- err
	}()
	got := readN(t, c, len(data))
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data changed in transit")
	}
	if n := p.Conns(); n != 1 {
		t.Errorf("Conns() = %d, want 1", n)
	}
	if n := p.Accepted(); n != 1 {
		t.Errorf("Accepted() = %d, want 1", n)
	}
}

func TestServerToClientPayload(t *testing.T) {
	t.Parallel()
	payload := randomBytes(200 << 10)
	p := newProxy(t, startServer(t, source(payload)))
	c := dial(t, p)
	if got := readN(t, c, len(payload)); !bytes.Equal(got, payload) {
		t.Fatal("data changed in transit")
	}
}

func TestCutAll(t *testing.T) {
	t.Parallel()
	p := newProxy(t, startServer(t, echo))
	c1 := dial(t, p)
	c2 := dial(t, p)
	roundTrip(t, c1, "hello")
	roundTrip(t, c2, "hello")
	waitFor(t, "2 live connections", func() bool { return p.Conns() == 2 })

	p.CutAll()
	readToEnd(t, c1)
	readToEnd(t, c2)
	waitFor(t, "no live connections", func() bool { return p.Conns() == 0 })

	// The proxy keeps serving new connections.
	roundTrip(t, dial(t, p), "again")
}

func TestCutAfterServerToClient(t *testing.T) {
	t.Parallel()
	payload := randomBytes(100 << 10)
	p := newProxy(t, startServer(t, source(payload)))
	const n = 40000 // more than one forwarding chunk
	p.CutAfter(n, ServerToClient)
	if !p.Armed() {
		t.Fatal("Armed() = false after CutAfter")
	}
	got := readToEnd(t, dial(t, p))
	if !bytes.Equal(got, payload[:n]) {
		t.Fatalf("got %d bytes, want the first %d of the payload", len(got), n)
	}
	if p.Armed() {
		t.Error("Armed() = true after the cut fired")
	}
}

func TestCutAfterClientToServer(t *testing.T) {
	t.Parallel()
	h, rec := recorder()
	p := newProxy(t, startServer(t, h))
	c := dial(t, p)
	// Bytes forwarded before arming do not count.
	roundTrip(t, c, "hello")

	p.CutAfter(3, ClientToServer)
	if _, err := c.Write([]byte("abcdef")); err != nil {
		t.Fatal(err)
	}
	readToEnd(t, c)
	select {
	case got := <-rec:
		if string(got) != "helloabc" {
			t.Fatalf("server received %q, want %q", got, "helloabc")
		}
	case <-time.After(waitTimeout):
		t.Fatal("server connection not closed")
	}
}

func TestCutAfterBoth(t *testing.T) {
	t.Parallel()
	h, rec := recorder()
	p := newProxy(t, startServer(t, h))
	c := dial(t, p)
	// 4 bytes up and 4 bytes down leave 2 of the 10 for the next write.
	p.CutAfter(10, Both)
	roundTrip(t, c, "ping")
	if _, err := c.Write([]byte("xyz")); err != nil {
		t.Fatal(err)
	}
	readToEnd(t, c)
	select {
	case got := <-rec:
		if string(got) != "pingxy" {
			t.Fatalf("server received %q, want %q", got, "pingxy")
		}
	case <-time.After(waitTimeout):
		t.Fatal("server connection not closed")
	}
}

func TestCutAfterIsOneShot(t *testing.T) {
	t.Parallel()
	payload := randomBytes(1000)
	p := newProxy(t, startServer(t, source(payload)))
	p.CutAfter(0, ServerToClient)
	if got := readToEnd(t, dial(t, p)); len(got) != 0 {
		t.Fatalf("first connection got %d bytes, want 0", len(got))
	}
	c := dial(t, p)
	if got := readN(t, c, len(payload)); !bytes.Equal(got, payload) {
		t.Fatal("second connection: data changed in transit")
	}
	if p.Conns() != 1 {
		t.Errorf("Conns() = %d, want 1", p.Conns())
	}
}

func TestCutAfterRandom(t *testing.T) {
	t.Parallel()
	payload := randomBytes(50 << 10)
	p := newProxy(t, startServer(t, source(payload)))
	rng := rand.New(rand.NewPCG(7, 11))
	for range 5 {
		n := p.CutAfterRandom(rng, int64(len(payload)-1), ServerToClient)
		if n < 0 || n >= int64(len(payload)) {
			t.Fatalf("CutAfterRandom returned %d, out of range", n)
		}
		got := readToEnd(t, dial(t, p))
		if !bytes.Equal(got, payload[:n]) {
			t.Fatalf("got %d bytes, want the first %d of the payload", len(got), n)
		}
	}
}

func TestClearCut(t *testing.T) {
	t.Parallel()
	p := newProxy(t, startServer(t, echo))
	p.CutAfter(1, Both)
	p.ClearCut()
	if p.Armed() {
		t.Fatal("Armed() = true after ClearCut")
	}
	roundTrip(t, dial(t, p), "not cut")
}

func TestBlackhole(t *testing.T) {
	t.Parallel()
	for _, dir := range []Direction{ClientToServer, ServerToClient, Both} {
		t.Run(dir.String(), func(t *testing.T) {
			t.Parallel()
			p := newProxy(t, startServer(t, echo))
			c := dial(t, p)
			roundTrip(t, c, "ping")

			p.SetBlackhole(true, dir)
			if _, err := c.Write([]byte("lost")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "dropped bytes", func() bool { return p.Dropped() == 4 })
			if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			n, err := c.Read(make([]byte, 16))
			if !isTimeout(err) {
				t.Fatalf("read through black hole: n=%d err=%v, want timeout", n, err)
			}
			if p.Conns() != 1 {
				t.Fatalf("Conns() = %d during black hole, want 1", p.Conns())
			}

			p.SetBlackhole(false, dir)
			roundTrip(t, c, "back")
		})
	}
}

func TestDelay(t *testing.T) {
	t.Parallel()
	p := newProxy(t, startServer(t, echo))
	c := dial(t, p)
	roundTrip(t, c, "warm")

	const d = 50 * time.Millisecond
	p.SetDelay(d)
	start := time.Now()
	roundTrip(t, c, "slow")
	// One chunk in each direction, each delayed by d.
	if el := time.Since(start); el < 2*d {
		t.Fatalf("round trip took %v, want at least %v", el, 2*d)
	}
	p.SetDelay(0)
	roundTrip(t, c, "fast")
}

func TestCloseDuringDelay(t *testing.T) {
	t.Parallel()
	p, err := New(startServer(t, echo))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p)
	p.SetDelay(time.Hour)
	if _, err := c.Write([]byte("stuck")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Close blocked by a delayed chunk")
	}
	readToEnd(t, c)
}

func TestRefuse(t *testing.T) {
	t.Parallel()
	p := newProxy(t, startServer(t, echo))
	p.Refuse(true)
	c := dial(t, p)
	// The write may fail once the proxy has closed the connection.
	_, _ = c.Write([]byte("hello"))
	if got := readToEnd(t, c); len(got) != 0 {
		t.Fatalf("refused connection returned %q", got)
	}
	if p.Accepted() != 1 {
		t.Errorf("Accepted() = %d, want 1", p.Accepted())
	}
	if p.Conns() != 0 {
		t.Errorf("Conns() = %d, want 0", p.Conns())
	}

	p.Refuse(false)
	roundTrip(t, dial(t, p), "welcome")
	if p.Accepted() != 2 {
		t.Errorf("Accepted() = %d, want 2", p.Accepted())
	}
}

func TestReset(t *testing.T) {
	t.Parallel()
	p := newProxy(t, startServer(t, echo))
	p.Refuse(true)
	p.SetBlackhole(true, Both)
	p.SetDelay(time.Hour)
	p.CutAfter(0, Both)
	p.Reset()
	roundTrip(t, dial(t, p), "clean")
}

func TestUpstreamDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := newProxy(t, addr)
	if got := readToEnd(t, dial(t, p)); len(got) != 0 {
		t.Fatalf("got %q from a dead upstream", got)
	}
	if p.Conns() != 0 {
		t.Errorf("Conns() = %d, want 0", p.Conns())
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	p, err := New(startServer(t, echo))
	if err != nil {
		t.Fatal(err)
	}
	var cs []net.Conn
	for range 3 {
		c := dial(t, p)
		roundTrip(t, c, "hi")
		cs = append(cs, c)
	}
	p.SetBlackhole(true, ServerToClient)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		readToEnd(t, c)
	}
	if p.Conns() != 0 {
		t.Errorf("Conns() = %d after Close, want 0", p.Conns())
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Fault setters stay harmless after Close.
	p.CutAll()
	p.CutAfter(1, Both)
	p.Reset()
}

func TestNewRejectsNonLoopback(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"example.com:1883", "10.0.0.1:1883", "0.0.0.0:1883", "1883", "127.0.0.1:"} {
		if p, err := New(addr); err == nil {
			p.Close()
			t.Errorf("New(%q) succeeded, want error", addr)
		}
	}
	for _, addr := range []string{"localhost:1883", "127.0.0.1:1883", "[::1]:1883"} {
		p, err := New(addr)
		if err != nil {
			t.Errorf("New(%q): %v", addr, err)
			continue
		}
		if p.Upstream() != addr {
			t.Errorf("Upstream() = %q, want %q", p.Upstream(), addr)
		}
		p.Close()
	}
}

func TestDirectionString(t *testing.T) {
	t.Parallel()
	for d, want := range map[Direction]string{
		ClientToServer: "client->server",
		ServerToClient: "server->client",
		Both:           "both",
		0:              "Direction(0)",
	} {
		if got := d.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", uint8(d), got, want)
		}
	}
}
