package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The scale command opens many connections at once, across several client
// processes and several mosquitto instances, and walks them through three
// phases together: connect; exchange (each subscribes to a topic of its
// own, publishes one QoS 1 message to it and receives it back); close
// (DISCONNECT). It reports time and rate per phase, memory and goroutines
// per connection with all of them open, failures grouped by cause, and
// what is left over afterwards.
//
//	go run . scale -client ours -n 19000               # one client process
//	go run . scale -client ours -n 100000 -procs 6     # six client processes
//
// A process may hold only RLIMIT_NOFILE open files (20,000 here, and it
// cannot be raised), so each client process and each mosquitto instance
// stays under it: the command starts enough brokers, on 127.0.0.1,
// 127.0.0.2, …, and the client processes bind their connections to source
// addresses 127.1.x.y, perSource connections each, so that no source
// address runs out of ephemeral ports.
//
// The coordinator (this process) starts the brokers, re-executes itself
// as the client processes ("scale-worker"), tells them over stdin when to
// start each phase, so all connections are open at the same time, and
// reads one report line per phase from each.

// scaleWorkerCmd is the first argument that makes the program a client
// process of the scale command.
const scaleWorkerCmd = "scale-worker"

const (
	// perBrokerDefault is how many connections one mosquitto instance is
	// given when -brokers is 0.
	perBrokerDefault = 15000
	// fdReserve is how many of a process's open files are kept for other
	// things than the connections (standard streams, epoll, pipes, the
	// broker's listener and log).
	fdReserve = 64
	// opTimeout bounds one connection's connect, exchange or close.
	opTimeout = 60 * time.Second
	// settleTimeout bounds the wait for goroutines and files to be released
	// after the close phase.
	settleTimeout = 20 * time.Second
)

// scaleConfig is the configuration of one scale run.
type scaleConfig struct {
	client    string
	conns     int
	procs     int
	brokers   int
	dials     int // operations in progress at once, per client process
	perSource int // connections per source address
	version   byte
	profile   string // directory for the client processes' profiles, "" for none
	rounds    int    // times the phases are run, to show that nothing accumulates
	phaseWait time.Duration
	// brokerMax, when positive, is each broker's max_connections instead
	// of what its open-file limit allows (to show how failures are
	// reported).
	brokerMax int
}

// phases are the steps every client process runs on the coordinator's
// signal, in order.
var phases = []string{"connect", "exchange", "close"}

// phaseReport is what a client process reports after starting up ("ready")
// and after each phase, as one JSON line after reportPrefix.
type phaseReport struct {
	Phase      string         `json:"phase"`
	OK         int            `json:"ok"`               // connections that completed the phase
	Failed     map[string]int `json:"failed,omitempty"` // cause (addresses and ids masked) → connections
	Secs       float64        `json:"secs"`             // the phase's duration in this process
	HeapStack  uint64         `json:"heap_stack"`       // Go heap (after GC) + goroutine stacks
	Stacks     uint64         `json:"stacks"`           // goroutine stacks
	Goroutines int            `json:"goroutines"`
	RSS        uint64         `json:"rss"` // resident set size, bytes
	FDs        int            `json:"fds"` // open files
}

const reportPrefix = "REPORT "

func scaleMain(args []string) int {
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	cfg := scaleConfig{}
	fs.StringVar(&cfg.client, "client", "ours", "ours, paho or pahov5")
	fs.IntVar(&cfg.conns, "n", 19000, "connections in all")
	fs.IntVar(&cfg.procs, "procs", 1, "client processes")
	fs.IntVar(&cfg.brokers, "brokers", 0, fmt.Sprintf("mosquitto instances (0: one per %d connections)", perBrokerDefault))
	fs.IntVar(&cfg.dials, "dials", 256, "connections connecting (or exchanging, or closing) at once, per client process")
	fs.IntVar(&cfg.perSource, "per-source", 2000, "connections per source address 127.1.x.y")
	version := fs.Int("mqttv", 5, "MQTT version for ours (4 or 5)")
	fs.StringVar(&cfg.profile, "profile", "", "directory for CPU, mutex and block profiles and an execution trace of each client process's connect phase")
	fs.IntVar(&cfg.rounds, "rounds", 1, "run the phases this many times (leaks show as growth after each round)")
	fs.IntVar(&cfg.brokerMax, "broker-max", 0, "max_connections of each broker (0: what its open-file limit allows)")
	fs.DurationVar(&cfg.phaseWait, "phase-timeout", 5*time.Minute, "bound on each phase")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.version = byte(*version)
	if err := runScale(os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench scale:", err)
		return 1
	}
	return 0
}

// scaleClients are the clients the scale command drives: those whose
// connections can be bound to a source address and that work without a
// goroutine of the bench's own per connection.
var scaleClients = []string{"ours", "paho", "pahov5"}

func (cfg *scaleConfig) check(fdLimit int) error {
	if !slices.Contains(scaleClients, cfg.client) {
		return fmt.Errorf("-client %q: the scale command drives %s", cfg.client, strings.Join(scaleClients, ", "))
	}
	if cfg.conns < 1 || cfg.procs < 1 || cfg.dials < 1 || cfg.perSource < 1 || cfg.rounds < 1 || cfg.brokers < 0 {
		return errors.New("-n, -procs, -dials, -per-source and -rounds must be positive, -brokers not negative")
	}
	if cfg.version != 4 && cfg.version != 5 {
		return fmt.Errorf("-mqttv %d: 4 or 5", cfg.version)
	}
	if cfg.brokers == 0 {
		cfg.brokers = (cfg.conns + perBrokerDefault - 1) / perBrokerDefault
	}
	if cfg.brokers > 254 || cfg.conns/cfg.perSource > 250*250 {
		return errors.New("too many brokers or source addresses for 127.0.0.0/8")
	}
	room := fdLimit - fdReserve
	if per := (cfg.conns + cfg.procs - 1) / cfg.procs; per > room {
		return fmt.Errorf("%d connections per client process, but a process may open only %d files: use more -procs", per, fdLimit)
	}
	if per := (cfg.conns + cfg.brokers - 1) / cfg.brokers; per > room {
		return fmt.Errorf("%d connections per broker, but a process may open only %d files: use more -brokers", per, fdLimit)
	}
	return nil
}

// fileLimit returns the soft RLIMIT_NOFILE of this process.
func fileLimit() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1024
	}
	return int(min(lim.Cur, 1<<30))
}

// scaleRun is the coordinator's view of one run in progress.
type scaleRun struct {
	cfg     scaleConfig
	brokers []*mosquittoBroker
	workers []*scaleWorker
	// reports[k][w] is worker w's report of phase key k ("ready", then
	// phaseKey(phase, round) for each phase of each round).
	reports map[string][]phaseReport
	wall    map[string]time.Duration // phase key → coordinator's wall time
	// brokerRSS is the brokers' resident set, summed, with all
	// connections open (after exchange), in bytes.
	brokerRSS uint64
	// brokerFDs is how many open files the brokers held, summed, before
	// the run and after it.
	brokerFDsBefore int
	brokerFDsAfter  []int // per round
	// slab is the kernel's slab memory (sockets, files, epoll entries of
	// both ends, and whatever else the machine does; bytes) before the run
	// and with all connections open.
	slabBefore, slabOpen uint64
	fdLimit              int
}

// scaleWorker is one client process as the coordinator sees it.
type scaleWorker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // report lines, closed when the process's stdout ends
}

func runScale(w io.Writer, cfg scaleConfig) error {
	limit := fileLimit()
	if err := cfg.check(limit); err != nil {
		return err
	}
	run := &scaleRun{cfg: cfg, reports: make(map[string][]phaseReport), wall: make(map[string]time.Duration), fdLimit: limit}
	defer run.stop()
	addrs := make([]string, cfg.brokers)
	for i := range cfg.brokers {
		maxConns := limit - fdReserve/2
		if cfg.brokerMax > 0 {
			maxConns = cfg.brokerMax
		}
		m, err := startMosquittoOn(fmt.Sprintf("127.0.0.%d", i+1), maxConns)
		if err != nil {
			return fmt.Errorf("broker %d: %w", i, err)
		}
		run.brokers = append(run.brokers, m)
		addrs[i] = m.Addr()
	}
	run.brokerFDsBefore = run.brokerFDs()
	run.slabBefore = kernelSlab()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	per := cfg.conns / cfg.procs
	for p := range cfg.procs {
		first, count := p*per, per
		if p == cfg.procs-1 {
			count = cfg.conns - first
		}
		args := []string{scaleWorkerCmd,
			"-client", cfg.client, "-first", strconv.Itoa(first), "-count", strconv.Itoa(count),
			"-brokers", strings.Join(addrs, ","), "-dials", strconv.Itoa(cfg.dials),
			"-per-source", strconv.Itoa(cfg.perSource), "-mqttv", strconv.Itoa(int(cfg.version)),
			"-id", strconv.Itoa(p), "-profile", cfg.profile}
		sw, err := startScaleWorker(exe, args)
		if err != nil {
			return fmt.Errorf("client process %d: %w", p, err)
		}
		run.workers = append(run.workers, sw)
	}
	if err := run.collect("ready", "ready", time.Now()); err != nil {
		return err
	}
	for round := range cfg.rounds {
		for _, phase := range phases {
			start := time.Now()
			for i, sw := range run.workers {
				if _, err := io.WriteString(sw.stdin, phase+"\n"); err != nil {
					return fmt.Errorf("client process %d: %w", i, err)
				}
			}
			key := phaseKey(phase, round)
			if err := run.collect(key, phase, start); err != nil {
				return err
			}
			switch {
			case phase == "exchange" && round == 0:
				run.brokerRSS = run.brokersRSS()
				run.slabOpen = kernelSlab()
			case phase == "close":
				run.brokerFDsAfter = append(run.brokerFDsAfter, run.settleBrokers())
			}
		}
	}
	for i, sw := range run.workers {
		sw.stdin.Close()
		if err := sw.cmd.Wait(); err != nil {
			return fmt.Errorf("client process %d: %w", i, err)
		}
	}
	run.workers = nil
	run.print(w)
	if failed := run.failed(); failed > 0 {
		return fmt.Errorf("%d connections failed (causes above)", failed)
	}
	return nil
}

func startScaleWorker(exe string, args []string) (*scaleWorker, error) {
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sw := &scaleWorker{cmd: cmd, stdin: stdin, lines: make(chan string, len(phases)+1)}
	go func() {
		defer close(sw.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), reportPrefix); ok {
				sw.lines <- rest
			} else {
				fmt.Fprintln(os.Stderr, sc.Text())
			}
		}
	}()
	return sw, nil
}

// phaseKey names the reports of phase in round (from 0).
func phaseKey(phase string, round int) string {
	if round == 0 {
		return phase
	}
	return fmt.Sprintf("%s#%d", phase, round+1)
}

// collect reads every worker's report of phase, filed under key, waiting
// at most cfg.phaseWait.
func (run *scaleRun) collect(key, phase string, start time.Time) error {
	timeout := time.NewTimer(run.cfg.phaseWait)
	defer timeout.Stop()
	reps := make([]phaseReport, len(run.workers))
	for i, sw := range run.workers {
		select {
		case line, ok := <-sw.lines:
			if !ok {
				return fmt.Errorf("client process %d ended before reporting %s", i, phase)
			}
			if err := json.Unmarshal([]byte(line), &reps[i]); err != nil {
				return fmt.Errorf("client process %d: %w", i, err)
			}
			if reps[i].Phase != phase {
				return fmt.Errorf("client process %d reported %q, want %q", i, reps[i].Phase, phase)
			}
		case <-timeout.C:
			return fmt.Errorf("phase %s: client process %d did not report within %v", phase, i, run.cfg.phaseWait)
		}
	}
	run.wall[key] = time.Since(start)
	run.reports[key] = reps
	return nil
}

// stop ends what is still running: client processes (after an error) and
// the brokers.
func (run *scaleRun) stop() {
	for _, sw := range run.workers {
		sw.stdin.Close()
		sw.cmd.Process.Kill()
		sw.cmd.Wait()
	}
	for _, b := range run.brokers {
		b.Close()
	}
}

func (run *scaleRun) brokersRSS() uint64 {
	var sum float64
	for _, b := range run.brokers {
		sum += processRSS(b.PID())
	}
	return uint64(sum * (1 << 20))
}

func (run *scaleRun) brokerFDs() int {
	n := 0
	for _, b := range run.brokers {
		n += openFiles(b.PID())
	}
	return n
}

// settleBrokers waits until the brokers hold no more open files than
// before the run, or settleTimeout passes, and returns how many they hold.
func (run *scaleRun) settleBrokers() int {
	deadline := time.Now().Add(settleTimeout)
	for {
		n := run.brokerFDs()
		if n <= run.brokerFDsBefore || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (run *scaleRun) failed() int {
	n := 0
	for key, reps := range run.reports {
		if key == "ready" {
			continue
		}
		for _, r := range reps {
			for _, c := range r.Failed {
				n += c
			}
		}
	}
	return n
}

// total sums the reports filed under key over the client processes.
func (run *scaleRun) total(key string) phaseReport {
	var t phaseReport
	t.Failed = make(map[string]int)
	for _, r := range run.reports[key] {
		t.OK += r.OK
		t.Secs = max(t.Secs, r.Secs)
		t.HeapStack += r.HeapStack
		t.Stacks += r.Stacks
		t.Goroutines += r.Goroutines
		t.RSS += r.RSS
		t.FDs += r.FDs
		for cause, n := range r.Failed {
			t.Failed[cause] += n
		}
	}
	return t
}

// scaleResult is the run's summary, printed as the RESULT line. Times,
// rates and memory are those of the first round.
type scaleResult struct {
	Client       string  `json:"client"`
	Conns        int     `json:"conns"`
	Procs        int     `json:"procs"`
	Brokers      int     `json:"brokers"`
	Rounds       int     `json:"rounds"`
	Connected    int     `json:"connected"`
	ConnectSecs  float64 `json:"connect_secs"`
	ConnectRate  float64 `json:"connect_rate"`
	Exchanged    int     `json:"exchanged"`
	ExchangeSecs float64 `json:"exchange_secs"`
	Closed       int     `json:"closed"`
	CloseSecs    float64 `json:"close_secs"`
	Failed       int     `json:"failed"` // all rounds
	// Per connection, with all connections open after the exchange
	// (growth over the client processes' state before connecting).
	HeapStackPerConn  float64 `json:"heap_stack_per_conn"`
	StacksPerConn     float64 `json:"stacks_per_conn"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn"`
	RSSPerConn        float64 `json:"rss_per_conn"`
	// The same right after connecting, before subscribing.
	IdleHeapStackPerConn  float64 `json:"idle_heap_stack_per_conn"`
	IdleStacksPerConn     float64 `json:"idle_stacks_per_conn"`
	IdleGoroutinesPerConn float64 `json:"idle_goroutines_per_conn"`
	ClientRSSMiB          float64 `json:"client_rss_mib"`  // all client processes, all open
	BrokerRSSMiB          float64 `json:"broker_rss_mib"`  // all brokers, all open
	KernelSlabMiB         float64 `json:"kernel_slab_mib"` // growth of the kernel's slab memory, all open
	// What each round left behind after its close phase, summed over the
	// processes, relative to the state before the first round.
	Left []leftOver `json:"left"`
}

// leftOver is what remains after a round's close phase.
type leftOver struct {
	Goroutines  int     `json:"goroutines"`
	Files       int     `json:"files"`        // open in the client processes
	BrokerFiles int     `json:"broker_files"` // open in the brokers
	HeapPerConn float64 `json:"heap_per_conn"`
}

func perConn(after, before uint64, n int) float64 {
	if n == 0 {
		return 0
	}
	return (float64(after) - float64(before)) / float64(n)
}

func (run *scaleRun) result() scaleResult {
	cfg := run.cfg
	ready, conn, ex, cl := run.total("ready"), run.total("connect"), run.total("exchange"), run.total("close")
	r := scaleResult{
		Client: cfg.client, Conns: cfg.conns, Procs: cfg.procs, Brokers: cfg.brokers, Rounds: cfg.rounds,
		Connected: conn.OK, ConnectSecs: run.wall["connect"].Seconds(),
		Exchanged: ex.OK, ExchangeSecs: run.wall["exchange"].Seconds(),
		Closed: cl.OK, CloseSecs: run.wall["close"].Seconds(),
		Failed:        run.failed(),
		ClientRSSMiB:  float64(ex.RSS) / (1 << 20),
		BrokerRSSMiB:  float64(run.brokerRSS) / (1 << 20),
		KernelSlabMiB: (float64(run.slabOpen) - float64(run.slabBefore)) / (1 << 20),
	}
	r.ConnectRate = float64(conn.OK) / r.ConnectSecs
	r.HeapStackPerConn = perConn(ex.HeapStack, ready.HeapStack, ex.OK)
	r.StacksPerConn = perConn(ex.Stacks, ready.Stacks, ex.OK)
	r.GoroutinesPerConn = perConn(uint64(ex.Goroutines), uint64(ready.Goroutines), ex.OK)
	r.RSSPerConn = perConn(ex.RSS, ready.RSS, ex.OK)
	r.IdleHeapStackPerConn = perConn(conn.HeapStack, ready.HeapStack, conn.OK)
	r.IdleStacksPerConn = perConn(conn.Stacks, ready.Stacks, conn.OK)
	r.IdleGoroutinesPerConn = perConn(uint64(conn.Goroutines), uint64(ready.Goroutines), conn.OK)
	for round := range cfg.rounds {
		cl := run.total(phaseKey("close", round))
		left := leftOver{
			Goroutines:  cl.Goroutines - ready.Goroutines,
			Files:       cl.FDs - ready.FDs,
			HeapPerConn: perConn(cl.HeapStack, ready.HeapStack, cfg.conns),
		}
		if round < len(run.brokerFDsAfter) {
			left.BrokerFiles = max(0, run.brokerFDsAfter[round]-run.brokerFDsBefore)
		}
		r.Left = append(r.Left, left)
	}
	return r
}

func (run *scaleRun) print(w io.Writer) {
	cfg := run.cfg
	r := run.result()
	fmt.Fprintf(w, "connection scale: %s, %d connections, %d client process(es), %d mosquitto instance(s) on 127.0.0.1-%d, %d operations at once per process, open-file limit %d\n",
		cfg.client, cfg.conns, cfg.procs, cfg.brokers, cfg.brokers, cfg.dials, run.fdLimit)
	for round := range cfg.rounds {
		if cfg.rounds > 1 {
			fmt.Fprintf(w, "  round %d\n", round+1)
		}
		for _, phase := range phases {
			key := phaseKey(phase, round)
			t := run.total(key)
			secs := run.wall[key].Seconds()
			fmt.Fprintf(w, "  %-8s %6d ok in %6.2f s (%6.0f/s)", phase, t.OK, secs, float64(t.OK)/secs)
			if len(t.Failed) > 0 {
				fmt.Fprintf(w, ", FAILED:")
			}
			fmt.Fprintln(w)
			for _, cause := range slices.Sorted(maps.Keys(t.Failed)) {
				fmt.Fprintf(w, "           %6d × %s\n", t.Failed[cause], cause)
			}
		}
		l := r.Left[round]
		fmt.Fprintf(w, "  left after close: %d goroutines, %d open files in the clients, %d in the brokers; Go heap+stacks %+.0f B per connection\n",
			l.Goroutines, l.Files, l.BrokerFiles, l.HeapPerConn)
	}
	fmt.Fprintf(w, "  per connection, all open after the exchange: Go heap+stacks %.0f B (stacks %.0f B), %.2f goroutines, RSS %.0f B\n",
		r.HeapStackPerConn, r.StacksPerConn, r.GoroutinesPerConn, r.RSSPerConn)
	fmt.Fprintf(w, "  per connection, connected only:             Go heap+stacks %.0f B (stacks %.0f B), %.2f goroutines\n",
		r.IdleHeapStackPerConn, r.IdleStacksPerConn, r.IdleGoroutinesPerConn)
	fmt.Fprintf(w, "  all open: client RSS %.1f MiB, broker RSS %.1f MiB, kernel slab %+.1f MiB (both ends of every connection; machine-wide)\n",
		r.ClientRSSMiB, r.BrokerRSSMiB, r.KernelSlabMiB)
	if cfg.procs > 1 {
		for i, rep := range run.reports["exchange"] {
			ready := run.reports["ready"][i]
			fmt.Fprintf(w, "  process %d: %d open, Go heap+stacks %.1f MiB, %d goroutines, RSS %.1f MiB, connect %.2f s\n",
				i, rep.OK, perConn(rep.HeapStack, ready.HeapStack, 1<<20), rep.Goroutines, float64(rep.RSS)/(1<<20), run.reports["connect"][i].Secs)
		}
	}
	b, _ := json.Marshal(r)
	fmt.Fprintf(w, "%s%s\n", resultPrefix, b)
}

// openFiles counts the open files of process pid (0: this process).
func openFiles(pid int) int {
	dir := "/proc/self/fd"
	if pid != 0 {
		dir = fmt.Sprintf("/proc/%d/fd", pid)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	return len(ents)
}

// kernelSlab returns the kernel's slab memory ("Slab" of /proc/meminfo),
// in bytes.
func kernelSlab() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Slab:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
