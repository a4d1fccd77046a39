package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt/internal/brokertest"
)

// startProcess runs the built binary with args and returns once it has
// written ready on stderr. The rest of stderr is returned by the function
// that waits for the process.
func startProcess(t *testing.T, bin, ready string, args ...string) (*exec.Cmd, func() (string, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var seen []string
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	for found := false; !found; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("mqtt %s ended before %q: %q", args[0], ready, seen)
			}
			seen = append(seen, l)
			found = strings.Contains(l, ready)
		case <-deadline.C:
			t.Fatalf("mqtt %s: no %q in time: %q", args[0], ready, seen)
		}
	}
	waited := false
	t.Cleanup(func() {
		if !waited {
			cancel()
			for range lines {
			}
			_ = cmd.Wait()
		}
	})
	return cmd, func() (string, error) {
		rest := seen
		for l := range lines {
			rest = append(rest, l)
		}
		waited = true
		return strings.Join(rest, "\n"), cmd.Wait()
	}
}

// TestSignalsAndWill runs the binary: SIGINT ends sub with status 0 and a
// graceful disconnect, so its will is not published; a process killed with
// SIGKILL leaves its will to the broker, which publishes it.
func TestSignalsAndWill(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokertest.Options{})
	bin := buildBinary(t)
	watcher := start(t, "sub", "--server", b.URL(), "-t", "cli/will/#", "-v", "-C", "1", "-d")
	watcher.stderr.waitFor(t, "subscribed to", watcher.done)
	will := func(name string) []string {
		return []string{"sub", "--server", b.URL(), "-t", "cli/nothing", "-d",
			"--will-topic", "cli/will/" + name, "--will-payload", name + " is gone", "--will-qos", "1"}
	}

	graceful, wait := startProcess(t, bin, "subscribed to", will("graceful")...)
	if err := graceful.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if stderr, err := wait(); err != nil {
		t.Fatalf("sub after SIGINT: %v (want status 0); stderr:\n%s", err, stderr)
	}

	killed, wait := startProcess(t, bin, "subscribed to", will("killed")...)
	if err := killed.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = wait()

	if code := watcher.wait(t); code != exitOK {
		t.Fatalf("watcher: exit status %d; stderr:\n%s", code, watcher.stderr)
	}
	// The graceful one came first: had its will been published, it would
	// be the one message the watcher took.
	if got, want := watcher.stdout.String(), "cli/will/killed killed is gone\n"; got != want {
		t.Errorf("watcher got %q, want %q", got, want)
	}
}
