package failover

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt/internal/brokertest"
)

var (
	flagKills     = flag.Int("failover.kills", 10, "nodes killed with SIGKILL, one at a time")
	flagMinRun    = flag.Duration("failover.min", 60*time.Second, "shortest time over which the kills are spread")
	flagDown      = flag.Duration("failover.down", 3*time.Second, "how long a killed node stays down")
	flagInterval  = flag.Duration("failover.interval", 20*time.Millisecond, "time between two publishes of one publisher")
	flagVerbose   = flag.Bool("failover.v", false, "log every failover")
	flagJSTimeout = flag.Duration("failover.jstimeout", 0, "the nodes' js_api_timeout (0: the server's default, 5 s)")
	flagStrict    = flag.Bool("failover.strict", false, "fail on QoS 2 losses and duplicates too (nats-server 2.15 makes some)")
	flagPairs     = flag.String("failover.pairs", "ours-qos1,ours-qos2,paho-qos1", "the publisher and subscriber pairs to run")
	flagLogs      = flag.String("failover.log", "", "file for the nodes' and the clients' logs")
)

const (
	// drainTimeout bounds the wait, after the last failover, for the
	// last publishes to complete and every acknowledged message to arrive.
	// It exceeds the broker's ack_wait, after which it sends again a
	// message whose PUBACK was lost with a node.
	drainTimeout = 45 * time.Second
	// recoverTimeout bounds the wait for every client to be connected and
	// making progress again before the next kill.
	recoverTimeout = 60 * time.Second
)

// target names a client whose node the next kill hits.
type target struct {
	pair pair
	pub  bool // the publisher, else the subscriber
}

func (t target) String() string {
	if t.pub {
		return t.pair.record().name + " publisher"
	}
	return t.pair.record().name + " subscriber"
}

func (t target) node() string {
	pub, sub := t.pair.record().currentNodes()
	if t.pub {
		return pub
	}
	return sub
}

// failover is one node killed and restarted.
type failover struct {
	node   string
	killed time.Time
	target string
}

// TestClusterFailover runs publishers and subscribers with persistent
// sessions against a three-node NATS cluster whose nodes are killed with
// SIGKILL one at a time and restarted: this client at QoS 1 and at QoS 2,
// and paho.mqtt.golang at QoS 1 beside it. Every acknowledged message must
// arrive, QoS 2 exactly once; it reports duplicates, messages out of order
// and their cause, sessions resumed or re-created, and for each client the
// time each failover took it to recover.
func TestClusterFailover(t *testing.T) {
	var clog io.Writer
	if *flagLogs != "" {
		f, err := os.Create(*flagLogs)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() }) // after the cluster's cleanup
		clog = f
		debugLog = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cluster := brokertest.StartCluster(t, brokertest.ClusterOptions{Log: clog, JSAPITimeout: *flagJSTimeout})
	urls := cluster.URLs()
	ctx := t.Context()

	pcs := []pairConfig{
		{name: "ours-qos1", topic: "failover/ours/1", qos: 1, pubServers: rotate(urls, 0), subServers: rotate(urls, 1)},
		{name: "ours-qos2", topic: "failover/ours/2", qos: 2, pubServers: rotate(urls, 1), subServers: rotate(urls, 2)},
		{name: "paho-qos1", topic: "failover/paho/1", qos: 1, pubServers: rotate(urls, 0), subServers: rotate(urls, 1)},
	}
	var pairs []pair
	defer func() {
		for _, p := range pairs {
			p.close()
		}
	}()
	setup, cancelSetup := context.WithTimeout(ctx, 30*time.Second)
	defer cancelSetup()
	for _, pc := range pcs {
		if !slices.Contains(strings.Split(*flagPairs, ","), pc.name) {
			continue
		}
		pc.interval, pc.window = *flagInterval, 32
		var p pair
		var err error
		if pc.name[:4] == "paho" {
			p, err = startPaho(setup, pc)
		} else {
			p, err = startOurs(setup, pc)
		}
		if err != nil {
			t.Fatalf("%s: %v", pc.name, err)
		}
		pairs = append(pairs, p)
	}
	var targets []target
	for _, p := range pairs {
		targets = append(targets, target{p, true}, target{p, false})
	}

	var failovers []failover
	began := time.Now()
	spacing := *flagMinRun / time.Duration(*flagKills)
	for i := 0; i < *flagKills || time.Since(began) < *flagMinRun; i++ {
		if err := awaitProgress(ctx, pairs); err != nil {
			t.Fatalf("before kill %d: %v", i+1, err)
		}
		if wait := time.Until(began.Add(time.Duration(i) * spacing)); wait > 0 {
			pause(ctx, wait)
		}
		tg := targets[i%len(targets)]
		node := cluster.NodeOf(tg.node())
		if node == nil {
			t.Fatalf("kill %d: %s is not connected", i+1, tg)
		}
		f := failover{node: node.URL(), killed: time.Now(), target: tg.String()}
		if debugLog != nil {
			debugLog.Info("failover: killing a node", "kill", i+1, "node", node.Name(), "server", node.URL(), "target", tg.String())
		}
		if err := node.Kill(); err != nil {
			t.Fatal(err)
		}
		failovers = append(failovers, f)
		pause(ctx, *flagDown)
		if err := node.Restart(); err != nil {
			t.Fatal(err)
		}
		if *flagVerbose {
			t.Logf("kill %d: %s (%s), down %v", i+1, node.Name(), tg, time.Since(f.killed).Round(time.Millisecond))
		}
	}
	if err := awaitProgress(ctx, pairs); err != nil {
		t.Fatalf("after the last kill: %v", err)
	}
	t.Logf("%d failovers in %v", len(failovers), time.Since(began).Round(time.Second))

	drain, cancel := context.WithTimeout(ctx, drainTimeout)
	defer cancel()
	for _, p := range pairs {
		if err := p.stopPublishing(drain); err != nil {
			t.Error(err)
		}
	}
	for _, p := range pairs {
		awaitDelivery(drain, p.record())
	}

	if *flagVerbose {
		logFailovers(t, failovers, pairs)
	}
	comparePairs(t, failovers, pairs, "ours-qos1", "paho-qos1")
	for _, p := range pairs {
		r := p.record()
		s := r.summarize()
		t.Logf("%s: %v", r.name, s)
		var hit []time.Duration
		var waited, waitedMax time.Duration
		byRole := map[role][]time.Duration{}
		for _, f := range failovers {
			d, who := r.hitRecovery(f.node, f.killed)
			if who == hitNone {
				continue // this pair had no connection to the killed node
			}
			hit = append(hit, d)
			byRole[who] = append(byRole[who], d)
			if d >= 0 {
				w := r.waitedWithin(who, f.killed, d)
				waited, waitedMax = waited+w, max(waitedMax, w)
			}
		}
		t.Logf("%s recovery of the client each kill hit: %s (publisher: first ack %s; subscriber or both: first message %s)",
			r.name, percentiles(hit), percentiles(byRole[hitPub]), percentiles(append(byRole[hitSub], byRole[hitBoth]...)))
		if r.name[:4] == "paho" {
			continue // the peer is measured, not judged
		}
		t.Logf("%s: of that, reconnection backoff %v in all (at most %v in one failover)",
			r.name, waited.Round(time.Millisecond), waitedMax.Round(time.Millisecond))
		if s.lost > 0 && *flagVerbose {
			t.Logf("%s: receipts around the first lost: %s", r.name, r.around(s.firstLost[0]))
		}
		// nats-server 2.15 loses and repeats QoS 2 messages of its own
		// when JetStream stalls during a leader election: it closes the
		// connection ("JetStream failed a pipelined QoS1/2 operation",
		// "unable to load the held QoS2 message") after it sent PUBREC,
		// and later completes the client's re-sent PUBREL without having
		// kept the message, or sends a completed message again after
		// ack_wait. The client's side (PUBREL re-sent on the new
		// connection, a PUBLISH with a packet ID awaiting PUBREL not
		// delivered twice) is what the scripted-broker tests check; here
		// QoS 2 losses and duplicates fail the test only with
		// -failover.strict.
		brokerQoS2 := r.qos == 2 && !*flagStrict
		switch {
		case s.lost > 0 && brokerQoS2:
			t.Logf("%s: %d acknowledged messages lost by the broker, first %v", r.name, s.lost, s.firstLost)
		case s.lost > 0:
			t.Errorf("%s: %d acknowledged messages lost, first %v", r.name, s.lost, s.firstLost)
		}
		if s.failed > 0 {
			t.Errorf("%s: %d publishes failed: %v", r.name, s.failed, s.firstFailed)
		}
		if r.qos == 2 && s.duplicates > 0 && !brokerQoS2 {
			t.Errorf("%s: %d duplicates at QoS 2", r.name, s.duplicates)
		}
		if s.acked == 0 || s.sessions.resumed+s.sessions.recreated == 0 {
			t.Errorf("%s: no traffic or no reconnection: %v", r.name, s)
		}
		if s.sessions.resubscribed < s.sessions.recreated/2 || len(s.sessions.resubscribeErrs) > 0 {
			// Each re-created subscriber session is followed by a
			// re-subscription; publishers have no subscriptions.
			t.Errorf("%s: sessions re-created %d, re-subscribed %d, errors %v", r.name, s.sessions.recreated, s.sessions.resubscribed, s.sessions.resubscribeErrs)
		}
	}
}

// logFailovers logs, for each failover, the client of each pair it hit and
// that client's recovery (see record.hitRecovery), side by side: the QoS 1
// pairs of this client and of paho.mqtt.golang start on the same nodes, so
// a kill often hits both the same way.
func logFailovers(t *testing.T, failovers []failover, pairs []pair) {
	for i, f := range failovers {
		var b strings.Builder
		fmt.Fprintf(&b, "failover %d: %s killed (aimed at the %s):", i+1, f.node, f.target)
		for _, p := range pairs {
			r := p.record()
			d, who := r.hitRecovery(f.node, f.killed)
			if who == hitNone {
				fmt.Fprintf(&b, " %s -;", r.name)
				continue
			}
			fmt.Fprintf(&b, " %s %s %s;", r.name, who, recoveryString(d))
		}
		t.Log(strings.TrimSuffix(b.String(), ";"))
	}
}

// comparePairs logs the recoveries of pairs a and b (by name) over the
// failovers that hit both the same way (the publisher, the subscriber or
// both), and in how many of them each was the faster by more than 100 ms.
func comparePairs(t *testing.T, failovers []failover, pairs []pair, a, b string) {
	var ra, rb *record
	for _, p := range pairs {
		switch p.record().name {
		case a:
			ra = p.record()
		case b:
			rb = p.record()
		}
	}
	if ra == nil || rb == nil {
		return
	}
	var da, db []time.Duration
	aFaster, bFaster := 0, 0
	for _, f := range failovers {
		x, whoA := ra.hitRecovery(f.node, f.killed)
		y, whoB := rb.hitRecovery(f.node, f.killed)
		if whoA == hitNone || whoA != whoB {
			continue
		}
		da, db = append(da, x), append(db, y)
		switch {
		case x >= 0 && (y < 0 || x < y-100*time.Millisecond):
			aFaster++
		case y >= 0 && (x < 0 || y < x-100*time.Millisecond):
			bFaster++
		}
	}
	t.Logf("failovers that hit %s and %s the same way: %s %s; %s %s; faster by more than 100 ms: %s %d, %s %d",
		a, b, a, percentiles(da), b, percentiles(db), a, aFaster, b, bFaster)
}

// recoveryString shows a recovery time, or "never".
func recoveryString(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.Round(time.Millisecond).String()
}

// awaitProgress waits until every pair's publisher had a publish
// acknowledged and its subscriber received a message since the call.
func awaitProgress(ctx context.Context, pairs []pair) error {
	type mark struct{ acked, received int }
	marks := make([]mark, len(pairs))
	for i, p := range pairs {
		marks[i].acked, marks[i].received = p.record().progress()
	}
	deadline := time.Now().Add(recoverTimeout)
	for {
		stuck := ""
		for i, p := range pairs {
			a, r := p.record().progress()
			if a <= marks[i].acked || r <= marks[i].received {
				stuck = fmt.Sprintf("%s: acknowledged %d → %d, received %d → %d", p.record().name, marks[i].acked, a, marks[i].received, r)
				break
			}
		}
		if stuck == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no progress within %v: %s", recoverTimeout, stuck)
		}
		if !pause(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// awaitDelivery waits until every message r saw acknowledged has arrived,
// or ctx ends.
func awaitDelivery(ctx context.Context, r *record) {
	for len(r.missing()) > 0 && pause(ctx, 50*time.Millisecond) {
	}
}

// pause waits for d or until ctx ends, and reports whether d passed.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
