package main

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	pahov5 "github.com/eclipse/paho.golang/paho"
)

// v5Publisher is the publish call shared by paho.golang's Client and
// autopaho's ConnectionManager.
type v5Publisher interface {
	Publish(ctx context.Context, p *pahov5.Publish) (*pahov5.PublishResponse, error)
	Subscribe(ctx context.Context, s *pahov5.Subscribe) (*pahov5.Suback, error)
}

// pahoV5Client drives paho.golang (MQTT 5.0), directly or through autopaho.
// paho.golang's only asynchronous publish reports no completion, so a
// pipelined QoS 1/2 run uses window goroutines each doing a blocking
// Publish.
type pahoV5Client struct {
	pub     v5Publisher
	topic   string
	payload []byte
	onMsg   atomic.Pointer[func()]
	closeFn func(ctx context.Context) error
}

func (p *pahoV5Client) received(pahov5.PublishReceived) (bool, error) {
	if f := p.onMsg.Load(); f != nil {
		(*f)()
	}
	return true, nil
}

func connectProps(o dialOpts) *pahov5.ConnectProperties {
	if o.receiveMax <= 0 {
		return nil
	}
	rm := uint16(min(o.receiveMax, 65535))
	return &pahov5.ConnectProperties{ReceiveMaximum: &rm}
}

func dialPahoV5(ctx context.Context, addr string, o dialOpts) (benchClient, error) {
	nc, err := o.netDialer().DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &pahoV5Client{topic: o.topic, payload: o.payload}
	c := pahov5.NewClient(pahov5.ClientConfig{
		ClientID:          o.id,
		Conn:              nc,
		OnPublishReceived: []func(pahov5.PublishReceived) (bool, error){p.received},
	})
	ca, err := c.Connect(ctx, &pahov5.Connect{ClientID: o.id, CleanStart: true, KeepAlive: 60, Properties: connectProps(o)})
	if err != nil {
		nc.Close()
		return nil, err
	}
	if ca.ReasonCode != 0 {
		nc.Close()
		return nil, fmt.Errorf("connack reason %d", ca.ReasonCode)
	}
	p.pub = c
	p.closeFn = func(context.Context) error {
		err := c.Disconnect(&pahov5.Disconnect{ReasonCode: 0})
		nc.Close()
		return err
	}
	return p, nil
}

func dialAutopaho(ctx context.Context, addr string, o dialOpts) (benchClient, error) {
	u, err := url.Parse("mqtt://" + addr)
	if err != nil {
		return nil, err
	}
	p := &pahoV5Client{topic: o.topic, payload: o.payload}
	failed := make(chan error, 1)
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     60,
		CleanStartOnInitialConnection: true,
		ConnectTimeout:                10 * time.Second,
		ReconnectBackoff:              autopaho.NewConstantBackoff(time.Second),
		OnConnectError: func(err error) {
			select {
			case failed <- err:
			default:
			}
		},
		ConnectPacketBuilder: func(c *pahov5.Connect, _ *url.URL) (*pahov5.Connect, error) {
			c.Properties = connectProps(o)
			return c, nil
		},
		ClientConfig: pahov5.ClientConfig{
			ClientID:          o.id,
			OnPublishReceived: []func(pahov5.PublishReceived) (bool, error){p.received},
		},
	}
	cm, err := autopaho.NewConnection(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	up := make(chan error, 1)
	go func() { up <- cm.AwaitConnection(ctx) }()
	select {
	case err = <-up:
	case err = <-failed:
	}
	if err != nil {
		dctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		cm.Disconnect(dctx)
		return nil, err
	}
	p.pub = cm
	p.closeFn = func(ctx context.Context) error {
		err := cm.Disconnect(ctx)
		<-cm.Done()
		return err
	}
	return p, nil
}

func (p *pahoV5Client) pipeline(ctx context.Context, n int, qos byte, window int) error {
	if qos == 0 {
		m := &pahov5.Publish{Topic: p.topic, QoS: 0, Payload: p.payload}
		for i := 0; i < n; i++ {
			if _, err := p.pub.Publish(ctx, m); err != nil {
				return err
			}
		}
		_, err := p.pub.Publish(ctx, &pahov5.Publish{Topic: p.topic, QoS: 1, Payload: p.payload})
		return err
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	for w := 0; w < window; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				_, err := p.pub.Publish(ctx, &pahov5.Publish{Topic: p.topic, QoS: qos, Payload: p.payload})
				if err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

func (p *pahoV5Client) publish(ctx context.Context, qos byte) error {
	_, err := p.pub.Publish(ctx, &pahov5.Publish{Topic: p.topic, QoS: qos, Payload: p.payload})
	return err
}

func (p *pahoV5Client) subscribe(ctx context.Context, filter string, qos byte, onMsg func()) error {
	p.onMsg.Store(&onMsg)
	_, err := p.pub.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: filter, QoS: qos}}})
	return err
}

func (p *pahoV5Client) close(ctx context.Context) error { return p.closeFn(ctx) }
