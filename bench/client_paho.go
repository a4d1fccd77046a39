package main

import (
	"context"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// pahoClient drives paho.mqtt.golang (MQTT 3.1.1) with its Publish tokens.
type pahoClient struct {
	c       paho.Client
	topic   string
	payload []byte
}

func dialPaho(ctx context.Context, addr string, o dialOpts) (benchClient, error) {
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(o.id).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(60 * time.Second).
		SetProtocolVersion(4).
		SetDialer(o.netDialer())
	c := paho.NewClient(opts)
	if err := waitToken(ctx, c.Connect()); err != nil {
		return nil, err
	}
	return &pahoClient{c: c, topic: o.topic, payload: o.payload}, nil
}

func waitToken(ctx context.Context, t paho.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pahoClient) pipeline(ctx context.Context, n int, qos byte, window int) error {
	if qos == 0 {
		for i := 0; i < n; i++ {
			p.c.Publish(p.topic, 0, false, p.payload)
		}
		return waitToken(ctx, p.c.Publish(p.topic, 1, false, p.payload))
	}
	inflight := make(chan paho.Token, window)
	for i := 0; i < n; i++ {
		if len(inflight) == cap(inflight) {
			if err := waitToken(ctx, <-inflight); err != nil {
				return err
			}
		}
		inflight <- p.c.Publish(p.topic, qos, false, p.payload)
	}
	for len(inflight) > 0 {
		if err := waitToken(ctx, <-inflight); err != nil {
			return err
		}
	}
	return nil
}

func (p *pahoClient) publish(ctx context.Context, qos byte) error {
	return waitToken(ctx, p.c.Publish(p.topic, qos, false, p.payload))
}

func (p *pahoClient) subscribe(ctx context.Context, filter string, qos byte, onMsg func()) error {
	t := p.c.Subscribe(filter, qos, func(paho.Client, paho.Message) { onMsg() })
	if err := waitToken(ctx, t); err != nil {
		return fmt.Errorf("paho subscribe: %w", err)
	}
	return nil
}

func (p *pahoClient) close(context.Context) error {
	p.c.Disconnect(100)
	return nil
}
