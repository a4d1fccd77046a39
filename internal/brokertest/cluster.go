package brokertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// NATS cluster: nats-server processes joined by routes, each with
// JetStream and an MQTT listener, so that MQTT sessions and messages are
// replicated and survive the death of any one node.

const (
	// clusterReadyTimeout bounds the wait for a node to serve MQTT: its
	// JetStream must have joined the cluster and found a meta leader,
	// which after a restart takes a few seconds.
	clusterReadyTimeout = 60 * time.Second
	// NATSServerEnv names the environment variable that may hold the path
	// of the nats-server executable.
	NATSServerEnv = "NATS_SERVER_BIN"
)

// ClusterOptions configures a cluster started by StartCluster or
// LaunchCluster. The zero value gives three nodes with MQTT streams
// replicated on all three.
type ClusterOptions struct {
	// Nodes is the number of servers (default 3).
	Nodes int
	// StreamReplicas is the replication of the MQTT streams (the mqtt
	// block's stream_replicas; default Nodes, at most 5).
	StreamReplicas int
	// AckWait is how long a node waits for the client's PUBACK before it
	// sends a QoS 1 message again (the mqtt block's ack_wait; default the
	// server's, 30 s).
	AckWait time.Duration
	// JSAPITimeout is how long a node waits for JetStream when it serves
	// an MQTT client (the mqtt block's js_api_timeout; default the
	// server's, 5 s). A node that waits longer closes the client's
	// connection, so while the cluster elects new stream leaders after a
	// node died, a short timeout turns a slow CONNECT or publish into a
	// lost connection.
	JSAPITimeout time.Duration
	// Server is the nats-server executable. Empty: the environment variable
	// NATS_SERVER_BIN, then the tool of the Go module in the working
	// directory (found with "go tool -n nats-server", which builds it once
	// and caches it).
	Server string
	// Log, when non-nil, receives each node's log lines as well as its
	// log file.
	Log io.Writer
}

// Cluster is a set of nats-server processes started by StartCluster or
// LaunchCluster. Its methods may be called from multiple goroutines.
type Cluster struct {
	bin   string
	dir   string
	opts  ClusterOptions
	nodes []*Node
}

// Node is one server of a Cluster.
type Node struct {
	c        *Cluster
	index    int
	name     string
	dir      string
	confPath string
	logPath  string

	clientPort, routePort, mqttPort, httpPort int

	mu   sync.Mutex // guards proc and serializes Kill and Restart
	proc *process   // nil while the node is down
}

// tools caches the nats-server tool found per working directory.
var tools sync.Map // working directory -> *toolResult

type toolResult struct {
	once sync.Once
	path string
	err  error
}

// FindNATSServer returns the nats-server executable opts names, or the one
// of NATS_SERVER_BIN, or the Go module tool in the working directory.
func FindNATSServer(server string) (string, error) {
	if server != "" {
		return server, nil
	}
	if p := os.Getenv(NATSServerEnv); p != "" {
		return p, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	v, _ := tools.LoadOrStore(wd, &toolResult{})
	r := v.(*toolResult)
	r.once.Do(func() {
		var stderr bytes.Buffer
		cmd := exec.Command("go", "tool", "-n", "nats-server")
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			r.err = fmt.Errorf("go tool -n nats-server (in %s): %w: %s", wd, err, strings.TrimSpace(stderr.String()))
			return
		}
		r.path = strings.TrimSpace(string(out))
	})
	return r.path, r.err
}

// StartCluster starts a NATS cluster configured by opts, waits until every
// node serves MQTT and registers a cleanup with tb that stops it.
//
// When nats-server cannot be found the test is skipped, or fails if the
// environment variable CI is non-empty. Any other failure to start the
// cluster fails the test.
func StartCluster(tb testing.TB, opts ClusterOptions) *Cluster {
	tb.Helper()
	c, err := LaunchCluster(tb.TempDir(), opts)
	if err != nil {
		if _, ok := errors.AsType[*unavailableError](err); ok && os.Getenv("CI") == "" {
			tb.Skipf("brokertest: nats-server is not available: %v", err)
		}
		tb.Fatalf("brokertest: %v", err)
	}
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Errorf("brokertest: %v", err)
		}
	})
	return c
}

// LaunchCluster starts a NATS cluster in dir (which must exist and is left
// in place) and waits until every node serves MQTT. The caller stops it
// with Close. Errors for a missing nats-server wrap an unavailable error.
func LaunchCluster(dir string, opts ClusterOptions) (*Cluster, error) {
	if opts.Nodes <= 0 {
		opts.Nodes = 3
	}
	if opts.StreamReplicas <= 0 {
		opts.StreamReplicas = min(opts.Nodes, 5)
	}
	bin, err := FindNATSServer(opts.Server)
	if err != nil {
		return nil, &unavailableError{err}
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, &unavailableError{err}
	}
	c := &Cluster{bin: bin, dir: dir, opts: opts}
	var lastErr error
	for range startAttempts {
		if lastErr = c.layout(); lastErr != nil {
			return nil, lastErr
		}
		if lastErr = c.startAll(); lastErr == nil {
			return c, nil
		}
		c.Close()
	}
	return nil, lastErr
}

// layout picks free ports for every node and writes the configurations.
func (c *Cluster) layout() error {
	ports, err := freePorts(4 * c.opts.Nodes)
	if err != nil {
		return err
	}
	c.nodes = make([]*Node, c.opts.Nodes)
	for i := range c.nodes {
		name := fmt.Sprintf("n%d", i+1)
		ndir := filepath.Join(c.dir, name)
		if err := os.RemoveAll(ndir); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(ndir, "jetstream"), 0o755); err != nil {
			return err
		}
		c.nodes[i] = &Node{c: c, index: i, name: name, dir: ndir,
			confPath: filepath.Join(ndir, "nats.conf"), logPath: filepath.Join(ndir, "nats.log"),
			clientPort: ports[4*i], routePort: ports[4*i+1], mqttPort: ports[4*i+2], httpPort: ports[4*i+3]}
	}
	for _, n := range c.nodes {
		if err := os.WriteFile(n.confPath, []byte(n.config()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// config returns the node's nats-server configuration.
func (n *Node) config() string {
	var routes []string
	for _, m := range n.c.nodes {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", m.routePort))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# nats-server configuration written by package brokertest\n")
	fmt.Fprintf(&b, "server_name: %s\n", n.name)
	fmt.Fprintf(&b, "listen: 127.0.0.1:%d\n", n.clientPort)
	fmt.Fprintf(&b, "http: 127.0.0.1:%d\n", n.httpPort)
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n}\n", filepath.Join(n.dir, "jetstream"))
	fmt.Fprintf(&b, "cluster {\n  name: brokertest\n  listen: 127.0.0.1:%d\n  routes: [\n", n.routePort)
	for _, r := range routes {
		fmt.Fprintf(&b, "    %s\n", r)
	}
	fmt.Fprintf(&b, "  ]\n}\n")
	fmt.Fprintf(&b, "mqtt {\n  listen: 127.0.0.1:%d\n  stream_replicas: %d\n", n.mqttPort, n.c.opts.StreamReplicas)
	if n.c.opts.JSAPITimeout > 0 {
		fmt.Fprintf(&b, "  js_api_timeout: %q\n", n.c.opts.JSAPITimeout.String())
	}
	if n.c.opts.AckWait > 0 {
		fmt.Fprintf(&b, "  ack_wait: %q\n", n.c.opts.AckWait.String())
	}
	fmt.Fprintf(&b, "}\n")
	return b.String()
}

// startAll launches every node at once (JetStream needs a quorum to
// elect its meta leader) and waits until each serves MQTT.
func (c *Cluster) startAll() error {
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Go(func() {
			n.mu.Lock()
			defer n.mu.Unlock()
			n.proc, errs[i] = n.launch()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Nodes returns the cluster's nodes, in the order of URLs.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// Node returns node i (0-based).
func (c *Cluster) Node(i int) *Node { return c.nodes[i] }

// URLs returns the MQTT URLs of every node, such as
// "mqtt://127.0.0.1:34567", in node order.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		urls[i] = n.URL()
	}
	return urls
}

// NodeOf returns the node whose MQTT URL is url, or nil.
func (c *Cluster) NodeOf(url string) *Node {
	for _, n := range c.nodes {
		if n.URL() == url {
			return n
		}
	}
	return nil
}

// Close stops every node with SIGTERM (SIGKILL after a timeout) and
// reports nodes that had died on their own.
func (c *Cluster) Close() error {
	var errs []error
	for _, n := range c.nodes {
		n.mu.Lock()
		if err := n.halt(syscall.SIGTERM); err != nil {
			errs = append(errs, err)
		}
		n.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Name returns the node's server_name (n1, n2, ...).
func (n *Node) Name() string { return n.name }

// Index returns the node's position in the cluster (0-based).
func (n *Node) Index() int { return n.index }

// URL returns the node's MQTT URL.
func (n *Node) URL() string { return "mqtt://" + hostPort(n.mqttPort) }

// Addr returns the host:port of the node's MQTT listener.
func (n *Node) Addr() string { return hostPort(n.mqttPort) }

// Log returns everything the node has logged so far, across restarts.
func (n *Node) Log() string {
	data, err := os.ReadFile(n.logPath)
	if err != nil {
		return fmt.Sprintf("<cannot read node log: %v>", err)
	}
	return string(data)
}

// Running reports whether the node's process is up.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil
}

// Kill stops the node abruptly with SIGKILL and waits for the process to
// exit. It does nothing when the node is down.
func (n *Node) Kill() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.halt(syscall.SIGKILL)
}

// Restart starts the node again with its configuration, ports and
// JetStream directory, typically after Kill, and waits until it serves
// MQTT. A running node is stopped first with SIGTERM.
func (n *Node) Restart() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.halt(syscall.SIGTERM); err != nil {
		return err
	}
	p, err := n.launch()
	if err != nil {
		return fmt.Errorf("restart %s: %w", n.name, err)
	}
	n.proc = p
	return nil
}

// launch runs the node and waits until it serves MQTT.
func (n *Node) launch() (*process, error) {
	logf, err := os.OpenFile(n.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fi, err := logf.Stat()
	if err != nil {
		logf.Close()
		return nil, err
	}
	logStart := fi.Size()
	cmd := exec.Command(n.c.bin, "-c", n.confPath)
	cmd.Dir = n.dir
	var out io.Writer = logf
	if n.c.opts.Log != nil {
		out = io.MultiWriter(logf, &prefixWriter{w: n.c.opts.Log, prefix: "[" + n.name + "] "})
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, &unavailableError{fmt.Errorf("running %s: %w", n.c.bin, err)}
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		// With Options.Log the output goes through a pipe copied to logf
		// until the process exits, so logf stays open until then.
		logf.Close()
		close(p.done)
	}()
	if err := n.waitMQTT(p); err != nil {
		p.cmd.Process.Kill()
		<-p.done
		return nil, fmt.Errorf("%s: %w\nnode log:\n%s", n.name, err, n.logTail(logStart))
	}
	return p, nil
}

// waitMQTT polls the node until its health endpoint reports JetStream
// current (its streams caught up with the cluster) and an MQTT 3.1.1
// CONNECT with a clean session is accepted.
func (n *Node) waitMQTT(p *process) error {
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyTimeout)
	defer cancel()
	backoff := 10 * time.Millisecond
	for {
		err := n.probeHealth(ctx)
		if err == nil {
			err = probeMQTT(ctx, n.Addr(), "brokertest-probe-"+n.name)
		}
		if err == nil {
			return nil
		}
		retry := time.NewTimer(backoff)
		select {
		case <-p.done:
			retry.Stop()
			return fmt.Errorf("nats-server exited during startup: %v", p.err)
		case <-ctx.Done():
			retry.Stop()
			return fmt.Errorf("not serving MQTT after %v: %v", clusterReadyTimeout, err)
		case <-retry.C:
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}

// probeHealth asks the node's monitoring endpoint whether it is healthy,
// JetStream included.
func (n *Node) probeHealth(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/healthz", hostPort(n.httpPort)), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// probeMQTT connects to addr with MQTT 3.1.1, a clean session and the
// given client ID, and returns nil when the broker accepts it.
func probeMQTT(ctx context.Context, addr, clientID string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30, 0, byte(len(clientID))}
	body = append(body, clientID...)
	if _, err := conn.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		return err
	}
	var ack [4]byte
	if _, err := io.ReadFull(conn, ack[:]); err != nil {
		return fmt.Errorf("waiting for CONNACK: %w", err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		return fmt.Errorf("CONNACK % x", ack)
	}
	_, _ = conn.Write([]byte{0xe0, 0}) // DISCONNECT
	return nil
}

// halt sends sig to a running node and waits for it to exit, escalating to
// SIGKILL after stopTimeout. The caller holds n.mu.
func (n *Node) halt(sig syscall.Signal) error {
	p := n.proc
	if p == nil {
		return nil
	}
	n.proc = nil
	select {
	case <-p.done:
		return fmt.Errorf("%s had exited unexpectedly: %v\nnode log:\n%s", n.name, p.err, n.logTail(0))
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		<-p.done
		return nil
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within %v after %v; killed it", n.name, stopTimeout, sig)
	}
	return nil
}

// logTail returns the last lines the node logged at or after offset.
func (n *Node) logTail(offset int64) string {
	b := &Broker{logPath: n.logPath}
	return b.logTail(offset)
}

// freePorts reserves n distinct free loopback ports at once and releases
// them for the servers to bind.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// prefixWriter writes each line with a prefix.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	rest   []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rest = append(p.rest, b...)
	for {
		i := bytes.IndexByte(p.rest, '\n')
		if i < 0 {
			return len(b), nil
		}
		if _, err := fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.rest[:i]); err != nil {
			return len(b), err
		}
		p.rest = p.rest[i+1:]
	}
}
