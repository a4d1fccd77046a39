package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/b4e21b16/mqtt"
	pahov5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
)

// runOurs publishes with PublishAsync, keeping at most cfg.window QoS 1
// messages in flight; a QoS 0 run ends with a QoS 1 fence.
func runOurs(ctx context.Context, addr string, cfg runConfig) (time.Duration, error) {
	c, err := mqtt.Connect(ctx, mqtt.Config{
		Servers:      []string{"mqtt://" + addr},
		ClientID:     "bench-ours",
		CleanStart:   true,
		Version:      mqtt.ProtocolVersion(cfg.version),
		QoS0Overflow: mqtt.Block,
		MaxInflight:  cfg.window,
	})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	m := mqtt.Message{Topic: cfg.topic, Payload: cfg.payload, QoS: mqtt.QoS(cfg.qos)}
	start := time.Now()
	if cfg.qos == 0 {
		for i := 0; i < cfg.n; i++ {
			if err := c.PublishAsync(m).Err(); err != nil {
				return 0, err
			}
		}
		if err := c.Publish(ctx, mqtt.Message{Topic: cfg.topic, Payload: cfg.payload, QoS: 1}); err != nil {
			return 0, err
		}
		d := time.Since(start)
		c.Disconnect(ctx)
		return d, nil
	}
	window := make(chan *mqtt.Pending, cfg.window)
	for i := 0; i < cfg.n; i++ {
		if len(window) == cap(window) {
			if err := (<-window).Wait(ctx); err != nil {
				return 0, err
			}
		}
		window <- c.PublishAsync(m)
	}
	for len(window) > 0 {
		if err := (<-window).Wait(ctx); err != nil {
			return 0, err
		}
	}
	d := time.Since(start)
	c.Disconnect(ctx)
	return d, nil
}

func waitToken(ctx context.Context, t paho.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runPaho uses paho.mqtt.golang (MQTT 3.1.1) and its Publish tokens.
func runPaho(ctx context.Context, addr string, cfg runConfig) (time.Duration, error) {
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID("bench-paho").
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(60 * time.Second).
		SetProtocolVersion(4)
	c := paho.NewClient(opts)
	if err := waitToken(ctx, c.Connect()); err != nil {
		return 0, fmt.Errorf("paho connect: %w", err)
	}
	defer c.Disconnect(100)
	start := time.Now()
	if cfg.qos == 0 {
		var last paho.Token
		for i := 0; i < cfg.n; i++ {
			last = c.Publish(cfg.topic, 0, false, cfg.payload)
		}
		if last != nil {
			if err := waitToken(ctx, last); err != nil {
				return 0, err
			}
		}
		if err := waitToken(ctx, c.Publish(cfg.topic, 1, false, cfg.payload)); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	window := make(chan paho.Token, cfg.window)
	for i := 0; i < cfg.n; i++ {
		if len(window) == cap(window) {
			if err := waitToken(ctx, <-window); err != nil {
				return 0, err
			}
		}
		window <- c.Publish(cfg.topic, byte(cfg.qos), false, cfg.payload)
	}
	for len(window) > 0 {
		if err := waitToken(ctx, <-window); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// runPahoV5 uses paho.golang (MQTT 5.0). Its only asynchronous publish
// reports no completion, so QoS 1 uses cfg.window goroutines each doing a
// blocking Publish.
func runPahoV5(ctx context.Context, addr string, cfg runConfig) (time.Duration, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	c := pahov5.NewClient(pahov5.ClientConfig{ClientID: "bench-pahov5", Conn: nc})
	ca, err := c.Connect(ctx, &pahov5.Connect{ClientID: "bench-pahov5", CleanStart: true, KeepAlive: 60})
	if err != nil {
		nc.Close()
		return 0, fmt.Errorf("pahov5 connect: %w", err)
	}
	if ca.ReasonCode != 0 {
		nc.Close()
		return 0, fmt.Errorf("pahov5 connack reason %d", ca.ReasonCode)
	}
	defer func() {
		c.Disconnect(&pahov5.Disconnect{ReasonCode: 0})
		nc.Close()
	}()
	start := time.Now()
	if cfg.qos == 0 {
		p := &pahov5.Publish{Topic: cfg.topic, QoS: 0, Payload: cfg.payload}
		for i := 0; i < cfg.n; i++ {
			if _, err := c.Publish(ctx, p); err != nil {
				return 0, err
			}
		}
		if _, err := c.Publish(ctx, &pahov5.Publish{Topic: cfg.topic, QoS: 1, Payload: cfg.payload}); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	for w := 0; w < cfg.window; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(cfg.n) {
				_, err := c.Publish(ctx, &pahov5.Publish{Topic: cfg.topic, QoS: byte(cfg.qos), Payload: cfg.payload})
				if err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
					next.Store(int64(cfg.n))
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return time.Since(start), nil
}

var errUnknownClient = errors.New("unknown client")
