package mqtttest

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	_ "github.com/b4e21b16/mqtt/websocket" // the client side of WithWebSocket
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeTB records what a helper reports instead of failing the real test.
// Fatal ends the calling goroutine, as testing.T's does; run the helper
// with fakeTB.run. Methods it does not override panic (the embedded
// interface is nil), so a helper calling anything unexpected is noticed.
type fakeTB struct {
	testing.TB

	mu       sync.Mutex
	fatals   []string
	errs     []string
	cleanups []func()
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Logf(string, ...any) {}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatals = append(f.fatals, fmt.Sprintf(format, args...))
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

// run calls fn with f in a goroutine of its own, so that Fatalf can end it,
// and reports whether fn returned normally.
func (f *fakeTB) run(fn func(tb testing.TB)) (returned bool) {
	done := make(chan bool, 1)
	go func() {
		ok := false
		defer func() { done <- ok }()
		fn(f)
		ok = true
	}()
	return <-done
}

// cleanup runs the registered cleanups, last first.
func (f *fakeTB) cleanup() {
	f.mu.Lock()
	fns := f.cleanups
	f.cleanups = nil
	f.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// fatal returns the single fatal message, failing t if there is not
// exactly one.
func (f *fakeTB) fatal(t *testing.T) string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.fatals) != 1 {
		t.Fatalf("got %d fatal reports %q, want 1", len(f.fatals), f.fatals)
	}
	return f.fatals[0]
}

// wantFatal fails t unless fn fails the fake test with a message holding
// every one of parts.
func wantFatal(t *testing.T, fn func(tb testing.TB), parts ...string) {
	t.Helper()
	f := new(fakeTB)
	if f.run(fn) {
		t.Fatal("the helper returned; want it to fail the test")
	}
	msg := f.fatal(t)
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("failure message %q lacks %q", msg, p)
		}
	}
}

// wantPass fails t if fn reports any failure to the fake test.
func wantPass(t *testing.T, fn func(tb testing.TB)) {
	t.Helper()
	f := new(fakeTB)
	if !f.run(fn) {
		t.Fatalf("the helper failed the test: %q", f.fatals)
	}
	if len(f.errs) > 0 {
		t.Fatalf("the helper reported errors: %q", f.errs)
	}
	f.cleanup()
}
