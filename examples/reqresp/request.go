package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/b4e21b16/mqtt"
	"golang.org/x/sync/errgroup"
)

// request is one request: an operation, which names the topic level, and
// its argument, which is the payload.
type request struct {
	op, arg string
}

func (r request) String() string {
	if r.arg == "" {
		return r.op
	}
	return r.op + " " + r.arg
}

// parseRequest splits a command-line request such as "add 1 2" at its
// first space.
func parseRequest(s string) (request, error) {
	op, arg, _ := strings.Cut(strings.TrimSpace(s), " ")
	if op == "" || strings.ContainsAny(op, "/+#") {
		return request{}, fmt.Errorf("request %q: the operation must be a non-empty topic level without /, + or #", s)
	}
	return request{op: op, arg: strings.TrimSpace(arg)}, nil
}

// generate makes n requests that alternate between the two operations.
func generate(n int) []request {
	reqs := make([]request, n)
	for i := range reqs {
		if i%2 == 0 {
			reqs[i] = request{op: "add", arg: fmt.Sprintf("%d %d", i, i*i)}
		} else {
			reqs[i] = request{op: "upper", arg: fmt.Sprintf("request %d", i)}
		}
	}
	return reqs
}

// sendRequests sends o.requests through c, at most o.parallel at a time,
// waits for every reply and prints them in the order of the requests. A
// request that gets no reply within o.timeout fails the whole run.
func sendRequests(ctx context.Context, c *mqtt.Client, o options, out *lineWriter) error {
	replies := make([]string, len(o.requests))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.parallel)
	for i, r := range o.requests {
		g.Go(func() error {
			rctx, cancel := context.WithTimeout(gctx, o.timeout)
			defer cancel()
			resp, err := c.Request(rctx, mqtt.Message{
				Topic:   o.prefix + "/" + r.op,
				Payload: []byte(r.arg),
				QoS:     mqtt.AtLeastOnce,
			})
			if err != nil {
				return fmt.Errorf("request %q: %w", r, err)
			}
			replies[i] = describe(resp)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, r := range o.requests {
		out.println(fmt.Sprintf("%s -> %s", r, replies[i]))
	}
	return nil
}

// describe renders a reply: its payload, or "error: " and the payload when
// the responder marked it as an error.
func describe(resp mqtt.Message) string {
	for _, p := range resp.UserProperties {
		if p.Key == statusKey && p.Value == statusError {
			return "error: " + string(resp.Payload)
		}
	}
	return string(resp.Payload)
}
