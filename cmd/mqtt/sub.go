package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/b4e21b16/mqtt"
)

// subFlags are the flags of mqtt sub.
type subFlags struct {
	conn                    connFlags
	topics                  stringList
	qos                     int
	verbose, json, noRetain bool
	noNewline               bool
	count, timeout          int
}

// errTimedOut ends sub when -W runs out.
var errTimedOut = errors.New("timed out")

// runSub is mqtt sub: it subscribes to the -t filters and prints each
// message that arrives, until -C messages have arrived, -W seconds have
// passed, or it is interrupted.
func runSub(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	var f subFlags
	fs := flag.NewFlagSet("sub", flag.ContinueOnError)
	f.conn.register(fs)
	f.conn.clientIDPrefix = "mqtt-sub-"
	fs.Var(&f.topics, "t", "topic `filter` to subscribe to (repeatable; + and # wildcards)")
	fs.IntVar(&f.qos, "q", 0, "maximum `QoS` to receive with: 0, 1 or 2")
	fs.BoolVar(&f.verbose, "v", false, `print "topic payload" instead of the payload alone`)
	fs.BoolVar(&f.json, "json", false, "print each message as one line of JSON: topic, payload, qos, retain and MQTT 5.0 properties")
	fs.BoolVar(&f.noRetain, "R", false, "do not print retained (stale) messages")
	fs.BoolVar(&f.noNewline, "N", false, "do not print a newline after each payload")
	fs.IntVar(&f.count, "C", 0, "exit after `count` messages")
	fs.IntVar(&f.timeout, "W", 0, "give up `seconds` after subscribing: exit with status 3 unless -C messages arrived by then")
	if err := parseFlags(fs, args, stdout); err != nil {
		return fail(stderr, "sub", err)
	}
	err := sub(ctx, &f, fs, stdout, stderr)
	if errors.Is(err, errTimedOut) {
		fmt.Fprintf(stderr, "mqtt sub: %v\n", err)
		return exitTimeout
	}
	if err != nil {
		return fail(stderr, "sub", err)
	}
	return exitOK
}

// sub checks the flags, subscribes and prints.
func sub(ctx context.Context, f *subFlags, fs *flag.FlagSet, stdout, stderr io.Writer) error {
	cfg, err := f.conn.config(fs)
	if err != nil {
		return err
	}
	cfg.Reconnect.MaxAttempts = 10
	if len(f.topics) == 0 && f.conn.urlTopic != "" {
		f.topics = stringList{f.conn.urlTopic}
	}
	if len(f.topics) == 0 {
		return usagef("no topic: give at least one topic filter with -t (or as the path of -L)")
	}
	for _, t := range f.topics {
		if err := checkTopicFilter("-t", t); err != nil {
			return err
		}
	}
	qos, err := parseQoS("-q", f.qos)
	if err != nil {
		return err
	}
	if f.count < 0 {
		return usagef("-C %d: want a positive count", f.count)
	}
	if f.timeout < 0 {
		return usagef("-W %d: want a positive number of seconds", f.timeout)
	}
	if f.json && (f.verbose || f.noNewline) {
		return usagef("--json prints the topic and one message per line already: leave out -v and -N")
	}

	stderr = &lockedWriter{w: stderr}
	c, err := dial(ctx, cfg, f.conn.debug, stderr)
	if err != nil {
		return err
	}
	events := make(chan struct{})
	go func() {
		reportEvents(c, f.conn.debug, stderr)
		close(events)
	}()
	defer func() { <-events }()
	// Runs before the wait above, so that reportEvents sees Done.
	defer c.Close()

	filters := make([]mqtt.Filter, len(f.topics))
	for i, t := range f.topics {
		filters[i] = mqtt.Filter{Topic: t, QoS: qos}
	}
	s, err := c.SubscribeFilters(ctx, filters...)
	if err != nil {
		if s == nil {
			return runFailure(err)
		}
		fmt.Fprintf(stderr, "warning: %v\n", runFailure(err))
	}
	if f.conn.debug {
		for _, g := range s.Granted() {
			if !g.Code.IsError() {
				fmt.Fprintf(stderr, "subscribed to %s (granted QoS %d)\n", g.Filter, byte(g.Code))
			}
		}
	}

	out := bufio.NewWriter(stdout)
	p := printer{w: out, verbose: f.verbose, json: f.json, noNewline: f.noNewline}
	var timeout <-chan time.Time
	if f.timeout > 0 {
		t := time.NewTimer(time.Duration(f.timeout) * time.Second)
		defer t.Stop()
		timeout = t.C
	}
	received := 0
	for f.count == 0 || received < f.count {
		var m mqtt.Message
		var ok bool
		select {
		case m, ok = <-s.Messages():
		case m, ok = <-c.Messages():
		case <-timeout:
			if f.count > 0 {
				return fmt.Errorf("%w after %ds with %d of %d messages (-C %d)", errTimedOut, f.timeout, received, f.count, f.count)
			}
			return fmt.Errorf("%w after %ds (-W) with %d messages received", errTimedOut, f.timeout, received)
		case <-ctx.Done():
			return disconnect(ctx, c)
		case <-c.Done():
			return runFailure(c.Err())
		}
		if !ok {
			return runFailure(fmt.Errorf("subscription ended: %w", c.Err()))
		}
		if f.noRetain && m.Retain {
			continue
		}
		if err := p.print(&m); err != nil {
			return fmt.Errorf("writing to stdout: %w", err)
		}
		received++
	}
	return disconnect(ctx, c)
}

// disconnect ends c gracefully, within a few seconds even when ctx has
// ended.
func disconnect(ctx context.Context, c *mqtt.Client) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := c.Disconnect(dctx); err != nil && !errors.Is(err, mqtt.ErrClosed) {
		return fmt.Errorf("disconnecting: %w", err)
	}
	return nil
}
