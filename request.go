package mqtt

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/b4e21b16/mqtt/packet"
)

// Request publishes m as an MQTT 5.0 request and waits until ctx ends for
// the reply: the first message on the client's reply topic that carries the
// request's Correlation Data. Request sets m.ResponseTopic and
// m.CorrelationData itself (replacing what they held).
//
// All requests of a client share one reply subscription (QoS 1), made on the
// first call: Config.ResponseTopic, or "reply/" and random hexadecimal
// digits (under Client.ResponseInformation when the broker gave one). Any
// number of requests may wait at once, from any goroutines. A reply that
// arrives after its request gave up is discarded. The responder answers
// with Client.Reply or Serve.
//
// Request needs an MQTT 5.0 connection: 3.1.1 has no response topic or
// correlation data.
func (c *Client) Request(ctx context.Context, m Message) (Message, error) {
	if c.Connection().Version != Version5 {
		return Message{}, &ArgumentError{What: "protocol version", Value: "3.1.1", Err: errors.New("request/response needs MQTT 5.0")}
	}
	rq := &c.requests
	topic, sub, err := rq.subscribe(ctx, c)
	if err != nil {
		return Message{}, err
	}
	key, replies := rq.register()
	defer rq.unregister(key)
	m.ResponseTopic = topic
	m.CorrelationData = []byte(key)
	if err := c.Publish(ctx, m); err != nil {
		return Message{}, err
	}
	// Every waiting request reads the shared subscription and hands each
	// reply to the request it belongs to, so no goroutine is needed.
	msgs := sub.Messages()
	for {
		select {
		case r := <-replies:
			return r, nil
		case r, ok := <-msgs:
			if !ok {
				if err := c.Err(); err != nil {
					return Message{}, err
				}
				return Message{}, fmt.Errorf("mqtt: the reply subscription to %q ended", topic)
			}
			if string(r.CorrelationData) == key {
				return r, nil
			}
			rq.route(r)
		case <-ctx.Done():
			return Message{}, ctx.Err()
		}
	}
}

// requester is the state Request shares between concurrent requests.
type requester struct {
	mu          sync.Mutex
	topic       string
	sub         *Subscription
	subscribing chan struct{} // closed when a SUBSCRIBE in progress ends
	next        uint64
	waiting     map[string]chan Message // by correlation data
}

// subscribe returns the reply topic and subscription, subscribing on first
// use (or after a failed attempt). Concurrent first requests wait for one
// SUBSCRIBE, each only as long as its own ctx allows.
func (rq *requester) subscribe(ctx context.Context, c *Client) (string, *Subscription, error) {
	for {
		rq.mu.Lock()
		if rq.sub != nil {
			topic, sub := rq.topic, rq.sub
			rq.mu.Unlock()
			return topic, sub, nil
		}
		if wait := rq.subscribing; wait != nil {
			rq.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return "", nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		rq.subscribing = done
		rq.mu.Unlock()

		topic, sub, err := replySubscribe(ctx, c)
		rq.mu.Lock()
		if err == nil {
			rq.topic, rq.sub = topic, sub
		}
		rq.subscribing = nil
		close(done)
		rq.mu.Unlock()
		return topic, sub, err
	}
}

// replySubscribe subscribes to the client's reply topic.
func replySubscribe(ctx context.Context, c *Client) (string, *Subscription, error) {
	topic := c.cfg.ResponseTopic
	if topic == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		topic = "reply/" + hex.EncodeToString(b[:])
		if info := c.Connection().ResponseInformation; info != "" {
			topic = info + "/" + hex.EncodeToString(b[:])
		}
		if err := packet.ValidTopicName(topic); err != nil {
			return "", nil, &ArgumentError{What: "reply topic", Value: topic, Err: err}
		}
	}
	sub, err := c.Subscribe(ctx, topic, AtLeastOnce)
	if err != nil {
		return "", nil, errorf("mqtt: subscribe to the reply topic %q: %w", topic, err)
	}
	return topic, sub, nil
}

// register returns a new correlation key and the channel its reply will be
// handed to.
func (rq *requester) register() (string, chan Message) {
	rq.mu.Lock()
	defer rq.mu.Unlock()
	rq.next++
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], rq.next)
	key := string(b[:])
	ch := make(chan Message, 1)
	if rq.waiting == nil {
		rq.waiting = make(map[string]chan Message)
	}
	rq.waiting[key] = ch
	return key, ch
}

func (rq *requester) unregister(key string) {
	rq.mu.Lock()
	delete(rq.waiting, key)
	rq.mu.Unlock()
}

// route hands a reply to the request waiting for it; one nobody waits for
// (a late or a second reply) is dropped.
func (rq *requester) route(m Message) {
	rq.mu.Lock()
	ch := rq.waiting[string(m.CorrelationData)]
	rq.mu.Unlock()
	if ch != nil {
		select {
		case ch <- m:
		default: // a second reply to the same request
		}
	}
}

// Reply publishes resp as the answer to the request req: to
// req.ResponseTopic, with req.CorrelationData. It fails with an
// *ArgumentError when req has no response topic.
func (c *Client) Reply(ctx context.Context, req Message, resp Message) error {
	if req.ResponseTopic == "" {
		return &ArgumentError{What: "request", Value: req.Topic, Err: errors.New("the message has no response topic to reply to")}
	}
	resp.Topic = req.ResponseTopic
	resp.CorrelationData = req.CorrelationData
	return c.Publish(ctx, resp)
}

// Handler answers one request for Serve. It returns the reply; its Topic
// and CorrelationData are set by Serve.
type Handler func(ctx context.Context, req Message) (Message, error)

// Serve answers the requests arriving on sub with h until ctx ends or the
// subscription ends, and returns why (ctx's error, or the client's). It
// replies to each message that has a response topic and skips the others.
// A handler error stops Serve and is returned; to send an error to the
// requester, return a reply that describes it. Run Serve in several
// goroutines on the same subscription to answer requests concurrently.
func Serve(ctx context.Context, c *Client, sub *Subscription, h Handler) error {
	for req := range sub.All(ctx) {
		if req.ResponseTopic == "" {
			continue
		}
		resp, err := h(ctx, req)
		if err != nil {
			return err
		}
		if err := c.Reply(ctx, req, resp); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.Err(); err != nil {
		return err
	}
	return errors.New("mqtt: the subscription ended")
}
