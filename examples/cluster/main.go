// Command cluster shows the client riding out the death of broker nodes.
// It starts a three-node NATS cluster on loopback (or uses the servers
// given with -servers), connects a publisher and a subscriber with
// persistent sessions to different nodes, publishes a numbered QoS 1 (or
// QoS 2) stream, and kills the node that one of them is connected to with
// SIGKILL, on a timer or when Enter is pressed, bringing it back a few
// seconds later. It prints each connection, kill and recovery, and at the
// end what was published, received, lost and duplicated.
//
//	go run . -duration 1m -kill-every 10s
//
// The cluster is nats-server, the tool of this module (go tool
// nats-server), with JetStream and an MQTT listener whose sessions are
// replicated on all three nodes.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/mqtttest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	servers   []string
	duration  time.Duration
	killEvery time.Duration
	down      time.Duration
	interval  time.Duration
	qos       mqtt.QoS
	logPath   string
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	servers := fs.String("servers", "", "comma-separated node URLs of a running cluster (default: start one; killing nodes needs a started one)")
	o := options{}
	fs.DurationVar(&o.duration, "duration", time.Minute, "how long to publish")
	fs.DurationVar(&o.killEvery, "kill-every", 10*time.Second, "kill a node this often (0: only on Enter)")
	fs.DurationVar(&o.down, "down", 3*time.Second, "how long a killed node stays down")
	fs.DurationVar(&o.interval, "interval", 20*time.Millisecond, "time between publishes")
	qos := fs.Int("qos", 1, "QoS of the stream (1 or 2)")
	fs.StringVar(&o.logPath, "log", "", "file for the clients' debug logs, the publishes and receipts, and at the end the nodes' logs")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if *qos != 1 && *qos != 2 {
		return o, fmt.Errorf("-qos %d: want 1 or 2", *qos)
	}
	o.qos = mqtt.QoS(*qos)
	if *servers != "" {
		o.servers = strings.Split(*servers, ",")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	out := &printer{w: stdout, start: time.Now()}
	d := &demo{o: o, out: out, received: map[int]int{}, drainFor: drainFor}
	if o.logPath != "" {
		f, err := os.Create(o.logPath)
		if err != nil {
			return err
		}
		defer f.Close()
		d.logFile = f
		d.log = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if o.servers == nil {
		out.printf("starting a three-node NATS cluster")
		if d.cluster, err = mqtttest.StartCluster(mqtttest.ClusterConfig{}); err != nil {
			return err
		}
		defer d.cluster.Close()
		defer d.writeNodeLogs()
		d.o.servers = d.cluster.URLs()
		for i, u := range d.o.servers {
			out.printf("node %d: %s", i, u)
		}
	}
	return d.run(ctx, stdin)
}

// writeNodeLogs appends the nodes' logs to the -log file.
func (d *demo) writeNodeLogs() {
	if d.logFile == nil {
		return
	}
	for i := range d.o.servers {
		for line := range strings.Lines(d.cluster.Log(i)) {
			fmt.Fprintf(d.logFile, "[node %d] %s", i, line)
		}
	}
}

// demo is one run: a publisher, a subscriber and the failovers.
type demo struct {
	o       options
	out     *printer
	cluster *mqtttest.Cluster // nil with -servers: nodes cannot be killed
	log     *slog.Logger      // with -log: the clients' debug logs, publishes and receipts
	logFile *os.File

	watchers sync.WaitGroup // the goroutines printing events
	restarts sync.WaitGroup // the goroutines restarting killed nodes

	mu       sync.Mutex
	acked    []int       // sequence numbers the broker acknowledged
	received map[int]int // sequence number → copies received
	resent   []int       // sequence numbers whose first copy received had DUP set
	kills    []*failover
	pub, sub *mqtt.Client
	drainFor time.Duration // the longest wait for the last messages after publishing
}

// drainFor is demo.drainFor: longer than the cluster's ack_wait (30 s),
// after which it sends again a message it failed to forward.
const drainFor = time.Minute

// failover is one killed node and how long the clients took to recover.
type failover struct {
	node           int
	who            string
	at             time.Time
	ackAfter       time.Duration // to the first acknowledged publish after the kill
	receivedAfter  time.Duration // to the first message received after the kill
	restartedAfter time.Duration
}

func (d *demo) run(ctx context.Context, stdin io.Reader) error {
	n := len(d.o.servers)
	var err error
	// Each client lists every node, starting from a different one.
	defer d.watchers.Wait() // after the clients closed, which ends their events
	defer d.restarts.Wait()
	if d.pub, err = d.connect(ctx, "publisher", "cluster-pub", rotate(d.o.servers, 0)); err != nil {
		return err
	}
	defer d.pub.Close()
	if d.sub, err = d.connect(ctx, "subscriber", "cluster-sub", rotate(d.o.servers, 1%n)); err != nil {
		return err
	}
	defer d.sub.Close()
	s, err := d.sub.Subscribe(ctx, "cluster/demo", d.o.qos)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithTimeout(ctx, d.o.duration)
	defer cancel()
	var wg sync.WaitGroup
	kills := make(chan string)
	wg.Go(func() { d.keys(runCtx, stdin, kills) })
	published := d.exchange(ctx, func() int { return d.publish(runCtx, kills) }, s.Messages(), d.sub.Messages())
	cancel()
	wg.Wait()
	d.restarts.Wait() // killed nodes are back
	d.report(published)
	return nil
}

// connect connects who with a persistent session: a first connection
// with Clean Session clears what an earlier run left, then the session
// the cluster keeps across node failures is made.
func (d *demo) connect(ctx context.Context, who, id string, servers []string) (*mqtt.Client, error) {
	cfg := mqtt.Config{
		Servers:    servers,
		ClientID:   id,
		Version:    mqtt.Version311, // NATS speaks MQTT 3.1.1
		CleanStart: true,
		KeepAlive:  5 * time.Second,
	}
	if d.log != nil {
		cfg.Logger = d.log.With("client", who)
	}
	c, err := mqtt.Connect(ctx, cfg)
	if err == nil {
		err = c.Disconnect(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", who, err)
	}
	cfg.CleanStart = false
	if c, err = mqtt.Connect(ctx, cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", who, err)
	}
	d.out.printf("%s connected to %s", who, d.node(c.Connection().Server))
	d.watchers.Add(1)
	go func() { defer d.watchers.Done(); d.events(who, c) }()
	return c, nil
}

// events prints the connection changes of who.
func (d *demo) events(who string, c *mqtt.Client) {
	for ev := range c.Events() {
		switch ev.Kind {
		case mqtt.EventConnected:
			d.out.printf("%s connected to %s (session present: %v)", who, d.node(ev.Server), ev.SessionPresent)
		case mqtt.EventConnectionLost:
			d.out.printf("%s lost its connection: %v", who, ev.Err)
		case mqtt.EventReconnecting:
			d.out.printf("%s reconnects in %v (attempt %d)", who, ev.Delay.Round(time.Millisecond), ev.Attempt)
		case mqtt.EventResubscribed:
			d.out.printf("%s subscribed again (the cluster lost its session)", who)
		}
	}
}

// node names the node of url.
func (d *demo) node(url string) string {
	if i := slices.Index(d.o.servers, url); i >= 0 {
		return fmt.Sprintf("node %d (%s)", i, url)
	}
	return url
}

// publish publishes the numbered stream until ctx ends, killing nodes on
// the timer and on kills, and returns how many messages it published.
func (d *demo) publish(ctx context.Context, kills <-chan string) int {
	tick := time.NewTicker(d.o.interval)
	defer tick.Stop()
	var killTick <-chan time.Time
	if d.o.killEvery > 0 && d.cluster != nil {
		t := time.NewTicker(d.o.killEvery)
		defer t.Stop()
		killTick = t.C
	}
	victims := []string{"publisher", "subscriber"}
	seq := 0
	for {
		select {
		case <-ctx.Done():
			return seq
		case <-killTick:
			d.kill(ctx, victims[len(d.kills)%2])
		case who := <-kills:
			d.kill(ctx, who)
		case <-tick.C:
			// Waits while the publisher fails over; the stream resumes
			// in order.
			err := d.pub.Publish(ctx, mqtt.Message{Topic: "cluster/demo", Payload: []byte(strconv.Itoa(seq)), QoS: d.o.qos})
			if err != nil {
				if ctx.Err() == nil {
					d.out.printf("publish %d: %v", seq, err)
				}
				return seq
			}
			if d.log != nil {
				d.log.Info("cluster: acknowledged", "seq", seq)
			}
			d.mu.Lock()
			d.acked = append(d.acked, seq)
			for _, f := range d.kills {
				if f.ackAfter == 0 {
					f.ackAfter = time.Since(f.at)
				}
			}
			d.mu.Unlock()
			seq++
		}
	}
}

// kill kills the node who is connected to and restarts it after o.down.
func (d *demo) kill(ctx context.Context, who string) {
	if d.cluster == nil {
		d.out.printf("nodes can be killed only in a cluster this program started")
		return
	}
	c := d.pub
	if who == "subscriber" {
		c = d.sub
	}
	node := d.cluster.Node(c.Connection().Server)
	if node < 0 || !d.cluster.Running(node) {
		return
	}
	if err := d.cluster.Kill(node); err != nil {
		d.out.printf("kill node %d: %v", node, err)
		return
	}
	f := &failover{node: node, who: who, at: time.Now()}
	d.mu.Lock()
	d.kills = append(d.kills, f)
	d.mu.Unlock()
	d.out.printf("killed node %d, the %s's, with SIGKILL", node, who)
	d.restarts.Add(1)
	go func() {
		defer d.restarts.Done()
		select {
		case <-time.After(d.o.down):
		case <-ctx.Done():
		}
		if err := d.cluster.Restart(node); err != nil {
			d.out.printf("restart node %d: %v", node, err)
			return
		}
		d.mu.Lock()
		f.restartedAfter = time.Since(f.at)
		d.mu.Unlock()
		d.out.printf("node %d is back", node)
	}()
}

// keys asks for a kill each time a line is read, until ctx ends: "s"
// kills the subscriber's node, anything else the publisher's. A reader
// that stays open (a terminal) keeps a goroutine reading it until the
// program ends.
func (d *demo) keys(ctx context.Context, stdin io.Reader, kills chan<- string) {
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case line := <-lines:
			who := "publisher"
			if strings.TrimSpace(line) == "s" {
				who = "subscriber"
			}
			select {
			case kills <- who:
			case <-ctx.Done():
				return
			}
		}
	}
}

func (d *demo) receive(ctx context.Context, ch <-chan mqtt.Message) {
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			n, err := strconv.Atoi(string(m.Payload))
			if err != nil {
				continue
			}
			if d.log != nil {
				d.log.Info("cluster: received", "seq", n, "dup", m.Duplicate)
			}
			d.mu.Lock()
			if d.received[n] == 0 && m.Duplicate {
				d.resent = append(d.resent, n)
			}
			d.received[n]++
			for _, f := range d.kills {
				if f.receivedAfter == 0 {
					f.receivedAfter = time.Since(f.at)
				}
			}
			d.mu.Unlock()
		}
	}
}

// exchange runs publish, which publishes the stream and returns how many
// messages it published, and receives from chans until every acknowledged
// message arrived, at most drainFor after publish returned. Receiving
// outlives publishing: a message whose node died after acknowledging it
// and before forwarding it reaches the subscriber only when the cluster
// sends it again, after its ack_wait (30 s by default) with DUP set, which
// can be well after the last publish.
func (d *demo) exchange(ctx context.Context, publish func() int, chans ...<-chan mqtt.Message) int {
	recvCtx, stop := context.WithCancel(ctx)
	var receivers sync.WaitGroup
	for _, ch := range chans {
		receivers.Go(func() { d.receive(recvCtx, ch) })
	}
	published := publish()
	d.out.printf("published %d messages; waiting for the last to arrive", published)
	d.drain(ctx)
	stop()
	receivers.Wait()
	return published
}

// drain waits until every acknowledged message arrived, for at most
// drainFor.
func (d *demo) drain(ctx context.Context) {
	deadline := time.After(d.drainFor)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		d.mu.Lock()
		missing := 0
		for _, n := range d.acked {
			if d.received[n] == 0 {
				missing++
			}
		}
		d.mu.Unlock()
		if missing == 0 {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			return
		case <-ctx.Done():
			return
		}
	}
}

// report prints what happened.
func (d *demo) report(published int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	lost, dups := 0, 0
	var lostSeqs []int
	for _, n := range d.acked {
		switch c := d.received[n]; {
		case c == 0:
			lost++
			lostSeqs = append(lostSeqs, n)
		case c > 1:
			dups += c - 1
		}
	}
	d.out.printf("summary: %d published, %d acknowledged, %d received, %d lost, %d duplicates (QoS %d)",
		published, len(d.acked), len(d.received), lost, dups, d.o.qos)
	if lost > 0 {
		d.out.printf("lost: %v", firstFew(lostSeqs))
	}
	if len(d.resent) > 0 {
		// The node that acknowledged them died before forwarding them;
		// the cluster sent them again after its ack_wait.
		d.out.printf("first received as a copy sent again (DUP): %v", firstFew(d.resent))
	}
	for i, f := range d.kills {
		d.out.printf("failover %d: node %d (the %s's) killed; first acknowledged publish after %s, first message received after %s; node back after %s",
			i+1, f.node, f.who, since(f.ackAfter), since(f.receivedAfter), since(f.restartedAfter))
	}
}

// firstFew returns up to ten of seqs.
func firstFew(seqs []int) []int { return seqs[:min(len(seqs), 10)] }

// since shows a time after a kill, or "never" for one that did not come.
func since(d time.Duration) string {
	if d == 0 {
		return "never"
	}
	return d.Round(100 * time.Microsecond).String()
}

// rotate returns servers starting at index i.
func rotate(servers []string, i int) []string {
	return append(slices.Clone(servers[i:]), servers[:i]...)
}

// printer prints lines with the time since the start.
type printer struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%7.2fs  %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}
