// Package brokertest runs a real mosquitto broker as a child process for
// integration tests.
//
// Each broker gets its own configuration, log file and data directory in a
// temporary directory and listens on free loopback ports. When mosquitto is
// not installed the calling test is skipped, unless the CI environment
// variable is set, in which case it fails.
package brokertest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// readyTimeout bounds the wait for a started broker to accept connections.
	readyTimeout = 10 * time.Second
	// stopTimeout bounds the wait for a broker to exit after SIGTERM.
	stopTimeout = 10 * time.Second
	// startAttempts is how often Start picks new ports when the broker
	// exits during startup, which usually means a port was taken meanwhile.
	startAttempts = 3
	// maxUnixPath keeps socket paths below the sun_path limit (108 on Linux).
	maxUnixPath = 100
)

// Options configures a broker started by Start. The zero value gives a
// single anonymous MQTT listener over TCP without persistence.
type Options struct {
	// WebSocket adds an MQTT over WebSocket listener, see Broker.WebSocketURL.
	WebSocket bool

	// Unix adds a unix domain socket listener, see Broker.UnixPath.
	Unix bool

	// Persistence enables mosquitto persistence with its database in the
	// broker directory, so retained messages and sessions survive Restart.
	// Mosquitto writes the database when it is stopped with Stop; a Kill
	// loses whatever was not saved by autosave (see "autosave_interval",
	// which can be set with Extra).
	Persistence bool

	// Users, when non-empty, disables anonymous access and allows only
	// these user names with the given passwords.
	Users map[string]string

	// TLS, when non-nil, adds an MQTT over TLS listener, see Broker.TLSAddr.
	TLS *TLS

	// Extra holds configuration lines appended verbatim after the generated
	// configuration, for example "max_inflight_messages 1" or a complete
	// additional listener block. Lines must not repeat options that take a
	// string value and are already generated (such as persistence_location
	// or password_file): mosquitto rejects duplicates of those.
	// Listener-specific options apply to the last listener, so add a
	// "listener" line first when they are meant for a new listener.
	Extra []string
}

// TLS configures the TLS listener of a broker. File names must be absolute
// and contain no white space.
type TLS struct {
	// CertFile and KeyFile are the PEM encoded server certificate (chain)
	// and private key.
	CertFile, KeyFile string

	// CAFile is a PEM file with the certificate authorities that client
	// certificates must chain to. It is required with RequireClientCert.
	CAFile string

	// RequireClientCert makes the broker reject clients that do not present
	// a valid certificate.
	RequireClientCert bool
}

// Broker is a mosquitto process started by Start. Its methods may be called
// from multiple goroutines.
type Broker struct {
	bin      string
	dir      string
	confPath string
	logPath  string
	opts     Options

	tcpPort  int
	wsPort   int
	tlsPort  int
	unixPath string

	mu   sync.Mutex // guards proc and serializes Kill, Stop and Restart
	proc *process   // nil when the broker is not running
}

// process is one run of the mosquitto binary.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // result of cmd.Wait, valid once done is closed
}

// unavailableError reports that mosquitto is not installed or cannot be
// executed at all; Start skips the test for it unless CI is set.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

// Start starts a mosquitto broker configured by opts, waits until all of
// its listeners accept connections and registers a cleanup with tb that
// stops it. Broker crashes noticed at cleanup are reported as test errors.
//
// When mosquitto is not installed or cannot be executed, the test is
// skipped, or fails if the environment variable CI is non-empty. Any other
// failure to start the broker fails the test.
func Start(tb testing.TB, opts Options) *Broker {
	tb.Helper()
	b, err := newBroker(tb, opts)
	if err == nil {
		err = b.startNew()
	}
	if err != nil {
		if _, ok := errors.AsType[*unavailableError](err); ok && os.Getenv("CI") == "" {
			tb.Skipf("brokertest: mosquitto is not available: %v", err)
		}
		tb.Fatalf("brokertest: %v", err)
	}
	tb.Cleanup(func() { b.cleanup(tb) })
	return b
}

// Addr returns the host:port address of the MQTT over TCP listener.
func (b *Broker) Addr() string { return hostPort(b.tcpPort) }

// URL returns the URL of the MQTT over TCP listener, such as
// "mqtt://127.0.0.1:34567".
func (b *Broker) URL() string { return "mqtt://" + b.Addr() }

// WebSocketURL returns the URL of the MQTT over WebSocket listener, such as
// "ws://127.0.0.1:34568", or "" when Options.WebSocket is false. The broker
// accepts any request path.
func (b *Broker) WebSocketURL() string {
	if b.wsPort == 0 {
		return ""
	}
	return "ws://" + hostPort(b.wsPort)
}

// TLSAddr returns the host:port address of the MQTT over TLS listener, or ""
// when Options.TLS is nil.
func (b *Broker) TLSAddr() string {
	if b.tlsPort == 0 {
		return ""
	}
	return hostPort(b.tlsPort)
}

// TLSURL returns the URL of the MQTT over TLS listener, such as
// "mqtts://127.0.0.1:34569", or "" when Options.TLS is nil.
func (b *Broker) TLSURL() string {
	if b.tlsPort == 0 {
		return ""
	}
	return "mqtts://" + b.TLSAddr()
}

// UnixPath returns the path of the unix domain socket listener, or "" when
// Options.Unix is false.
func (b *Broker) UnixPath() string { return b.unixPath }

// Dir returns the broker's temporary directory, which holds its
// configuration, log file and persistence data. It is removed when the
// test ends.
func (b *Broker) Dir() string { return b.dir }

// Log returns everything the broker has logged so far, across restarts.
func (b *Broker) Log() string {
	data, err := os.ReadFile(b.logPath)
	if err != nil {
		return fmt.Sprintf("<cannot read broker log: %v>", err)
	}
	return string(data)
}

// Kill stops the broker abruptly with SIGKILL and waits for it to exit.
// It does nothing when the broker is not running.
func (b *Broker) Kill(tb testing.TB) {
	tb.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.halt(tb, syscall.SIGKILL)
}

// Stop stops the broker with SIGTERM, which lets it close connections and
// save persistent state, and waits for it to exit. It does nothing when the
// broker is not running.
func (b *Broker) Stop(tb testing.TB) {
	tb.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.halt(tb, syscall.SIGTERM)
}

// Restart starts the broker again with the same configuration and ports,
// typically after Kill or Stop, and waits until it accepts connections. A
// running broker is stopped first as by Stop. Failures are fatal to the
// test.
func (b *Broker) Restart(tb testing.TB) {
	tb.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.halt(tb, syscall.SIGTERM)
	p, err := b.launch()
	if err != nil {
		tb.Fatalf("brokertest: restart: %v", err)
	}
	b.proc = p
}

func newBroker(tb testing.TB, opts Options) (*Broker, error) {
	bin, err := findMosquitto()
	if err != nil {
		return nil, &unavailableError{err}
	}
	dir := tb.TempDir()
	b := &Broker{
		bin:      bin,
		dir:      dir,
		confPath: filepath.Join(dir, "mosquitto.conf"),
		logPath:  filepath.Join(dir, "mosquitto.log"),
		opts:     opts,
	}
	if opts.Unix {
		b.unixPath = filepath.Join(dir, "mosquitto.sock")
		if len(b.unixPath) > maxUnixPath {
			// Deep temporary directories (long test names) do not fit
			// into a socket address; use a short directory instead.
			sockDir, err := os.MkdirTemp("", "mqsock")
			if err != nil {
				return nil, err
			}
			tb.Cleanup(func() { os.RemoveAll(sockDir) })
			b.unixPath = filepath.Join(sockDir, "mosquitto.sock")
		}
	}
	if opts.Persistence {
		if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
			return nil, err
		}
	}
	if len(opts.Users) > 0 {
		if err := writePasswordFile(filepath.Join(dir, "passwd"), opts.Users); err != nil {
			return nil, err
		}
	}
	if t := opts.TLS; t != nil {
		if t.CertFile == "" || t.KeyFile == "" {
			return nil, errors.New("TLS needs CertFile and KeyFile")
		}
		if t.RequireClientCert && t.CAFile == "" {
			return nil, errors.New("TLS.RequireClientCert needs CAFile")
		}
	}
	return b, nil
}

// findMosquitto locates the broker binary in PATH or its usual places.
func findMosquitto() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/local/bin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("mosquitto binary not found in PATH, /usr/sbin or /usr/local")
}

// startNew picks free ports, writes the configuration and launches the
// broker, picking new ports when the broker exits during startup.
func (b *Broker) startNew() error {
	var err error
	for range startAttempts {
		if err = b.pickPorts(); err != nil {
			return err
		}
		if err = b.writeConfig(); err != nil {
			return err
		}
		var p *process
		p, err = b.launch()
		if err == nil {
			b.proc = p
			return nil
		}
		if _, ok := errors.AsType[*unavailableError](err); ok {
			return err
		}
	}
	return err
}

// pickPorts reserves free ports for all TCP listeners at once, so they are
// distinct, and releases them for mosquitto to bind.
func (b *Broker) pickPorts() error {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	pick := func(addr string) (int, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return 0, fmt.Errorf("finding a free port: %w", err)
		}
		lns = append(lns, ln)
		return ln.Addr().(*net.TCPAddr).Port, nil
	}
	var err error
	if b.tcpPort, err = pick("127.0.0.1:0"); err != nil {
		return err
	}
	if b.opts.WebSocket {
		// Mosquitto 2.0 binds websockets listeners to all interfaces
		// regardless of the configured address, so the port has to be
		// free on all of them.
		if b.wsPort, err = pick(":0"); err != nil {
			return err
		}
	}
	if b.opts.TLS != nil {
		if b.tlsPort, err = pick("127.0.0.1:0"); err != nil {
			return err
		}
	}
	return nil
}

// config returns the mosquitto configuration for the current ports.
func (b *Broker) config() (string, error) {
	var c strings.Builder
	line := func(format string, args ...any) {
		fmt.Fprintf(&c, format, args...)
		c.WriteByte('\n')
	}
	checkPath := func(what, p string) error {
		if strings.ContainsAny(p, " \t\r\n") {
			return fmt.Errorf("%s %q contains white space, which mosquitto configuration files cannot express", what, p)
		}
		return nil
	}
	for what, p := range map[string]string{"directory": b.dir, "unix socket path": b.unixPath} {
		if err := checkPath(what, p); err != nil {
			return "", err
		}
	}

	line("# mosquitto configuration written by package brokertest")
	line("per_listener_settings false")
	if os.Geteuid() == 0 {
		// Keep root instead of dropping to the mosquitto user, which
		// could not read the test's temporary directories.
		line("user root")
	}
	line("log_dest stderr")
	for _, t := range []string{"error", "warning", "notice", "information"} {
		line("log_type %s", t)
	}
	line("log_timestamp_format %%Y-%%m-%%dT%%H:%%M:%%S")
	line("connection_messages true")
	line("set_tcp_nodelay true")
	line("max_queued_messages 10000")
	if len(b.opts.Users) > 0 {
		line("allow_anonymous false")
		line("password_file %s", filepath.Join(b.dir, "passwd"))
	} else {
		line("allow_anonymous true")
	}
	if b.opts.Persistence {
		line("persistence true")
		line("persistence_location %s/", filepath.Join(b.dir, "data"))
	} else {
		line("persistence false")
	}

	line("")
	line("listener %d 127.0.0.1", b.tcpPort)
	if b.wsPort != 0 {
		line("")
		line("listener %d 127.0.0.1", b.wsPort)
		line("protocol websockets")
	}
	if b.unixPath != "" {
		line("")
		line("listener 0 %s", b.unixPath)
	}
	if t := b.opts.TLS; t != nil {
		line("")
		line("listener %d 127.0.0.1", b.tlsPort)
		files := [][2]string{{"certfile", t.CertFile}, {"keyfile", t.KeyFile}}
		if t.CAFile != "" {
			files = append(files, [2]string{"cafile", t.CAFile})
		}
		for _, f := range files {
			if err := checkPath(f[0], f[1]); err != nil {
				return "", err
			}
			line("%s %s", f[0], f[1])
		}
		if t.RequireClientCert {
			line("require_certificate true")
		}
	}
	if len(b.opts.Extra) > 0 {
		line("")
		line("# Options.Extra")
		for _, l := range b.opts.Extra {
			line("%s", l)
		}
	}
	return c.String(), nil
}

func (b *Broker) writeConfig() error {
	conf, err := b.config()
	if err != nil {
		return err
	}
	return os.WriteFile(b.confPath, []byte(conf), 0o644)
}

// writePasswordFile writes a mosquitto password file with salted SHA-512
// hashes, the "$6$" format that mosquitto_passwd produced before 2.0.
func writePasswordFile(path string, users map[string]string) error {
	names := make([]string, 0, len(users))
	for name := range users {
		if name == "" || strings.ContainsAny(name, ":\r\n") {
			return fmt.Errorf("invalid user name %q", name)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	for _, name := range names {
		salt := make([]byte, 12)
		rand.Read(salt)
		h := sha512.New()
		h.Write([]byte(users[name]))
		h.Write(salt)
		fmt.Fprintf(&buf, "%s:$6$%s$%s\n", name,
			base64.StdEncoding.EncodeToString(salt),
			base64.StdEncoding.EncodeToString(h.Sum(nil)))
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// launch runs mosquitto with the current configuration and waits until all
// listeners accept connections.
func (b *Broker) launch() (*process, error) {
	if b.unixPath != "" {
		if err := os.Remove(b.unixPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	logf, err := os.OpenFile(b.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child keeps its own descriptor
	fi, err := logf.Stat()
	if err != nil {
		return nil, err
	}
	logStart := fi.Size()

	cmd := exec.Command(b.bin, "-c", b.confPath)
	cmd.Dir = b.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, &unavailableError{fmt.Errorf("running %s: %w", b.bin, err)}
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := b.waitReady(p); err != nil {
		p.cmd.Process.Kill()
		<-p.done
		return nil, fmt.Errorf("%w\nbroker log:\n%s", err, b.logTail(logStart))
	}
	return p, nil
}

// waitReady polls the listeners of p until they all accept connections,
// p exits or readyTimeout passes.
func (b *Broker) waitReady(p *process) error {
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	backoff := 2 * time.Millisecond
	for {
		err := b.dialAll()
		if err == nil {
			select {
			case <-p.done:
				return fmt.Errorf("mosquitto exited during startup: %v", p.err)
			default:
				return nil
			}
		}
		retry := time.NewTimer(backoff)
		select {
		case <-p.done:
			retry.Stop()
			return fmt.Errorf("mosquitto exited during startup: %v", p.err)
		case <-deadline.C:
			retry.Stop()
			return fmt.Errorf("mosquitto not ready after %v: %v", readyTimeout, err)
		case <-retry.C:
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// dialAll connects to and disconnects from every listener.
func (b *Broker) dialAll() error {
	type target struct{ network, addr string }
	targets := []target{{"tcp", b.Addr()}}
	if b.wsPort != 0 {
		targets = append(targets, target{"tcp", hostPort(b.wsPort)})
	}
	if b.tlsPort != 0 {
		targets = append(targets, target{"tcp", b.TLSAddr()})
	}
	if b.unixPath != "" {
		targets = append(targets, target{"unix", b.unixPath})
	}
	for _, t := range targets {
		conn, err := net.DialTimeout(t.network, t.addr, time.Second)
		if err != nil {
			return err
		}
		conn.Close()
	}
	return nil
}

// halt sends sig to a running broker and waits for it to exit, escalating
// to SIGKILL after stopTimeout. The caller holds b.mu.
func (b *Broker) halt(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	p := b.proc
	if p == nil {
		return
	}
	b.proc = nil
	select {
	case <-p.done:
		tb.Errorf("brokertest: mosquitto had exited unexpectedly: %v\nbroker log:\n%s", p.err, b.logTail(0))
		return
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		// The process may have exited just now; Wait reports how.
		<-p.done
		return
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		p.cmd.Process.Kill()
		<-p.done
		tb.Errorf("brokertest: mosquitto did not exit within %v after %v; killed it\nbroker log:\n%s", stopTimeout, sig, b.logTail(0))
	}
}

func (b *Broker) cleanup(tb testing.TB) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.halt(tb, syscall.SIGTERM)
}

// logTail returns the last lines the broker logged at or after offset.
func (b *Broker) logTail(offset int64) string {
	const maxLines = 40
	data, err := os.ReadFile(b.logPath)
	if err != nil {
		return fmt.Sprintf("<cannot read broker log: %v>", err)
	}
	if offset > int64(len(data)) {
		offset = 0
	}
	text := strings.TrimRight(string(data[offset:]), "\n")
	if text == "" {
		return "<empty>"
	}
	lines := strings.Split(text, "\n")
	if len(lines) > maxLines {
		lines = append([]string{"..."}, lines[len(lines)-maxLines:]...)
	}
	return strings.Join(lines, "\n")
}

func hostPort(port int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
