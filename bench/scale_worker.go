package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// scaleWorkerProc is one client process of the scale command: it holds
// connections first … first+count-1 of the run.
type scaleWorkerProc struct {
	client    string
	first     int
	count     int
	brokers   []string
	dials     int
	perSource int
	version   byte
	id        int
	profile   string
	profiled  bool

	conns []benchClient // nil where the connection failed or was closed
	base  phaseReport   // the "ready" report
}

func scaleWorkerMain(args []string) int {
	fs := flag.NewFlagSet(scaleWorkerCmd, flag.ContinueOnError)
	var p scaleWorkerProc
	fs.StringVar(&p.client, "client", "ours", "client")
	fs.IntVar(&p.first, "first", 0, "index of the first connection")
	fs.IntVar(&p.count, "count", 0, "connections")
	brokers := fs.String("brokers", "", "broker addresses, comma-separated")
	fs.IntVar(&p.dials, "dials", 256, "operations at once")
	fs.IntVar(&p.perSource, "per-source", 2000, "connections per source address")
	version := fs.Int("mqttv", 5, "MQTT version")
	fs.IntVar(&p.id, "id", 0, "process number")
	fs.StringVar(&p.profile, "profile", "", "profile directory")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	p.brokers = strings.Split(*brokers, ",")
	p.version = byte(*version)
	if err := p.run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench scale: client process %d: %v\n", p.id, err)
		return 1
	}
	return 0
}

// run reports "ready", then runs each phase the coordinator names on
// stdin. When stdin ends early, the connections still open are closed.
func (p *scaleWorkerProc) run() error {
	p.conns = make([]benchClient, p.count)
	defer p.closeAll()
	p.base = measure("ready")
	if err := report(p.base); err != nil {
		return err
	}
	in := bufio.NewScanner(os.Stdin)
	for round := 0; ; round++ {
		for i, phase := range phases {
			if !in.Scan() {
				if i == 0 && in.Err() == nil {
					return nil // the coordinator is done
				}
				return fmt.Errorf("stdin ended before %s: %v", phase, in.Err())
			}
			if got := in.Text(); got != phase {
				return fmt.Errorf("told to %q, want %q", got, phase)
			}
			r, err := p.runPhase(phase)
			if err != nil {
				return err
			}
			if err := report(r); err != nil {
				return err
			}
		}
	}
}

func (p *scaleWorkerProc) runPhase(phase string) (phaseReport, error) {
	switch phase {
	case "connect":
		return p.connectPhase()
	case "exchange":
		return p.forEach("exchange", p.exchange), nil
	case "close":
		r := p.forEach("close", p.close)
		p.settle()
		m := measure("close")
		m.OK, m.Failed, m.Secs = r.OK, r.Failed, r.Secs
		return m, nil
	}
	return phaseReport{}, fmt.Errorf("unknown phase %q", phase)
}

func report(r phaseReport) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Printf("%s%s\n", reportPrefix, b)
	return err
}

// measure takes the process's memory, goroutine and file counts.
func measure(phase string) phaseReport {
	total, stacks := goMemory()
	return phaseReport{
		Phase: phase, HeapStack: total, Stacks: stacks,
		Goroutines: runtime.NumGoroutine(),
		RSS:        uint64(processRSS(os.Getpid()) * (1 << 20)),
		FDs:        openFiles(0),
	}
}

// connectPhase connects every connection, with the connect phase profiled
// when a profile directory is set.
func (p *scaleWorkerProc) connectPhase() (phaseReport, error) {
	if p.profile == "" || p.profiled {
		return p.forEach("connect", p.connect), nil
	}
	p.profiled = true // the first round only
	name := func(kind string) string {
		return filepath.Join(p.profile, fmt.Sprintf("%s-%s-%d.out", p.client, kind, p.id))
	}
	cpu, err := os.Create(name("cpu"))
	if err != nil {
		return phaseReport{}, err
	}
	defer cpu.Close()
	tr, err := os.Create(name("trace"))
	if err != nil {
		return phaseReport{}, err
	}
	defer tr.Close()
	runtime.SetMutexProfileFraction(1)
	runtime.SetBlockProfileRate(int(time.Microsecond))
	if err := pprof.StartCPUProfile(cpu); err != nil {
		return phaseReport{}, err
	}
	if err := trace.Start(tr); err != nil {
		pprof.StopCPUProfile()
		return phaseReport{}, err
	}
	r := p.forEach("connect", p.connect)
	trace.Stop()
	pprof.StopCPUProfile()
	runtime.SetMutexProfileFraction(0)
	runtime.SetBlockProfileRate(0)
	for _, kind := range []string{"mutex", "block", "goroutine"} {
		f, err := os.Create(name(kind))
		if err != nil {
			return phaseReport{}, err
		}
		err = pprof.Lookup(kind).WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return phaseReport{}, err
		}
	}
	// The measurement of the phase is taken again without the profilers.
	m := measure("connect")
	r.HeapStack, r.Stacks, r.Goroutines, r.RSS, r.FDs = m.HeapStack, m.Stacks, m.Goroutines, m.RSS, m.FDs
	return r, nil
}

// forEach runs op on every connection index, p.dials at a time, and
// reports how many succeeded, the grouped causes of those that failed, the
// time taken and the process's state afterwards.
func (p *scaleWorkerProc) forEach(phase string, op func(ctx context.Context, i int) (bool, error)) phaseReport {
	var (
		next   atomic.Int64
		ok     atomic.Int64
		mu     sync.Mutex
		failed = make(map[string]int)
		wg     sync.WaitGroup
	)
	start := time.Now()
	for range p.dials {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < p.count; i = int(next.Add(1)) - 1 {
				ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				did, err := op(ctx, i)
				cancel()
				switch {
				case err != nil:
					cause := maskError(err)
					mu.Lock()
					failed[cause]++
					mu.Unlock()
				case did:
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	r := measure(phase)
	r.OK, r.Secs = int(ok.Load()), secs
	if len(failed) > 0 {
		r.Failed = failed
	}
	return r
}

// sourceIP returns the source address of connection g (a run-wide index):
// 127.1.x.y, perSource connections each.
func sourceIP(g, perSource int) net.IP {
	s := g / perSource
	return net.IPv4(127, 1, byte(s/250), byte(s%250+1))
}

func (p *scaleWorkerProc) opts(g int) dialOpts {
	return dialOpts{
		id:          "scale-" + p.client + "-" + strconv.Itoa(g),
		version:     p.version,
		topic:       "scale/" + strconv.Itoa(g),
		payload:     []byte("scale"),
		small:       true,
		localIP:     sourceIP(g, p.perSource),
		noReconnect: true,
	}
}

func (p *scaleWorkerProc) connect(ctx context.Context, i int) (bool, error) {
	g := p.first + i
	c, err := dialClient(ctx, p.client, p.brokers[g%len(p.brokers)], p.opts(g))
	if err != nil {
		return false, err
	}
	p.conns[i] = c
	return true, nil
}

// exchange has connection i subscribe to its own topic, publish one QoS 1
// message to it and receive it back. A connection that fails is closed.
func (p *scaleWorkerProc) exchange(ctx context.Context, i int) (bool, error) {
	c := p.conns[i]
	if c == nil {
		return false, nil
	}
	err := exchange(ctx, c, p.opts(p.first+i).topic)
	if err != nil {
		c.close(ctx)
		p.conns[i] = nil
		return false, err
	}
	return true, nil
}

// exchange is the exchange of one connection: ours on the calling
// goroutine, the peers through their callbacks.
func exchange(ctx context.Context, c benchClient, topic string) error {
	if o, ok := c.(*oursClient); ok {
		return o.exchange(ctx)
	}
	got := make(chan struct{}, 1)
	onMsg := func() {
		select {
		case got <- struct{}{}:
		default:
		}
	}
	if err := c.subscribe(ctx, topic, 1, onMsg); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if err := c.publish(ctx, 1); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	select {
	case <-got:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("receive: %w", ctx.Err())
	}
}

func (p *scaleWorkerProc) close(ctx context.Context, i int) (bool, error) {
	c := p.conns[i]
	if c == nil {
		return false, nil
	}
	p.conns[i] = nil
	if err := c.close(ctx); err != nil {
		return false, fmt.Errorf("disconnect: %w", err)
	}
	return true, nil
}

// closeAll closes what is still open, after an early end.
func (p *scaleWorkerProc) closeAll() {
	p.forEach("abort", p.close)
}

// settle waits until the process has no more goroutines and open files
// than before connecting, or settleTimeout passes.
func (p *scaleWorkerProc) settle() {
	deadline := time.Now().Add(settleTimeout)
	for time.Now().Before(deadline) {
		if runtime.NumGoroutine() <= p.base.Goroutines && openFiles(0) <= p.base.FDs {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var (
	addrPattern = regexp.MustCompile(`\d{1,3}(\.\d{1,3}){3}(:\d+)?`)
	idPattern   = regexp.MustCompile(`scale[-/][a-z0-9-]*\d+`)
)

// maskError returns err's text with addresses and client ids replaced, so
// that connections failing for the same reason are counted together.
func maskError(err error) string {
	if err == nil {
		return ""
	}
	s := addrPattern.ReplaceAllString(err.Error(), "ADDR")
	s = idPattern.ReplaceAllString(s, "ID")
	if errors.Is(err, context.DeadlineExceeded) && !strings.Contains(s, "deadline") {
		s += " (deadline exceeded)"
	}
	return s
}
