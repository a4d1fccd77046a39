package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"go.uber.org/goleak"
)

// TestMain checks that no command leaves a goroutine behind once run has
// returned.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds each command a test runs.
const testTimeout = 30 * time.Second

// syncBuffer is an io.Writer that goroutines may share, and that a test can
// wait on for some text to appear.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // gets a token after each write
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the buffer contains text, failing the test after
// testTimeout or when exited (if not nil) closes first.
func (b *syncBuffer) waitFor(t *testing.T, text string, exited <-chan struct{}) {
	t.Helper()
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	for !strings.Contains(b.String(), text) {
		select {
		case <-b.changed:
		case <-exited:
			if !strings.Contains(b.String(), text) {
				t.Fatalf("the command ended before writing %q; it wrote:\n%s", text, b.String())
			}
		case <-deadline.C:
			t.Fatalf("%q did not appear within %s; got:\n%s", text, testTimeout, b.String())
		}
	}
}

// result is what a command run in process did.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs the command line args in process with stdin and returns what it
// did, failing the test if it runs longer than testTimeout.
func cli(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, strings.NewReader(stdin), &stdout, &stderr)
	if ctx.Err() != nil {
		t.Fatalf("mqtt %s: still running after %s", strings.Join(args, " "), testTimeout)
	}
	return result{code, stdout.String(), stderr.String()}
}

// background is a command run in process in a goroutine.
type background struct {
	stdout, stderr *syncBuffer
	done           chan struct{}
	code           int // valid once done is closed
	cancel         context.CancelFunc
}

// start runs the command line args in process in a goroutine. The test's
// cleanup interrupts it and waits for it.
func start(t *testing.T, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	bg := &background{stdout: newSyncBuffer(), stderr: newSyncBuffer(), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(bg.done)
		bg.code = run(ctx, args, strings.NewReader(""), bg.stdout, bg.stderr)
	}()
	t.Cleanup(func() {
		cancel()
		<-bg.done
	})
	return bg
}

// wait waits for the command to end and returns its exit status.
func (bg *background) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-bg.done:
		return bg.code
	case <-time.After(testTimeout + 5*time.Second):
		t.Fatalf("the command did not end; stdout:\n%s\nstderr:\n%s", bg.stdout, bg.stderr)
		return -1
	}
}

// hostPort splits a broker's address for -h and -p.
func hostPort(t *testing.T, addr string) (host, port string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

// tool returns the path of a mosquitto client program, skipping the test
// when it is not installed, or failing it when the CI variable is set.
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (install mosquitto-clients): %v", name, err)
		}
		t.Skipf("%s is not installed (install mosquitto-clients)", name)
	}
	return path
}

// startBroker starts a mosquitto broker for the test.
func startBroker(t *testing.T, opts brokertest.Options) *brokertest.Broker {
	t.Helper()
	return brokertest.Start(t, opts)
}

// closedPort returns a loopback address where nothing listens: a port that
// was free a moment ago.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// mqttVersion is the library's protocol version type, named for the tests.
type mqttVersion = mqtt.ProtocolVersion
