package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/b4e21b16/mqtt"
)

// benchRun is one run of mqtt bench. The counters are updated by the
// publisher and subscriber goroutines and read by the progress display.
type benchRun struct {
	cfg                     mqtt.Config
	qos                     mqtt.QoS
	topic                   string
	size, count, inflight   int
	publishers, subscribers int
	drain                   time.Duration

	base     time.Time // payloads carry the time since base
	sent     atomic.Int64
	received atomic.Int64
}

// subResult is what one subscriber measured.
type subResult struct {
	latencies []time.Duration
	last      time.Duration // receive time of the last message, since base
	err       error
}

// counts returns the messages sent and received so far, and those expected.
func (b *benchRun) counts() (sent, received, wantSent, wantReceived int64) {
	wantSent = int64(b.publishers) * int64(b.count)
	return b.sent.Load(), b.received.Load(), wantSent, wantSent * int64(b.subscribers)
}

// run connects the clients, publishes, collects and returns the result. On
// an error after publishing started, the result so far comes with it.
func (b *benchRun) run(ctx context.Context) (*benchResult, error) {
	b.base = time.Now()
	var clients []*mqtt.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	connect := func(role string, i int, cfg mqtt.Config) (*mqtt.Client, error) {
		cfg.ClientID = fmt.Sprintf("%s%s-%d", cfg.ClientID, role, i)
		c, err := mqtt.Connect(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("%s %d: %w", role, i+1, connectFailure(cfg.Servers[0], err))
		}
		clients = append(clients, c)
		return c, nil
	}

	subCfg := b.cfg
	subCfg.QoS0Overflow = mqtt.Block
	subCfg.MessageBuffer = 4096
	subs := make([]*mqtt.Subscription, b.subscribers)
	subClients := make([]*mqtt.Client, b.subscribers)
	for i := range subs {
		c, err := connect("sub", i, subCfg)
		if err != nil {
			return nil, err
		}
		s, err := c.Subscribe(ctx, b.topic, b.qos)
		if err != nil {
			return nil, fmt.Errorf("subscriber %d: %w", i+1, runFailure(err))
		}
		subs[i], subClients[i] = s, c
	}
	pubs := make([]*mqtt.Client, b.publishers)
	for i := range pubs {
		c, err := connect("pub", i, b.cfg)
		if err != nil {
			return nil, err
		}
		pubs[i] = c
	}

	published := make(chan struct{})
	results := make([]subResult, b.subscribers)
	var subWG sync.WaitGroup
	for i := range subs {
		subWG.Go(func() { results[i] = b.receive(ctx, subClients[i], subs[i], published) })
	}

	start := time.Since(b.base)
	pubErrs := make([]error, b.publishers)
	var pubWG sync.WaitGroup
	for i, c := range pubs {
		pubWG.Go(func() { pubErrs[i] = b.publish(ctx, c) })
	}
	pubWG.Wait()
	pubEnd := time.Since(b.base)
	close(published)
	subWG.Wait()

	sent, received, wantSent, wantReceived := b.counts()
	res := &benchResult{
		publishers: b.publishers, subscribers: b.subscribers,
		sent: sent, wantSent: wantSent, received: received, expected: wantReceived,
		pubDuration: pubEnd - start, duration: pubEnd - start,
	}
	var errs []error
	for _, r := range results {
		res.latencies = append(res.latencies, r.latencies...)
		if d := r.last - start; d > res.duration {
			res.duration = d
		}
		errs = append(errs, r.err)
	}
	errs = append(errs, pubErrs...)
	for _, c := range pubs {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := c.Disconnect(dctx); err != nil && !errors.Is(err, mqtt.ErrClosed) {
			errs = append(errs, fmt.Errorf("publisher disconnect: %w", err))
		}
		cancel()
	}
	return res, errors.Join(errs...)
}

// publish sends b.count messages from c, keeping up to b.inflight in
// flight. Each message's payload starts with its publish time since b.base.
func (b *benchRun) publish(ctx context.Context, c *mqtt.Client) error {
	type slot struct {
		payload []byte
		pending *mqtt.Pending
	}
	window := make([]slot, min(b.inflight, b.count))
	for i := range window {
		window[i].payload = make([]byte, b.size)
		for j := 8; j < b.size; j++ {
			window[i].payload[j] = 'x'
		}
	}
	wait := func(p *mqtt.Pending) error {
		if err := p.Wait(ctx); err != nil {
			return fmt.Errorf("publish: %w", runFailure(err))
		}
		b.sent.Add(1)
		return nil
	}
	for n := range b.count {
		s := &window[n%len(window)]
		if s.pending != nil {
			if err := wait(s.pending); err != nil {
				return err
			}
		}
		binary.BigEndian.PutUint64(s.payload, uint64(time.Since(b.base)))
		s.pending = c.PublishAsync(mqtt.Message{Topic: b.topic, Payload: s.payload, QoS: b.qos})
	}
	for n := b.count; n < b.count+len(window); n++ {
		if err := wait(window[n%len(window)].pending); err != nil {
			return err
		}
	}
	return nil
}

// receive takes messages from s until the expected number arrived, or,
// once published is closed, none arrived for b.drain, or ctx ended.
func (b *benchRun) receive(ctx context.Context, c *mqtt.Client, s *mqtt.Subscription, published <-chan struct{}) subResult {
	want := b.publishers * b.count
	r := subResult{latencies: make([]time.Duration, 0, min(want, 1<<20))}
	idle := time.NewTimer(b.drain)
	idle.Stop()
	defer idle.Stop()
	done := published
	for len(r.latencies) < want {
		select {
		case m, ok := <-s.Messages():
			if !ok {
				r.err = fmt.Errorf("subscription ended: %w", c.Err())
				return r
			}
			now := time.Since(b.base)
			if len(m.Payload) < 8 {
				continue // not from this bench
			}
			r.latencies = append(r.latencies, now-time.Duration(binary.BigEndian.Uint64(m.Payload)))
			r.last = now
			b.received.Add(1)
			if done == nil {
				idle.Reset(b.drain)
			}
		case <-done:
			done = nil
			idle.Reset(b.drain)
		case <-idle.C:
			return r
		case <-c.Done():
			r.err = fmt.Errorf("subscriber: %w", runFailure(c.Err()))
			return r
		case <-ctx.Done():
			r.err = context.Cause(ctx)
			return r
		}
	}
	return r
}
