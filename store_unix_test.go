//go:build unix

package mqtt_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/filestore"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/b4e21b16/mqtt/packet"
)

// TestFakeStoreInboundQoS2AcrossRestart: with a file store, a QoS 2 message
// the application received before the process ended (its PUBREC sent, no
// PUBREL yet) is recorded before the PUBREC goes out, so when the broker
// re-sends it to the next process (DUP, same packet ID) it is answered with
// PUBREC and not handed to the application again [MQTT-4.3.3-11].
func TestFakeStoreInboundQoS2AcrossRestart(t *testing.T) {
	t.Parallel()
	for _, ver := range fakeVersions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "store")
			synctest.Test(t, func(t *testing.T) {
				open := func() mqtt.Store {
					st, err := filestore.Open(path, &filestore.Options{Sync: filestore.SyncNever})
					if err != nil {
						t.Fatal(err)
					}
					return st
				}
				cfg := mqtt.Config{ClientID: "s", Version: ver.v, SessionExpiry: time.Hour, KeepAlive: -1}

				// First process: receives message 7 and sends PUBREC.
				cfg.Store = open()
				c1, bc1 := fakeClientConn(t, cfg, &packet.Connack{})
				bc1.Send(t, &packet.Publish{Topic: "in/a", QoS: 2, PacketID: 7, Payload: []byte("once")})
				if got := fakeRecv(t, c1.Messages()); string(got.Payload) != "once" {
					t.Fatalf("first delivery: %q", got.Payload)
				}
				if a := bc1.ExpectAck(t, packet.PUBREC); a.PacketID != 7 {
					t.Fatalf("PUBREC for %d, want 7", a.PacketID)
				}
				c1.Close() // the process ends before PUBREL arrives

				// Next process, same store: the broker re-sends message 7.
				cfg.Store = open()
				c2, bc2 := fakeClientConn(t, cfg, &packet.Connack{SessionPresent: true})
				defer c2.Close()
				bc2.Send(t, &packet.Publish{Topic: "in/a", QoS: 2, PacketID: 7, Dup: true, Payload: []byte("once")})
				if a := bc2.ExpectAck(t, packet.PUBREC); a.PacketID != 7 {
					t.Fatalf("PUBREC for %d, want 7", a.PacketID)
				}
				bc2.Send(t, &packet.Ack{PacketType: packet.PUBREL, PacketID: 7})
				if a := bc2.ExpectAck(t, packet.PUBCOMP); a.PacketID != 7 || a.ReasonCode != 0 {
					t.Fatalf("PUBCOMP %d code %v, want 7 success", a.PacketID, a.ReasonCode)
				}
				synctest.Wait()
				select {
				case m := <-c2.Messages():
					t.Fatalf("message delivered again after the restart: %q", m.Payload)
				default:
				}
			})
		})
	}
}

// crashChildEnv carries a crashChild, as JSON, to TestCrashChild in a child
// process.
const crashChildEnv = "MQTT_TEST_CRASH_CHILD"

// crashChild is what one run of TestCrashChild does.
type crashChild struct {
	URL      string
	Store    string
	ClientID string
	Topic    string
	Version  mqtt.ProtocolVersion
	Run      int
	Sync     filestore.SyncPolicy
	Count    int  // messages to publish
	Final    bool // then wait for every delivery result and disconnect, instead of waiting to be killed
}

// crashChildTimeout bounds a child's life; the parent kills it much sooner.
const crashChildTimeout = 60 * time.Second

// crashSay reports progress to the parent: one line, one write(2), so that
// a line the parent reads was complete before the child died.
func crashSay(format string, args ...any) {
	if _, err := fmt.Fprintf(os.Stdout, format+"\n", args...); err != nil {
		os.Exit(3) // the parent is gone
	}
}

// TestCrashChild is the publisher that TestCrashDurablePublish kills. It
// opens the file store, connects with it (which queues the messages earlier
// runs left in it) and publishes numbered QoS 1 and QoS 2 messages with
// PublishDurable, reporting "queued <qos> <seq>" once each is accepted. A
// final run then waits for the outcome of every message, its own and those
// it inherited (Client.Restored), and disconnects. Outside a child process it does
// nothing.
func TestCrashChild(t *testing.T) {
	env := os.Getenv(crashChildEnv)
	if env == "" {
		return
	}
	var cfg crashChild
	if err := json.Unmarshal([]byte(env), &cfg); err != nil {
		t.Fatalf("%s: %v", crashChildEnv, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), crashChildTimeout)
	defer cancel()
	st, err := filestore.Open(cfg.Store, &filestore.Options{Sync: cfg.Sync})
	if err != nil {
		t.Fatal(err)
	}
	inherited, _, err := st.Load()
	if err != nil {
		if !errors.Is(err, mqtt.ErrStoreCorrupt) {
			st.Close()
			t.Fatalf("Load: %v", err)
		}
		crashSay("damaged %s", strconv.Quote(err.Error()))
	}
	c, err := mqtt.Connect(ctx, mqtt.Config{
		Servers: []string{cfg.URL}, ClientID: cfg.ClientID, Version: cfg.Version, KeepAlive: 10 * time.Second,
		CleanStart: false, SessionExpiry: time.Hour, Store: st,
		Reconnect: mqtt.ReconnectConfig{MinDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond},
	})
	if err != nil {
		st.Close()
		t.Fatalf("Connect: %v", err)
	}
	defer c.Close() // closes the store
	sent, released := 0, 0
	for _, r := range inherited {
		switch {
		case r.Released:
			released++
		case r.PacketID != 0:
			sent++
		}
	}
	crashSay("connected %d %t %d %d", len(inherited), c.SessionPresent(), sent, released)

	// Every message in the store, inherited or new, has one Pending: those
	// of the inherited ones are restored with their IDs.
	want := make(map[uint64]bool, len(inherited)+cfg.Count)
	for _, r := range inherited {
		want[r.Seq] = true
	}
	pendings := c.Restored()
	if len(pendings) != len(inherited) {
		t.Fatalf("Restored = %d Pendings for %d stored publishes", len(pendings), len(inherited))
	}
	for _, p := range pendings {
		if !want[p.ID()] {
			t.Fatalf("restored Pending with ID %d, which is not in the store", p.ID())
		}
	}
	for seq := range cfg.Count {
		qos := mqtt.QoS(1 + seq%2)
		m := mqtt.Message{Topic: cfg.Topic, Payload: fmt.Appendf(nil, "%d %d %d", cfg.Run, qos, seq), QoS: qos}
		p, err := c.PublishDurable(ctx, m)
		if err != nil {
			t.Fatalf("PublishDurable %d: %v", seq, err)
		}
		if want[p.ID()] {
			t.Fatalf("PublishDurable %d returned ID %d, already in use", seq, p.ID())
		}
		want[p.ID()] = true
		pendings = append(pendings, p)
		crashSay("queued %d %d", qos, seq)
	}
	if !cfg.Final {
		<-ctx.Done()
		t.Fatal("not killed in time")
	}
	results := len(want)
	for _, p := range pendings {
		if err := p.Wait(ctx); err != nil {
			t.Fatalf("delivery of ID %d: %v (%d of %d)", p.ID(), err, results-len(want), results)
		}
		delete(want, p.ID())
	}
	if len(want) > 0 {
		t.Fatalf("%d of %d messages have no Pending", len(want), results)
	}
	if err := c.Disconnect(ctx); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	crashSay("delivered %d", results)
}

// TestCrashDurablePublish kills a publishing process again and again with
// SIGKILL and checks that the session outlives process crashes: with a
// file store, every message that PublishDurable accepted reaches the
// subscriber, QoS 1 at least once and QoS 2 exactly once, whenever the
// process dies, because the next process that opens the store delivers what
// was left over.
//
// Each run is TestCrashChild in a new process with the same store and
// client ID (a persistent session); runs use SyncNever, which survives a
// process crash, except one with SyncAlways; one run is killed as soon as it
// has connected, while it re-sends what earlier runs left. A last run
// finishes, waits for every delivery result and disconnects, leaving the
// store empty. A message whose PublishDurable was under way at the kill
// (not reported) may arrive, at QoS 2 once at most.
func TestCrashDurablePublish(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	t.Parallel()
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			runCrash(t, ver.v)
		})
	}
}

// crashPlan is one child run: killed after killAfter "queued" lines (0:
// right after it connected), or the final run.
type crashPlan struct {
	sync      filestore.SyncPolicy
	killAfter int
	final     bool
}

// crashOutcome is what the parent saw of one child run.
type crashOutcome struct {
	queued    []mqtt.QoS // by sequence number: the messages reported queued
	inherited int        // messages the store held when the child started
	sent      int        // of which sent and awaiting PUBACK or PUBREC
	released  int        // of which QoS 2 past PUBREC
	present   bool       // session present at the child's Connect
	damaged   string     // store damage the child's Load reported
	delivered bool       // the final run reported every delivery result
}

func runCrash(t *testing.T, v mqtt.ProtocolVersion) {
	opts := brokertest.Options{}
	if v == mqtt.Version311 {
		// A restarted child sends everything its store holds at once.
		// Mosquitto 2.0.11 discards a 3.1.1 client's QoS 1 PUBLISH beyond
		// its in-flight limit while answering with a plain PUBACK (see
		// runBrokerRestart), so lift the limit.
		opts.Extra = []string{"max_inflight_messages 0"}
	}
	b := brokertest.Start(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	dir := t.TempDir()
	storePath := filepath.Join(dir, "store")
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	id := uniqueID(t)
	topic := id + "/crash"

	sub := connect(t, mqtt.Config{
		Servers: []string{b.URL()}, ClientID: id + "-sub", Version: v,
		CleanStart: false, SessionExpiry: time.Hour,
		Reconnect: mqtt.ReconnectConfig{MinDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond},
	})
	s, err := sub.Subscribe(ctx, topic, mqtt.ExactlyOnce)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	rx := newCrashReceiver(s, sub)
	defer rx.stop()

	kill := func() int { return 50 + rand.IntN(351) }
	plans := []crashPlan{
		{sync: filestore.SyncNever, killAfter: kill()},
		{sync: filestore.SyncNever, killAfter: kill()},
		{sync: filestore.SyncNever, killAfter: 0},
		{sync: filestore.SyncAlways, killAfter: kill()},
		{sync: filestore.SyncNever, killAfter: kill()},
		{sync: filestore.SyncNever, killAfter: kill()},
		{sync: filestore.SyncNever, final: true},
	}
	const finalCount = 200
	runs := make([]crashOutcome, len(plans))
	for run, p := range plans {
		child := crashChild{
			URL: b.URL(), Store: storePath, ClientID: id + "-pub", Topic: topic, Version: v,
			Run: run, Sync: p.sync, Count: 1000, Final: p.final,
		}
		if p.final {
			child.Count = finalCount
		}
		start := time.Now()
		runs[run] = runCrashChild(ctx, t, child, p, tmp)
		o := &runs[run]
		how := fmt.Sprintf("killed after %d queued", len(o.queued))
		if p.final {
			how = fmt.Sprintf("finished: %d queued, all delivered", len(o.queued))
		}
		t.Logf("run %d (%v): the store held %d messages at start (%d sent, %d past PUBREC), session present %t; %s, in %v",
			run, p.sync, o.inherited, o.sent, o.released, o.present, how, time.Since(start).Round(time.Millisecond))
		if o.damaged != "" {
			t.Logf("run %d: the store reported damage (a torn tail is expected after a kill): %s", run, o.damaged)
		}
		if run > 0 && !o.present {
			t.Errorf("run %d: the broker did not keep the publisher's session", run)
		}
	}

	// Everything reported arrives; then give duplicates a moment.
	arrival, cancelArrival := context.WithTimeout(ctx, 15*time.Second)
	defer cancelArrival()
	waitUntil(arrival, t, "every queued message to arrive", func() bool {
		for run, o := range runs {
			for seq := range o.queued {
				if rx.times(run, seq) == 0 {
					return false
				}
			}
		}
		return true
	}, func() string { return rx.missing(runs) })
	<-time.After(500 * time.Millisecond) // a window for late duplicates to show
	rx.stop()

	queued, q1Dups, inDoubt := 0, 0, 0
	for run, o := range runs {
		for seq, qos := range o.queued {
			queued++
			switch n := rx.times(run, seq); {
			case n == 0:
				t.Errorf("run %d: %v message %d was queued but never arrived", run, qos, seq)
			case n > 1 && qos == mqtt.ExactlyOnce:
				t.Errorf("run %d: QoS 2 message %d arrived %d times", run, seq, n)
			case n > 1:
				q1Dups += n - 1
			}
		}
	}
	for k, n := range rx.all() {
		if k.run < len(runs) && k.seq < len(runs[k.run].queued) {
			continue // checked above
		}
		switch {
		case k.run >= len(runs) || plans[k.run].final || k.seq != len(runs[k.run].queued):
			t.Errorf("run %d: message %d arrived but was never published", k.run, k.seq)
		case k.qos == mqtt.ExactlyOnce && n > 1:
			t.Errorf("run %d: QoS 2 message %d, being queued at the kill, arrived %d times", k.run, k.seq, n)
		default:
			inDoubt++
		}
	}
	if n := rx.bad.Load(); n > 0 {
		t.Errorf("%d messages with a malformed payload or the wrong QoS, or outside the subscription's channel", n)
	}

	// The last run settled everything: the store is empty.
	st, err := filestore.Open(storePath, nil)
	if err != nil {
		t.Fatalf("reopening the store: %v", err)
	}
	out, in, err := st.Load()
	if err := errors.Join(err, st.Close()); err != nil {
		t.Errorf("store after the last run: %v", err)
	}
	if len(out) > 0 || len(in) > 0 {
		t.Errorf("store after the last run holds %d publishes and %d inbound IDs, want none", len(out), len(in))
	}

	carried := 0
	for _, o := range runs {
		carried += o.inherited
	}
	t.Logf("%d kills, %d messages queued (%d carried over to a later run by the store), %d QoS 1 duplicates, %d unreported messages (being queued at a kill) delivered",
		len(plans)-1, queued, carried, q1Dups, inDoubt)
	if err := sub.Disconnect(ctx); err != nil {
		t.Errorf("subscriber Disconnect: %v", err)
	}
}

// runCrashChild runs one child and kills it as p says.
func runCrashChild(ctx context.Context, t *testing.T, child crashChild, p crashPlan, tmp string) crashOutcome {
	t.Helper()
	js, err := json.Marshal(child)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=90s")
	cmd.Env = append(os.Environ(),
		crashChildEnv+"="+string(js),
		// What the child's TestMain leaves behind when it is killed goes
		// away with the test's temporary directory.
		"TMPDIR="+tmp,
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 10 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var o crashOutcome
	var other []string // the test framework's own output
	killed := false
	killNow := func() {
		if !killed && !p.final {
			if err := cmd.Process.Kill(); err != nil {
				t.Errorf("run %d: kill: %v", child.Run, err)
			}
			killed = true
		}
	}
	fail := func(format string, args ...any) {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("run %d: %s\nstdout: %s\nstderr:\n%s", child.Run, fmt.Sprintf(format, args...), other, stderr.Bytes())
	}
	r := bufio.NewReader(stdout)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if err != io.EOF {
				t.Errorf("run %d: reading the child's output: %v", child.Run, err)
			}
			break // a last line without its newline was cut short: not reported
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 5 && f[0] == "connected":
			o.inherited, _ = strconv.Atoi(f[1])
			o.present = f[2] == "true"
			o.sent, _ = strconv.Atoi(f[3])
			o.released, _ = strconv.Atoi(f[4])
			if p.killAfter == 0 {
				killNow()
			}
		case len(f) == 3 && f[0] == "queued":
			qos, err1 := strconv.Atoi(f[1])
			seq, err2 := strconv.Atoi(f[2])
			if err1 != nil || err2 != nil || seq != len(o.queued) || qos != 1+seq%2 {
				fail("child reported %q after %d queued", line, len(o.queued))
			}
			o.queued = append(o.queued, mqtt.QoS(qos))
			if len(o.queued) == p.killAfter {
				killNow()
			}
		case len(f) >= 2 && f[0] == "damaged":
			o.damaged = strings.Join(f[1:], " ")
		case len(f) == 2 && f[0] == "delivered":
			o.delivered = true
		default:
			other = append(other, strings.TrimSpace(line))
		}
	}
	err = cmd.Wait()
	if p.final {
		if err != nil || !o.delivered || len(o.queued) != child.Count {
			fail("the final run ended with %v after %d queued (delivered: %t)", err, len(o.queued), o.delivered)
		}
		return o
	}
	if !killed {
		fail("the child exited (%v) before it was killed, after %d queued", err, len(o.queued))
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		fail("child: got %v, want death by SIGKILL", err)
	}
	return o
}

// crashKey identifies a message of TestCrashDurablePublish.
type crashKey struct {
	run, seq int
	qos      mqtt.QoS
}

// crashReceiver counts the deliveries of each message.
type crashReceiver struct {
	quit     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	mu   sync.Mutex
	seen map[crashKey]int // guarded by mu

	bad atomic.Int64
}

func newCrashReceiver(s *mqtt.Subscription, c *mqtt.Client) *crashReceiver {
	r := &crashReceiver{quit: make(chan struct{}), done: make(chan struct{}), seen: make(map[crashKey]int)}
	go func() {
		defer close(r.done)
		subCh, defCh := s.Messages(), c.Messages()
		for subCh != nil || defCh != nil {
			select {
			case m, ok := <-subCh:
				if !ok {
					subCh = nil
					continue
				}
				r.add(m)
			case m, ok := <-defCh:
				if !ok {
					defCh = nil
					continue
				}
				r.bad.Add(1) // it matches the live subscription
				r.add(m)
			case <-r.quit:
				return
			}
		}
	}()
	return r
}

func (r *crashReceiver) add(m mqtt.Message) {
	var k crashKey
	var qos int
	if n, err := fmt.Sscanf(string(m.Payload), "%d %d %d", &k.run, &qos, &k.seq); n != 3 || err != nil || qos != int(m.QoS) || qos != 1+k.seq%2 {
		r.bad.Add(1)
		return
	}
	k.qos = mqtt.QoS(qos)
	r.mu.Lock()
	r.seen[k]++
	r.mu.Unlock()
}

func (r *crashReceiver) stop() {
	r.stopOnce.Do(func() { close(r.quit) })
	<-r.done
}

func (r *crashReceiver) times(run, seq int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[crashKey{run, seq, mqtt.QoS(1 + seq%2)}]
}

func (r *crashReceiver) all() map[crashKey]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[crashKey]int, len(r.seen))
	for k, n := range r.seen {
		m[k] = n
	}
	return m
}

// missing describes the queued messages that have not arrived.
func (r *crashReceiver) missing(runs []crashOutcome) string {
	var lost []string
	for run, o := range runs {
		for seq := range o.queued {
			if r.times(run, seq) == 0 {
				lost = append(lost, fmt.Sprintf("run %d seq %d", run, seq))
			}
		}
	}
	n := len(lost)
	if n > 20 {
		lost = append(lost[:20], "...")
	}
	return fmt.Sprintf("%d missing: %s", n, strings.Join(lost, ", "))
}

// TestMosquittoDurablePublishSurvivesRestart shows the effect on a
// client: after 1024 durable publishes have completed, the next one, made
// while the broker is down, is accepted by PublishDurable but is gone when
// the process restarts with the same file store.
func TestMosquittoDurablePublishSurvivesRestart(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Persistence: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := uniqueID(t)
	topic := id + "/durable"
	path := filepath.Join(t.TempDir(), "store")
	cfg := func(st mqtt.Store) mqtt.Config {
		return mqtt.Config{
			Servers: []string{b.URL()}, ClientID: id + "-pub", Version: mqtt.Version5,
			SessionExpiry: time.Hour, Store: st,
			Reconnect: mqtt.ReconnectConfig{MinDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond},
		}
	}
	sub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-sub", Version: mqtt.Version5, SessionExpiry: time.Hour})
	s, err := sub.Subscribe(ctx, topic, mqtt.AtLeastOnce)
	must(t, err)

	st, err := filestore.Open(path, &filestore.Options{Sync: filestore.SyncNever})
	must(t, err)
	pub, err := mqtt.Connect(ctx, cfg(st))
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	defer pub.Close()
	const n = 1024
	for i := range n {
		p, err := pub.PublishDurable(ctx, mqtt.Message{Topic: topic, Payload: []byte(fmt.Sprint(i)), QoS: mqtt.AtLeastOnce})
		if err != nil {
			t.Fatal(err)
		}
		must(t, p.Wait(ctx))
	}
	for range n {
		receive(t, s.Messages())
	}

	b.Stop(t)
	if _, err := pub.PublishDurable(ctx, mqtt.Message{Topic: topic, Payload: []byte("last"), QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	pub.Close() // the process ends; the store is closed with the client
	b.Restart(t)

	st, err = filestore.Open(path, nil)
	must(t, err)
	out, _, err := st.Load()
	must(t, err)
	if len(out) != 1 {
		t.Errorf("the store holds %d publishes after the restart, want 1 (the message accepted while the broker was down)", len(out))
	}
	pub2, err := mqtt.Connect(ctx, cfg(st))
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	defer pub2.Close()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m := <-s.Messages():
			if string(m.Payload) == "last" {
				return
			}
			// A re-delivery of an earlier message: the broker restarted.
		case <-timeout:
			t.Fatal("the message accepted by PublishDurable before the restart never arrived")
		}
	}
}

// TestFakeResumeReleasesInSeqOrderAfterRestart loads 16 messages
// past PUBREC from a store and checks that the PUBRELs go out in Seq order.
func TestFakeResumeReleasesInSeqOrderAfterRestart(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		st := mqtt.NewMemoryStore()
		const n = 16
		for seq := uint64(1); seq <= n; seq++ {
			must(t, st.SavePublish(mqtt.StoredPublish{Seq: seq, PacketID: uint16(seq), Released: true,
				Message: mqtt.Message{Topic: "t", Payload: []byte(fmt.Sprint(seq)), QoS: mqtt.ExactlyOnce}}))
		}
		_, bc := fakeClientConn(t, mqtt.Config{ClientID: "r", Version: mqtt.Version5, Store: st}, &packet.Connack{SessionPresent: true})
		var got []uint16
		for range n {
			got = append(got, bc.ExpectAck(t, packet.PUBREL).PacketID)
		}
		for i, id := range got {
			if id != uint16(i+1) {
				t.Fatalf("PUBREL packet IDs in order %v, want 1 to %d (Seq order)", got, n)
			}
		}
	})
}

// must ends the test on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
