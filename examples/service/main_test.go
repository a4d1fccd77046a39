package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds each wait of the test.
const waitTimeout = 20 * time.Second

// buildService compiles this package into a temporary directory.
func buildService(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "service")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is a running service process and its log lines.
type proc struct {
	cmd    *exec.Cmd
	lines  chan string // stderr, line by line; closed at EOF
	exited chan error  // the result of Wait
}

// startService runs the binary with args and registers a cleanup that
// kills it if the test did not end it.
func startService(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 1024), exited: make(chan error, 1)}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		defer close(p.lines)
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			p.lines <- s.Text()
		}
	}()
	go func() {
		<-scanned // Wait closes the pipe: read it all first
		p.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		for range p.lines {
		}
		<-scanned
	})
	return p
}

// waitLog returns the first log line from now on that contains every one
// of parts; lines before it are logged and skipped.
func (p *proc) waitLog(t *testing.T, parts ...string) string {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("the service exited before logging %q", parts)
			}
			t.Logf("service: %s", line)
			if containsAll(line, parts) {
				return line
			}
		case <-timer.C:
			t.Fatalf("the service did not log %q within %v", parts, waitTimeout)
		}
	}
}

// waitLogs waits until, from now on, each of wants has been matched by a
// log line (as by waitLog), in any order.
func (p *proc) waitLogs(t *testing.T, wants ...[]string) {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for len(wants) > 0 {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("the service exited before logging %q", wants)
			}
			t.Logf("service: %s", line)
			for i, parts := range wants {
				if containsAll(line, parts) {
					wants = append(wants[:i], wants[i+1:]...)
					break
				}
			}
		case <-timer.C:
			t.Fatalf("the service did not log %q within %v", wants, waitTimeout)
		}
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// waitExit waits for the process to exit and returns its exit code; the
// log lines left are drained into the test log.
func (p *proc) waitExit(t *testing.T) int {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	lines := p.lines
	for {
		select {
		case line, ok := <-lines:
			if ok {
				t.Logf("service: %s", line)
			} else {
				lines = nil // drained; wait for the exit
			}
		case err := <-p.exited:
			var exit *exec.ExitError
			switch {
			case err == nil:
				return 0
			case errors.As(err, &exit):
				return exit.ExitCode()
			default:
				t.Fatalf("wait: %v", err)
			}
		case <-timer.C:
			t.Fatalf("the service did not exit within %v", waitTimeout)
		}
	}
}

// waitStatus receives from the status subscription until want arrives,
// failing if the will ("lost") arrives first and want is not the will.
func waitStatus(t *testing.T, sub *mqtt.Subscription, want string) {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case m := <-sub.Messages():
			got := string(m.Payload)
			if strings.HasPrefix(got, want) {
				return
			}
			if got == "lost" {
				t.Fatalf("the will was published while waiting for %q", want)
			}
		case <-timer.C:
			t.Fatalf("no status %q within %v", want, waitTimeout)
		}
	}
}

// TestService runs the built service against mosquitto: it must come back
// after the broker is killed and restarted, keep consuming, stop with exit
// status 0 on SIGTERM without the broker publishing its will, and have its
// will published when it is killed.
func TestService(t *testing.T) {
	t.Parallel()
	bin := buildService(t)
	b := brokertest.Start(t, brokertest.Options{})
	const id = "svc-test"
	args := []string{"-server", b.URL(), "-id", id, "-interval", "100ms", "-max-backoff", "200ms"}
	svc := startService(t, bin, args...)
	// The two are logged by different goroutines, in either order.
	svc.waitLogs(t, []string{"msg=ready"}, []string{"msg=\"mqtt event\"", "kind=connected"})

	// The broker goes away and comes back on the same port.
	b.Kill(t)
	svc.waitLog(t, "kind=\"connection lost\"")
	svc.waitLog(t, "kind=reconnecting")
	b.Restart(t)
	svc.waitLog(t, "kind=connected")

	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	observer, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{b.URL()}, ClientID: "observer"})
	if err != nil {
		t.Fatal(err)
	}
	defer observer.Close()
	status, err := observer.Subscribe(ctx, "service/"+id+"/status", mqtt.AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, status, "running")

	// The consumer works on the new connection: the subscription was
	// restored.
	if err := observer.Publish(ctx, mqtt.Message{Topic: "service/" + id + "/in/job", Payload: []byte("work"), QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	svc.waitLog(t, "msg=message", "topic=service/"+id+"/in/job")
	waitStatus(t, status, "running uptime=")

	// Graceful: exit status 0, "stopped" published, no will.
	if err := svc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := svc.waitExit(t); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
	waitStatus(t, status, "stopped")
	// Mosquitto publishes a will as soon as it sees the connection end, so
	// this observation window is ample for a will that should not come.
	window := time.NewTimer(500 * time.Millisecond)
	defer window.Stop()
observe:
	for {
		select {
		case m := <-status.Messages():
			if string(m.Payload) == "lost" {
				t.Fatal("the will was published after a graceful shutdown")
			}
		case <-window.C:
			break observe
		}
	}

	// Killed: the broker publishes the will.
	killed := startService(t, bin, args...)
	killed.waitLog(t, "msg=ready")
	waitStatus(t, status, "running")
	if err := killed.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := killed.waitExit(t); code != -1 {
		t.Fatalf("exit code %d after SIGKILL, want -1 (killed by a signal)", code)
	}
	waitStatus(t, status, "lost")
}

func TestServiceFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-id", ""},
		{"-interval", "0s"},
		{"extra"},
	} {
		if _, err := parseFlags(args, new(strings.Builder)); err == nil {
			t.Errorf("parseFlags %q succeeded", args)
		}
	}
	cfg, err := parseFlags([]string{"-id", "x"}, new(strings.Builder))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(cfg.statusTopic(), " ", cfg.inputFilter()); got != "service/x/status service/x/in/#" {
		t.Fatalf("topics %q", got)
	}
}
