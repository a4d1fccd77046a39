// Command reqresp shows MQTT 5.0 request/response. A responder subscribes
// to <prefix>/+ and answers each request with mqtt.Serve; a requester sends
// requests with Client.Request, all of them at once, and prints every reply
// next to its request, in the order the requests were given.
//
// A request is an operation and its argument, such as "add 1 2 3" or
// "upper hello": the operation is the last topic level (calc/add) and the
// argument is the payload. The responder knows two operations: add sums
// integers, upper converts text to upper case. It answers anything else,
// and any argument it cannot use, with an error reply (user property
// status=error), which the requester prints as "error: ...".
//
// By default one process plays both roles, each with its own client; -role
// selects one of them:
//
//	go run ./examples/reqresp -server mqtt://127.0.0.1:1883 -n 20
//	go run ./examples/reqresp -role responder -workers 4 &
//	go run ./examples/reqresp -role requester 'add 1 2 3' 'upper hello'
//
// The requester prints lines such as "add 1 2 3 -> 6". The responder runs
// until SIGINT or SIGTERM and then prints how many requests it answered.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/b4e21b16/mqtt"
)

// shutdownTimeout bounds each client's graceful disconnect.
const shutdownTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "reqresp:", err)
		os.Exit(1)
	}
}

// options are the parsed command line.
type options struct {
	server   string
	role     string
	prefix   string
	workers  int
	parallel int
	timeout  time.Duration
	ready    string
	requests []request
}

// run is the whole program; main and the tests call it.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseArgs(args, stdout)
	if err != nil {
		return err
	}
	out := &lineWriter{w: stdout}
	switch o.role {
	case "responder":
		return runResponder(ctx, o, out)
	case "requester":
		return runRequester(ctx, o, out)
	default:
		return runBoth(ctx, o, out)
	}
}

// runResponder answers requests until ctx ends.
func runResponder(ctx context.Context, o options, out *lineWriter) error {
	r, err := startResponder(ctx, o.server, o.prefix)
	if err != nil {
		return err
	}
	defer r.close()
	if o.ready != "" {
		out.println(o.ready)
	}
	serveErr := r.serve(ctx, o.workers)
	out.println(fmt.Sprintf("responder: answered %d requests", r.answered.Load()))
	return errors.Join(serveErr, r.disconnect())
}

// runRequester sends the requests and prints the replies.
func runRequester(ctx context.Context, o options, out *lineWriter) error {
	c, err := connect(ctx, o.server)
	if err != nil {
		return err
	}
	defer c.Close()
	reqErr := sendRequests(ctx, c, o, out)
	return errors.Join(reqErr, disconnect(c))
}

// runBoth starts a responder, sends the requests to it from a second
// client, and stops the responder once every reply has arrived.
func runBoth(ctx context.Context, o options, out *lineWriter) error {
	r, err := startResponder(ctx, o.server, o.prefix)
	if err != nil {
		return err
	}
	defer r.close()

	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	served := make(chan error, 1)
	go func() { served <- r.serve(serveCtx, o.workers) }()

	reqErr := runRequester(ctx, o, out)
	stopServing()
	serveErr := <-served
	out.println(fmt.Sprintf("responder: answered %d requests", r.answered.Load()))
	return errors.Join(reqErr, serveErr, r.disconnect())
}

// connect opens an MQTT 5.0 connection: request/response needs the response
// topic and correlation data properties that 3.1.1 does not have.
func connect(ctx context.Context, server string) (*mqtt.Client, error) {
	c, err := mqtt.Connect(ctx, mqtt.Config{
		Servers:    []string{server},
		Version:    mqtt.Version5,
		CleanStart: true,
		KeepAlive:  30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", server, err)
	}
	return c, nil
}

// disconnect ends a client's connection gracefully, bounded in time even if
// the broker stops answering.
func disconnect(c *mqtt.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := c.Disconnect(ctx); err != nil {
		return fmt.Errorf("disconnect: %w", err)
	}
	return nil
}
