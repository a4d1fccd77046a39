package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// env is what a workload run gets: the client to drive, the broker's
// address and the run's parameters.
type env struct {
	client    string
	addr      string
	brokerPID int // mosquitto's process id, 0 for the in-process sink
	cfg       runConfig
}

func (e env) opts(id string) dialOpts {
	return dialOpts{id: id, version: e.cfg.version, noAliases: e.cfg.noAliases, topic: e.cfg.topic, payload: e.cfg.payload}
}

func (e env) dial(ctx context.Context, id string) (benchClient, error) {
	return dialClient(ctx, e.client, e.addr, e.opts(id))
}

var errLost = errors.New("messages lost")

// runPub publishes n messages pipelined (window in flight at QoS 1/2).
func runPub(qos byte) func(context.Context, env) (result, error) {
	return func(ctx context.Context, e env) (result, error) {
		c, err := e.dial(ctx, "bench-pub")
		if err != nil {
			return result{}, err
		}
		defer c.close(ctx)
		var am allocMeter
		am.start()
		cpu := startBrokerCPU(e.brokerPID)
		start := time.Now()
		if err := c.pipeline(ctx, e.cfg.n, qos, e.cfg.window); err != nil {
			return result{}, err
		}
		d := time.Since(start)
		return result{Rate: float64(e.cfg.n) / d.Seconds(), Secs: d.Seconds(), Count: e.cfg.n, Allocs: am.perMsg(e.cfg.n), BrokerCPU: cpu.perMsg(e.cfg.n)}, nil
	}
}

const warmup = 200

// runLat publishes n QoS 1 messages one at a time, each waiting for its
// PUBACK, and reports latency percentiles.
func runLat(ctx context.Context, e env) (result, error) {
	c, err := e.dial(ctx, "bench-lat")
	if err != nil {
		return result{}, err
	}
	defer c.close(ctx)
	samples := make([]time.Duration, 0, e.cfg.n)
	start := time.Now()
	for i := 0; i < warmup+e.cfg.n; i++ {
		t0 := time.Now()
		if err := c.publish(ctx, 1); err != nil {
			return result{}, err
		}
		if i >= warmup {
			samples = append(samples, time.Since(t0))
		}
	}
	r := result{Count: e.cfg.n, Secs: time.Since(start).Seconds()}
	percentiles(&r, samples)
	return r, nil
}

// counter counts received messages and closes done at the target count.
type counter struct {
	n      atomic.Int64
	target int64
	done   chan struct{}
	once   sync.Once
}

func newCounter(target int) *counter {
	return &counter{target: int64(target), done: make(chan struct{})}
}

func (c *counter) inc() {
	if c.n.Add(1) == c.target {
		c.once.Do(func() { close(c.done) })
	}
}

// dialRoute connects a subscriber, subscribed to the run's topic at qos
// with onMsg called for each message, and a publisher: the two ends of a
// route through the broker. The caller closes both.
func dialRoute(ctx context.Context, e env, qos byte, onMsg func()) (sub, pub benchClient, err error) {
	sub, err = e.dial(ctx, "bench-sub")
	if err != nil {
		return nil, nil, err
	}
	if err := sub.subscribe(ctx, e.cfg.topic, qos, onMsg); err != nil {
		sub.close(ctx)
		return nil, nil, fmt.Errorf("subscribe: %w", err)
	}
	pub, err = e.dial(ctx, "bench-pub")
	if err != nil {
		sub.close(ctx)
		return nil, nil, err
	}
	return sub, pub, nil
}

// runE2E publishes n messages pipelined through mosquitto to a subscriber
// on a second connection of the same client, at the same QoS, and reports
// the rate at which the subscriber received them.
func runE2E(qos byte) func(context.Context, env) (result, error) {
	return func(ctx context.Context, e env) (result, error) {
		got := newCounter(e.cfg.n)
		sub, pub, err := dialRoute(ctx, e, qos, got.inc)
		if err != nil {
			return result{}, err
		}
		defer sub.close(ctx)
		defer pub.close(ctx)
		var am allocMeter
		am.start()
		cpu := startBrokerCPU(e.brokerPID)
		start := time.Now()
		pubErr := make(chan error, 1)
		go func() { pubErr <- pub.pipeline(ctx, e.cfg.n, qos, e.cfg.window) }()
		var grace <-chan time.Time
		for waiting := true; waiting; {
			select {
			case <-got.done:
				waiting = false
			case err := <-pubErr:
				if err != nil {
					return result{}, err
				}
				grace = time.After(5 * time.Second)
			case <-grace:
				return result{}, fmt.Errorf("%w: received %d of %d", errLost, got.n.Load(), e.cfg.n)
			case <-ctx.Done():
				return result{}, fmt.Errorf("received %d of %d: %w", got.n.Load(), e.cfg.n, ctx.Err())
			}
		}
		d := time.Since(start)
		return result{Rate: float64(e.cfg.n) / d.Seconds(), Secs: d.Seconds(), Count: e.cfg.n, Allocs: am.perMsg(e.cfg.n), BrokerCPU: cpu.perMsg(e.cfg.n)}, nil
	}
}

// runE2ELat sends n QoS 0 messages one at a time through mosquitto to a
// subscriber on a second connection, each after the previous one arrived,
// and reports publish-to-receive latency percentiles.
func runE2ELat(ctx context.Context, e env) (result, error) {
	arrived := make(chan struct{}, 1)
	onMsg := func() {
		select {
		case arrived <- struct{}{}:
		default:
		}
	}
	sub, pub, err := dialRoute(ctx, e, 0, onMsg)
	if err != nil {
		return result{}, err
	}
	defer sub.close(ctx)
	defer pub.close(ctx)
	samples := make([]time.Duration, 0, e.cfg.n)
	lost := time.NewTimer(time.Hour)
	defer lost.Stop()
	start := time.Now()
	for i := 0; i < warmup+e.cfg.n; i++ {
		t0 := time.Now()
		if err := pub.publish(ctx, 0); err != nil {
			return result{}, err
		}
		lost.Reset(2 * time.Second)
		select {
		case <-arrived:
		case <-lost.C:
			return result{}, fmt.Errorf("%w: message %d did not arrive within 2 s", errLost, i)
		case <-ctx.Done():
			return result{}, ctx.Err()
		}
		if i >= warmup {
			samples = append(samples, time.Since(t0))
		}
	}
	r := result{Count: e.cfg.n, Secs: time.Since(start).Seconds()}
	percentiles(&r, samples)
	return r, nil
}

// runRecv subscribes to the sink, which then floods n messages at qos, and
// reports the receive rate.
func runRecv(qos byte) func(context.Context, env) (result, error) {
	return func(ctx context.Context, e env) (result, error) {
		o := e.opts("bench-recv")
		o.receiveMax = e.cfg.window
		c, err := dialClient(ctx, e.client, e.addr, o)
		if err != nil {
			return result{}, err
		}
		defer c.close(ctx)
		got := newCounter(e.cfg.n)
		var am allocMeter
		am.start()
		start := time.Now()
		if err := c.subscribe(ctx, "bench/#", qos, got.inc); err != nil {
			return result{}, fmt.Errorf("subscribe: %w", err)
		}
		select {
		case <-got.done:
		case <-ctx.Done():
			return result{}, fmt.Errorf("received %d of %d: %w", got.n.Load(), e.cfg.n, ctx.Err())
		}
		d := time.Since(start)
		return result{Rate: float64(e.cfg.n) / d.Seconds(), Secs: d.Seconds(), Count: e.cfg.n, Allocs: am.perMsg(e.cfg.n)}, nil
	}
}

// dialMany opens n connections with up to workers dials at once; each
// publishes one QoS 1 message when exchange is set.
func dialMany(ctx context.Context, e env, n, workers int, exchange bool) ([]benchClient, error) {
	conns := make([]benchClient, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				o := e.opts("bench-" + e.client + "-" + strconv.Itoa(i))
				o.small = true
				c, err := dialClient(ctx, e.client, e.addr, o)
				if err == nil && exchange {
					if err = c.publish(ctx, 1); err != nil {
						c.close(ctx)
					}
				}
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					next.Store(int64(n))
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		closeMany(ctx, conns, workers)
		return nil, err
	default:
		return conns, nil
	}
}

// closeMany disconnects every non-nil client, workers at a time.
func closeMany(ctx context.Context, conns []benchClient, workers int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < len(conns); i = int(next.Add(1)) - 1 {
				if conns[i] != nil {
					conns[i].close(ctx)
				}
			}
		}()
	}
	wg.Wait()
}

// runIdle opens n idle connections and reports the Go heap and stack
// growth per connection.
func runIdle(ctx context.Context, e env) (result, error) {
	before, stacksBefore := goMemory()
	gs := runtime.NumGoroutine()
	conns, err := dialMany(ctx, e, e.cfg.n, 8, false)
	if err != nil {
		return result{}, err
	}
	after, stacksAfter := goMemory()
	gs = runtime.NumGoroutine() - gs
	if err := writeHeapProfile(e.cfg.memprofile); err != nil {
		return result{}, err
	}
	closeMany(ctx, conns, 32)
	return result{
		Count:     e.cfg.n,
		ConnBytes: (float64(after) - float64(before)) / float64(e.cfg.n),
		ConnStack: (float64(stacksAfter) - float64(stacksBefore)) / float64(e.cfg.n),
		ConnGs:    float64(gs) / float64(e.cfg.n),
	}, nil
}

// runConns opens n connections to mosquitto (32 dials at a time), has each
// publish one QoS 1 message, measures memory with all of them open, then
// disconnects them all; the time covers all three phases.
func runConns(ctx context.Context, e env) (result, error) {
	before, _ := goMemory()
	start := time.Now()
	conns, err := dialMany(ctx, e, e.cfg.n, 32, true)
	if err != nil {
		return result{}, err
	}
	connected := time.Since(start)
	peak, _ := goMemory()
	broker := processRSS(e.brokerPID)
	if err := writeHeapProfile(e.cfg.memprofile); err != nil {
		return result{}, err
	}
	t1 := time.Now()
	closeMany(ctx, conns, 32)
	d := connected + time.Since(t1)
	return result{
		Count:     e.cfg.n,
		Secs:      d.Seconds(),
		Rate:      float64(e.cfg.n) / d.Seconds(),
		ConnBytes: (float64(peak) - float64(before)) / float64(e.cfg.n),
		PeakMiB:   (float64(peak) - float64(before)) / (1 << 20),
		BrokerMiB: broker,
	}, nil
}

// e2eCPURate is the publish rate of the e2e-cpu workload, well below what
// mosquitto forwards here, so that every client meets the same load.
const e2eCPURate = 20000

// runE2ECPU publishes n QoS 0 messages through mosquitto to a subscriber
// at e2eCPURate (a burst every millisecond) and reports the broker's CPU
// time per message: its cost of what each client sends and subscribes
// with, at a load where the broker never falls behind.
func runE2ECPU(ctx context.Context, e env) (result, error) {
	got := newCounter(e.cfg.n)
	sub, pub, err := dialRoute(ctx, e, 0, got.inc)
	if err != nil {
		return result{}, err
	}
	defer sub.close(ctx)
	defer pub.close(ctx)
	const perTick = e2eCPURate / 1000
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	cpu := startBrokerCPU(e.brokerPID)
	start := time.Now()
	for sent := 0; sent < e.cfg.n; {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return result{}, ctx.Err()
		}
		// Catch up after a late tick, so the rate holds on average.
		due := min(e.cfg.n, int(time.Since(start).Seconds()*e2eCPURate)+perTick)
		for ; sent < due; sent++ {
			if err := pub.publish(ctx, 0); err != nil {
				return result{}, err
			}
		}
	}
	select {
	case <-got.done:
	case <-time.After(5 * time.Second):
		return result{}, fmt.Errorf("%w: received %d of %d", errLost, got.n.Load(), e.cfg.n)
	case <-ctx.Done():
		return result{}, ctx.Err()
	}
	d := time.Since(start)
	return result{Rate: float64(e.cfg.n) / d.Seconds(), Secs: d.Seconds(), Count: e.cfg.n, BrokerCPU: cpu.perMsg(e.cfg.n)}, nil
}
