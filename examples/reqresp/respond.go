package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/b4e21b16/mqtt"
	"golang.org/x/sync/errgroup"
)

// The user property that marks a reply as an error.
const (
	statusKey   = "status"
	statusError = "error"
)

// responder is a client subscribed to the request topics.
type responder struct {
	c        *mqtt.Client
	sub      *mqtt.Subscription
	answered atomic.Int64 // requests answered so far, by every worker
}

// startResponder connects and subscribes to prefix/+, so that requests
// sent from now on are answered once serve runs.
func startResponder(ctx context.Context, server, prefix string) (*responder, error) {
	c, err := connect(ctx, server)
	if err != nil {
		return nil, err
	}
	sub, err := c.Subscribe(ctx, prefix+"/+", mqtt.AtLeastOnce)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("subscribe to %s/+: %w", prefix, err)
	}
	return &responder{c: c, sub: sub}, nil
}

// serve answers requests with workers concurrent mqtt.Serve loops on the
// one subscription, until ctx ends (which is not an error) or the client
// fails.
func (r *responder) serve(ctx context.Context, workers int) error {
	var g errgroup.Group
	for range workers {
		g.Go(func() error {
			return mqtt.Serve(ctx, r.c, r.sub, r.answer)
		})
	}
	err := g.Wait()
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	return fmt.Errorf("serve: %w", err)
}

// answer is the mqtt.Handler: it computes the reply to one request. A
// request it cannot answer gets an error reply rather than stopping Serve.
func (r *responder) answer(_ context.Context, req mqtt.Message) (mqtt.Message, error) {
	op := req.Topic[strings.LastIndexByte(req.Topic, '/')+1:]
	resp := mqtt.Message{QoS: mqtt.AtLeastOnce, PayloadUTF8: true}
	result, err := compute(op, string(req.Payload))
	if err != nil {
		resp.Payload = []byte(err.Error())
		resp.UserProperties = []mqtt.UserProperty{{Key: statusKey, Value: statusError}}
	} else {
		resp.Payload = []byte(result)
	}
	r.answered.Add(1)
	return resp, nil
}

// disconnect ends the responder's connection gracefully.
func (r *responder) disconnect() error { return disconnect(r.c) }

// close releases the client on paths that did not disconnect; after
// disconnect it does nothing.
func (r *responder) close() { r.c.Close() }

// compute performs operation op on arg.
func compute(op, arg string) (string, error) {
	switch op {
	case "add":
		return add(arg)
	case "upper":
		return strings.ToUpper(arg), nil
	default:
		return "", fmt.Errorf("unknown operation %q", op)
	}
}

// add sums the space-separated integers in arg.
func add(arg string) (string, error) {
	fields := strings.Fields(arg)
	if len(fields) == 0 {
		return "", errors.New("add: no numbers")
	}
	var sum int64
	for _, f := range fields {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return "", fmt.Errorf("add: %q is not an integer", f)
		}
		if (n > 0 && sum > math.MaxInt64-n) || (n < 0 && sum < math.MinInt64-n) {
			return "", errors.New("add: the sum overflows 64 bits")
		}
		sum += n
	}
	return strconv.FormatInt(sum, 10), nil
}
