package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/b4e21b16/mqtt"
)

// maxLine bounds a line read by pub -l.
const maxLine = 16 << 20

// pubFlags are the flags of mqtt pub.
type pubFlags struct {
	conn                    connFlags
	topic, message, file    string
	lines, null, stdinWhole bool
	qos                     int
	retain                  bool
	props                   propFlags
	disconnectTimeout       int
}

// runPub is mqtt pub: it publishes one message (-m, -f, -n, -s) or one per
// line of stdin (-l) and disconnects once every message is acknowledged.
func runPub(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var f pubFlags
	fs := flag.NewFlagSet("pub", flag.ContinueOnError)
	f.conn.register(fs)
	f.conn.clientIDPrefix = "mqtt-pub-"
	fs.StringVar(&f.topic, "t", "", "`topic` to publish to")
	fs.StringVar(&f.message, "m", "", "`message` to publish")
	fs.StringVar(&f.file, "f", "", "publish the contents of `file` as one message")
	fs.BoolVar(&f.lines, "l", false, "publish each line of stdin as a message (empty lines are skipped)")
	fs.BoolVar(&f.null, "n", false, "publish a null (empty) message")
	fs.BoolVar(&f.stdinWhole, "s", false, "publish all of stdin as one message")
	fs.IntVar(&f.qos, "q", 0, "`QoS` 0, 1 or 2")
	fs.BoolVar(&f.retain, "r", false, "ask the broker to retain the message")
	fs.IntVar(&f.disconnectTimeout, "disconnect-timeout", 10, "wait at most this many `seconds` for acknowledgements before disconnecting")
	f.props.register(fs)
	if err := parseFlags(fs, args, stdout); err != nil {
		return fail(stderr, "pub", err)
	}
	if err := pub(ctx, &f, fs, stdin, stderr); err != nil {
		return fail(stderr, "pub", err)
	}
	return exitOK
}

// pub checks the flags, connects and publishes.
func pub(ctx context.Context, f *pubFlags, fs *flag.FlagSet, stdin io.Reader, stderr io.Writer) error {
	cfg, err := f.conn.config(fs)
	if err != nil {
		return err
	}
	cfg.Reconnect.Disable = true
	topic := f.topic
	if topic == "" {
		topic = f.conn.urlTopic
	}
	if topic == "" {
		return usagef("no topic: give one with -t (or as the path of -L)")
	}
	if err := checkTopicName("-t", topic); err != nil {
		return err
	}
	qos, err := parseQoS("-q", f.qos)
	if err != nil {
		return err
	}
	set := given(fs)
	sources := 0
	for _, name := range []string{"m", "f", "l", "n", "s"} {
		if set[name] {
			sources++
		}
	}
	if sources != 1 {
		return usagef("say what to publish with exactly one of -m message, -f file, -l (stdin lines), -s (all of stdin) or -n (null message)")
	}
	base := mqtt.Message{Topic: topic, QoS: qos, Retain: f.retain}
	if err := f.props.apply(&base); err != nil {
		return err
	}
	if f.disconnectTimeout <= 0 {
		return usagef("--disconnect-timeout %d: want a positive number of seconds", f.disconnectTimeout)
	}

	var payload []byte
	switch {
	case set["m"]:
		payload = []byte(f.message)
	case set["f"]:
		if payload, err = os.ReadFile(f.file); err != nil {
			return fmt.Errorf("-f: %w", err)
		}
	case set["s"]:
		if payload, err = io.ReadAll(io.LimitReader(stdin, maxLine+1)); err != nil {
			return fmt.Errorf("reading stdin: %w", err)
		}
		if len(payload) > maxLine {
			return fmt.Errorf("stdin holds more than %d bytes, too much for one message", maxLine)
		}
	}

	c, err := dial(ctx, cfg, f.conn.debug, stderr)
	if err != nil {
		return err
	}
	defer c.Close()

	if f.lines {
		err = publishLines(ctx, c, base, stdin, f.conn.debug, stderr)
	} else {
		m := base
		m.Payload = payload
		err = publishOne(ctx, c, m, f.conn.debug, stderr)
	}
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(f.disconnectTimeout)*time.Second)
	defer cancel()
	if err := c.Disconnect(dctx); err != nil && !errors.Is(err, mqtt.ErrClosed) {
		return fmt.Errorf("disconnecting: %w", err)
	}
	return nil
}

// publishOne publishes m and waits for it to complete.
func publishOne(ctx context.Context, c *mqtt.Client, m mqtt.Message, debug bool, stderr io.Writer) error {
	if err := c.Publish(ctx, m); err != nil {
		if errors.Is(err, context.Canceled) {
			return errors.New("interrupted before the broker acknowledged the message")
		}
		return runFailure(fmt.Errorf("publish to %q: %w", m.Topic, err))
	}
	if debug {
		fmt.Fprintf(stderr, "published %d bytes to %s at %s\n", len(m.Payload), m.Topic, m.QoS)
	}
	return nil
}

// publishLines publishes each non-empty line of r as a message like base.
// Lines are read by a goroutine of their own, so that an interrupt ends
// the command even while it waits for input from a terminal.
func publishLines(ctx context.Context, c *mqtt.Client, base mqtt.Message, r io.Reader, debug bool, stderr io.Writer) error {
	lines := make(chan string)
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64<<10), maxLine)
		for sc.Scan() {
			select {
			case lines <- strings.TrimSuffix(sc.Text(), "\r"):
			case <-stop:
				return
			}
		}
		readErr <- sc.Err()
	}()
	for n := 1; ; n++ {
		var line string
		var ok bool
		select {
		case line, ok = <-lines:
		case <-ctx.Done():
			// An interrupt ends the input, like end of file: what was
			// published so far stands.
			return nil
		}
		if !ok {
			break
		}
		if line == "" {
			continue
		}
		m := base
		m.Payload = []byte(line)
		if err := publishOne(ctx, c, m, debug, stderr); err != nil {
			return fmt.Errorf("stdin line %d: %w", n, err)
		}
	}
	if err := <-readErr; err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	return nil
}
