package failover

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/b4e21b16/mqtt"
)

// debugLog, when set, receives the clients' logs.
var debugLog *slog.Logger

// pair is a publisher and a subscriber of one client library on their own
// topic, each with a persistent session.
type pair interface {
	record() *record
	// stopPublishing stops making new publishes and waits until those made
	// have completed or ctx ends.
	stopPublishing(ctx context.Context) error
	// close disconnects both clients.
	close()
}

// pairConfig says where a pair's clients connect and what they exchange.
type pairConfig struct {
	name       string
	topic      string
	qos        byte
	pubServers []string // in the order the publisher tries them
	subServers []string
	interval   time.Duration // between publishes
	window     int           // publishes in flight at most
}

// rotate returns urls starting at index i.
func rotate(urls []string, i int) []string {
	i %= len(urls)
	return append(append([]string(nil), urls[i:]...), urls[:i]...)
}

// oursPair runs this module's client.
type oursPair struct {
	rec      *record
	pub, sub *mqtt.Client
	stop     chan struct{}
	pubDone  chan error
	wg       sync.WaitGroup
}

func startOurs(ctx context.Context, pc pairConfig) (*oursPair, error) {
	p := &oursPair{rec: newRecord(pc.name, pc.qos), stop: make(chan struct{}), pubDone: make(chan error, 1)}
	cfg := func(id string, servers []string) mqtt.Config {
		cfg := mqtt.Config{Servers: servers, ClientID: id, Version: mqtt.Version311}
		if debugLog != nil {
			cfg.Logger = debugLog.With("client", id)
		}
		return cfg
	}
	var err error
	if p.sub, err = mqtt.Connect(ctx, cfg(pc.name+"-sub", pc.subServers)); err != nil {
		return nil, err
	}
	p.follow(p.sub, p.rec.subConnected, false)
	sub, err := p.sub.Subscribe(ctx, pc.topic, mqtt.QoS(pc.qos))
	if err != nil {
		p.sub.Close()
		p.wg.Wait()
		return nil, err
	}
	p.wg.Go(func() {
		for m := range sub.Messages() {
			seq, err := seqOf(m.Payload)
			if err != nil {
				panic(err)
			}
			p.rec.got(seq, m.Duplicate)
		}
	})
	if p.pub, err = mqtt.Connect(ctx, cfg(pc.name+"-pub", pc.pubServers)); err != nil {
		p.sub.Close()
		p.wg.Wait()
		return nil, err
	}
	p.follow(p.pub, p.rec.pubConnected, true)
	go func() { p.pubDone <- p.publish(pc) }()
	return p, nil
}

// follow records c's connections and reconnection waits from its events;
// pub says whether c is the publisher.
func (p *oursPair) follow(c *mqtt.Client, connected func(string), pub bool) {
	connected(c.Connection().Server)
	p.wg.Go(func() {
		first := true
		for e := range c.Events() {
			switch e.Kind {
			case mqtt.EventConnected:
				if first { // the connection Connect made
					first = false
					continue
				}
				connected(e.Server)
				p.rec.session(e.SessionPresent)
			case mqtt.EventConnectionLost:
				connected("")
			case mqtt.EventReconnecting:
				p.rec.waited(pub, e.Time, e.Delay)
			case mqtt.EventResubscribed:
				p.rec.resubscribed(e.Err)
			}
		}
	})
}

// publish publishes consecutive seqs every interval, with at most window
// in flight, until stop is closed, then waits for those in flight.
func (p *oursPair) publish(pc pairConfig) error {
	inflight := make(chan *mqtt.Pending, pc.window)
	seqs := make(chan int, pc.window)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for pd := range inflight {
			seq := <-seqs
			<-pd.Done()
			p.rec.completed(seq, pd.Err())
		}
	}()
	tick := time.NewTicker(pc.interval)
	defer tick.Stop()
	for seq := 1; ; seq++ {
		select {
		case <-p.stop:
			close(inflight)
			<-done
			return nil
		case <-tick.C:
		}
		p.rec.published(seq)
		pd := p.pub.PublishAsync(mqtt.Message{Topic: pc.topic, Payload: payload(seq), QoS: mqtt.QoS(pc.qos)})
		seqs <- seq
		select {
		case inflight <- pd:
		case <-p.stop:
			inflight <- pd // the completer makes room
			close(inflight)
			<-done
			return nil
		}
	}
}

func (p *oursPair) record() *record { return p.rec }

func (p *oursPair) stopPublishing(ctx context.Context) error {
	close(p.stop)
	select {
	case err := <-p.pubDone:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%s: publishes still in flight: %w", p.rec.name, ctx.Err())
	}
}

func (p *oursPair) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.pub.Disconnect(ctx)
	_ = p.sub.Disconnect(ctx)
	p.wg.Wait()
}

// pahoPair runs github.com/eclipse/paho.mqtt.golang with its defaults
// (automatic reconnection, servers tried in the configured order, 30 s
// keepalive and connect timeout) and a persistent session.
type pahoPair struct {
	rec      *record
	pub, sub paho.Client
	stop     chan struct{}
	pubDone  chan error
}

// pahoURL turns mqtt://host:port into paho's tcp://host:port.
func pahoURL(u string) string { return "tcp://" + strings.TrimPrefix(u, "mqtt://") }

// oursURL turns paho's broker URL back into the cluster's form.
func oursURL(u *url.URL) string { return "mqtt://" + u.Host }

func startPaho(ctx context.Context, pc pairConfig) (*pahoPair, error) {
	p := &pahoPair{rec: newRecord(pc.name, pc.qos), stop: make(chan struct{}), pubDone: make(chan error, 1)}
	opts := func(id string, servers []string, connected func(string)) *paho.ClientOptions {
		o := paho.NewClientOptions().SetClientID(id).SetCleanSession(false).SetAutoReconnect(true).SetOrderMatters(true)
		for _, s := range servers {
			o.AddBroker(pahoURL(s))
		}
		var mu sync.Mutex
		var attempt string
		log := slog.New(slog.DiscardHandler)
		if debugLog != nil {
			log = debugLog.With("client", id)
		}
		o.SetConnectionAttemptHandler(func(broker *url.URL, cfg *tls.Config) *tls.Config {
			mu.Lock()
			attempt = oursURL(broker)
			mu.Unlock()
			log.Info("paho: connecting", "server", oursURL(broker))
			return cfg
		})
		o.SetOnConnectHandler(func(paho.Client) {
			mu.Lock()
			a := attempt
			mu.Unlock()
			log.Info("paho: connected", "server", a)
			connected(a)
		})
		o.SetConnectionLostHandler(func(_ paho.Client, err error) {
			log.Info("paho: connection lost", "err", err)
			connected("")
		})
		return o
	}
	handler := func(_ paho.Client, m paho.Message) {
		seq, err := seqOf(m.Payload())
		if err != nil {
			panic(err)
		}
		p.rec.got(seq, m.Duplicate())
	}
	// The subscriber subscribes on every connection, as paho's users do:
	// paho does not subscribe again by itself when the broker lost the
	// session.
	so := opts(pc.name+"-sub", pc.subServers, p.rec.subConnected)
	onConnect := so.OnConnect
	so.SetOnConnectHandler(func(c paho.Client) {
		onConnect(c)
		go c.Subscribe(pc.topic, pc.qos, handler)
	})
	p.sub = paho.NewClient(so)
	if err := waitToken(ctx, p.sub.Connect()); err != nil {
		return nil, fmt.Errorf("paho subscriber: %w", err)
	}
	if err := waitToken(ctx, p.sub.Subscribe(pc.topic, pc.qos, handler)); err != nil {
		p.sub.Disconnect(0)
		return nil, fmt.Errorf("paho subscribe: %w", err)
	}
	p.pub = paho.NewClient(opts(pc.name+"-pub", pc.pubServers, p.rec.pubConnected))
	if err := waitToken(ctx, p.pub.Connect()); err != nil {
		p.sub.Disconnect(0)
		return nil, fmt.Errorf("paho publisher: %w", err)
	}
	go func() { p.pubDone <- p.publish(pc) }()
	return p, nil
}

func waitToken(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pahoPair) publish(pc pairConfig) error {
	type flight struct {
		seq int
		tok paho.Token
	}
	inflight := make(chan flight, pc.window)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for f := range inflight {
			<-f.tok.Done()
			p.rec.completed(f.seq, f.tok.Error())
		}
	}()
	tick := time.NewTicker(pc.interval)
	defer tick.Stop()
	for seq := 1; ; seq++ {
		select {
		case <-p.stop:
			close(inflight)
			<-done
			return nil
		case <-tick.C:
		}
		p.rec.published(seq)
		tok := p.pub.Publish(pc.topic, pc.qos, false, payload(seq))
		select {
		case inflight <- flight{seq, tok}:
		case <-p.stop:
			inflight <- flight{seq, tok}
			close(inflight)
			<-done
			return nil
		}
	}
}

func (p *pahoPair) record() *record { return p.rec }

func (p *pahoPair) stopPublishing(ctx context.Context) error {
	close(p.stop)
	select {
	case err := <-p.pubDone:
		return err
	case <-ctx.Done():
		return errors.New(p.rec.name + ": publishes still in flight")
	}
}

func (p *pahoPair) close() {
	p.pub.Disconnect(250)
	p.sub.Disconnect(250)
}
