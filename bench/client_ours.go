package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	mqtt "github.com/b4e21b16/mqtt"
)

// oursClient drives this module's client.
type oursClient struct {
	c    *mqtt.Client
	msg  mqtt.Message
	stop chan struct{}
	done chan struct{}
}

func dialOurs(ctx context.Context, addr string, o dialOpts) (benchClient, error) {
	cfg := mqtt.Config{
		Servers:             []string{"mqtt://" + addr},
		ClientID:            o.id,
		CleanStart:          true,
		Version:             mqtt.ProtocolVersion(o.version),
		QoS0Overflow:        mqtt.Block,
		KeepAlive:           60 * time.Second,
		DisableTopicAliases: o.noAliases,
		Dialer:              o.netDialer().DialContext,
	}
	cfg.Reconnect.Disable = o.noReconnect
	if o.receiveMax > 0 {
		cfg.ReceiveMaximum = uint16(min(o.receiveMax, 65535))
	}
	c, err := mqtt.Connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &oursClient{c: c, msg: mqtt.Message{Topic: o.topic, Payload: o.payload}}, nil
}

func (o *oursClient) pipeline(ctx context.Context, n int, qos byte, window int) error {
	m := o.msg
	m.QoS = mqtt.QoS(qos)
	if qos == 0 {
		for i := 0; i < n; i++ {
			if err := o.c.Publish(ctx, m); err != nil {
				return err
			}
		}
		m.QoS = 1
		return o.c.Publish(ctx, m)
	}
	inflight := make(chan *mqtt.Pending, window)
	for i := 0; i < n; i++ {
		if len(inflight) == cap(inflight) {
			if err := (<-inflight).Wait(ctx); err != nil {
				return err
			}
		}
		inflight <- o.c.PublishAsync(m)
	}
	for len(inflight) > 0 {
		if err := (<-inflight).Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (o *oursClient) publish(ctx context.Context, qos byte) error {
	m := o.msg
	m.QoS = mqtt.QoS(qos)
	return o.c.Publish(ctx, m)
}

func (o *oursClient) subscribe(ctx context.Context, filter string, qos byte, onMsg func()) error {
	sub, err := o.c.Subscribe(ctx, filter, mqtt.QoS(qos))
	if err != nil {
		return err
	}
	o.stop, o.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(o.done)
		msgs := sub.Messages()
		for {
			select {
			case _, ok := <-msgs:
				if !ok {
					return
				}
				onMsg()
			case <-o.stop:
				return
			}
		}
	}()
	return nil
}

func (o *oursClient) close(ctx context.Context) error {
	if o.stop != nil {
		close(o.stop)
		<-o.done
	}
	err := o.c.Disconnect(ctx)
	o.c.Close()
	return err
}

// exchange subscribes to the client's topic, publishes one QoS 1 message
// to it and waits until the broker delivers it back, all on the calling
// goroutine (subscribe would start one more per client).
func (o *oursClient) exchange(ctx context.Context) error {
	sub, err := o.c.Subscribe(ctx, o.msg.Topic, mqtt.AtLeastOnce)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	m := o.msg
	m.QoS = mqtt.AtLeastOnce
	if err := o.c.Publish(ctx, m); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	select {
	case _, ok := <-sub.Messages():
		if !ok {
			return errors.New("receive: the subscription ended")
		}
		return nil
	case <-o.c.Done():
		return fmt.Errorf("receive: %w", o.c.Err())
	case <-ctx.Done():
		return fmt.Errorf("receive: %w", ctx.Err())
	}
}
