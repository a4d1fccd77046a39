package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/b4e21b16/mqtt"
)

// maxBenchMessages bounds the messages a bench run may expect to receive,
// and so the memory its latency samples take (8 bytes each).
const maxBenchMessages = 50_000_000

// benchFlags are the flags of mqtt bench.
type benchFlags struct {
	conn                    connFlags
	publishers, subscribers int
	qos, size, count        int
	topic                   string
	inflight                int
	timeout                 int
	interval, drain         time.Duration
	progress                string
}

// runBench is mqtt bench: publishers send count messages each to one topic
// that every subscriber receives; the payload carries its publish time, so
// each receipt gives a latency. It prints progress while it runs and a
// summary at the end.
func runBench(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	var f benchFlags
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	f.conn.register(fs)
	f.conn.clientIDPrefix = "mqtt-bench-"
	fs.IntVar(&f.publishers, "publishers", 1, "`number` of publishing clients")
	fs.IntVar(&f.subscribers, "subscribers", 1, "`number` of subscribing clients (0: measure publishing alone)")
	fs.IntVar(&f.qos, "q", 0, "`QoS` of the messages and subscriptions: 0, 1 or 2")
	fs.IntVar(&f.size, "size", 64, "payload size in `bytes` (at least 8, which carry the publish time)")
	fs.IntVar(&f.count, "count", 1000, "`messages` per publisher")
	fs.StringVar(&f.topic, "t", "", "`topic` to publish to (default: mqtt-bench/ and a random suffix)")
	fs.IntVar(&f.inflight, "inflight", 64, "publishes each publisher keeps in flight (`window`)")
	fs.IntVar(&f.timeout, "timeout", 60, "stop after this many `seconds` whatever the state")
	fs.DurationVar(&f.interval, "interval", time.Second, "progress update `interval`")
	fs.DurationVar(&f.drain, "drain", 2*time.Second, "once publishing is done, stop waiting for messages when none arrived for this `long`")
	fs.StringVar(&f.progress, "progress", "auto", "progress display: auto (a single updating line on a terminal, lines otherwise), line, plain or off")
	if err := parseFlags(fs, args, stdout); err != nil {
		return fail(stderr, "bench", err)
	}
	if err := bench(ctx, &f, fs, stdout); err != nil {
		return fail(stderr, "bench", err)
	}
	return exitOK
}

// check validates the bench flags.
func (f *benchFlags) check() error {
	switch {
	case f.publishers < 1 || f.publishers > 1000:
		return usagef("--publishers %d: want 1 to 1000", f.publishers)
	case f.subscribers < 0 || f.subscribers > 1000:
		return usagef("--subscribers %d: want 0 to 1000", f.subscribers)
	case f.size < 8 || f.size > 16<<20:
		return usagef("--size %d: want 8 bytes (the publish time) to 16 MiB", f.size)
	case f.count < 1:
		return usagef("--count %d: want at least one message per publisher", f.count)
	case f.inflight < 1 || f.inflight > 65535:
		return usagef("--inflight %d: want 1 to 65535", f.inflight)
	case f.timeout < 1:
		return usagef("--timeout %d: want a positive number of seconds", f.timeout)
	case f.interval <= 0 || f.drain <= 0:
		return usagef("--interval and --drain must be positive durations, such as 500ms")
	case int64(f.publishers)*int64(f.count)*int64(max(f.subscribers, 1)) > maxBenchMessages:
		return usagef("publishers × count × subscribers is over %d messages; run a smaller bench", maxBenchMessages)
	}
	switch f.progress {
	case "auto", "line", "plain", "off":
	default:
		return usagef("--progress %q: want auto, line, plain or off", f.progress)
	}
	if f.topic == "" {
		f.topic = "mqtt-bench/" + randomHex(4)
	}
	return checkTopicName("-t", f.topic)
}

// bench runs the benchmark and prints its progress and summary to stdout.
func bench(ctx context.Context, f *benchFlags, fs *flag.FlagSet, stdout io.Writer) error {
	cfg, err := f.conn.config(fs)
	if err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	qos, err := parseQoS("-q", f.qos)
	if err != nil {
		return err
	}
	if f.conn.noClean || f.conn.clientID != "" || cfg.Will != nil {
		return usagef("bench makes its own clients: -i, -c and the will flags do not apply")
	}
	cfg.Reconnect.Disable = true
	ctx, cancel := context.WithTimeoutCause(ctx, time.Duration(f.timeout)*time.Second, errBenchTimeout)
	defer cancel()

	b := &benchRun{
		cfg: cfg, qos: qos, topic: f.topic, size: f.size, count: f.count,
		publishers: f.publishers, subscribers: f.subscribers, inflight: f.inflight,
		drain: f.drain,
	}
	fmt.Fprintf(stdout, "bench: %d publisher(s) × %d messages, %d subscriber(s), %s, %d-byte payloads, topic %s, broker %s\n",
		f.publishers, f.count, f.subscribers, qos, f.size, f.topic, displayAddr(cfg.Servers[0]))
	prog := startProgress(progressMode(f.progress, stdout), stdout, f.interval, b)
	res, runErr := b.run(ctx)
	prog.stop()
	if res != nil {
		res.print(stdout)
	}
	if runErr != nil {
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, errBenchTimeout):
			return fmt.Errorf("stopped by --timeout %ds before the run completed; raise --timeout or lower --count", f.timeout)
		case errors.Is(cause, context.Canceled):
			return errors.New("interrupted")
		}
		return runErr
	}
	if lost := res.expected - res.received; lost > 0 && qos > mqtt.AtMostOnce {
		return fmt.Errorf("%d of %d messages at %s never arrived; the broker dropped them (check its queue limits, such as mosquitto's max_queued_messages)", lost, res.expected, qos)
	}
	return nil
}

// errBenchTimeout is the cause of a bench stopped by --timeout.
var errBenchTimeout = errors.New("bench timeout")
