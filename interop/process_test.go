package interop

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

const (
	// readyTimeout bounds the wait for a started broker to accept
	// connections; RabbitMQ takes ten seconds or more to boot.
	readyTimeout = 60 * time.Second
	// stopTimeout bounds the wait for a broker process to exit after
	// SIGTERM before it is killed.
	stopTimeout = 15 * time.Second
	// startAttempts is how often a broker is started on new ports when it
	// exits during startup, which usually means a port was taken meanwhile.
	startAttempts = 3
)

// unavailableError reports that a broker is not installed or cannot be
// executed at all. Without CI set, tests that need the broker are skipped.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

// findBinary returns the path of a broker executable from PATH or the
// usual system directories.
func findBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/local/bin", "/usr/lib/rabbitmq/bin"} {
		p := dir + "/" + name
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", &unavailableError{fmt.Errorf("%s not found in PATH or the system directories", name)}
}

// freePorts returns n distinct free loopback ports. They are released
// before returning, so a broker started on them may still lose a race with
// another process; callers retry with new ports when startup fails.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// process is a broker running as a child process, its output in a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	stdin   io.Closer     // held open while the broker runs, if any
	done    chan struct{} // closed when the process has exited
	err     error         // result of cmd.Wait once done is closed
}

// startProcess runs bin with args and env in dir, output appended to
// logPath. With holdStdin, the child's standard input is a pipe that stays
// open until stop: a broker that ends on end of input then also ends when
// the test binary dies.
func startProcess(name, dir, logPath string, env []string, holdStdin bool, bin string, args ...string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	if holdStdin {
		w, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		p.stdin = w
	}
	if err := cmd.Start(); err != nil {
		if p.stdin != nil {
			p.stdin.Close()
		}
		return nil, &unavailableError{fmt.Errorf("running %s: %w", bin, err)}
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// waitReady polls addr with TCP dials until one succeeds, the process
// exits or timeout passes.
func (p *process) waitReady(addr string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	backoff := 5 * time.Millisecond
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			select {
			case <-p.done:
				return fmt.Errorf("%s exited during startup: %v", p.name, p.err)
			default:
				return nil
			}
		}
		retry := time.NewTimer(backoff)
		select {
		case <-p.done:
			retry.Stop()
			return fmt.Errorf("%s exited during startup: %v", p.name, p.err)
		case <-deadline.C:
			retry.Stop()
			return fmt.Errorf("%s not accepting connections on %s after %v: %v", p.name, addr, timeout, err)
		case <-retry.C:
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// stop ends the process with SIGTERM, escalating to SIGKILL after
// stopTimeout, and reports whether it had died before being asked to.
func (p *process) stop() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s had exited unexpectedly: %v\n%s", p.name, p.err, p.logTail(4000))
	default:
	}
	if p.stdin != nil {
		p.stdin.Close()
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		<-p.done
		return nil
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within %v of SIGTERM; killed it", p.name, stopTimeout)
	}
}

// kill ends the process at once, for a failed startup.
func (p *process) kill() {
	if p.stdin != nil {
		p.stdin.Close()
	}
	p.cmd.Process.Kill()
	<-p.done
}

// log returns everything the process has written so far.
func (p *process) log() string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("<cannot read %s log: %v>", p.name, err)
	}
	return string(data)
}

// logTail returns the last n bytes of the log.
func (p *process) logTail(n int) string {
	s := p.log()
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return strings.TrimSpace(s)
}

// errStartup marks a startup failure that new ports may cure.
var errStartup = errors.New("broker did not start")
