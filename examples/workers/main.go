// Command workers runs a pool of workers that share the messages of one
// topic filter through an MQTT shared subscription ($share/group/filter):
// each worker has a client of its own, all of them subscribe in the same
// group, and the broker hands each message to one worker of the group.
// Adding workers spreads the load; a worker that goes away leaves its share
// to the others.
//
// Each processed message is printed as "worker N: topic payload". The pool
// stops on SIGINT or SIGTERM, or once -count messages were processed, and
// prints how many each worker took.
//
//	go run ./examples/workers -server mqtt://127.0.0.1:1883 -workers 4 -filter 'jobs/#'
//	mosquitto_pub -t jobs/1 -q 1 -m 'resize image 1'
//
// With -procs N the pool spans N processes: the program re-executes itself
// N times, each worker process runs -workers workers in the same share
// group, and this process forwards their lines ("process P worker N: topic
// payload"), stops them all once -count messages were processed (or on a
// signal) and prints how many each process took. Each worker has a client
// ID of its own that is the same on every run (group-P-N) and a persistent
// session (-session-expiry, one hour unless set), so a worker process that
// is killed and started again resumes its session and gets what the broker
// kept for it meanwhile.
//
//	go run ./examples/workers -server mqtt://127.0.0.1:1883 -procs 4 -workers 2 -filter 'jobs/#'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/b4e21b16/mqtt"
	"golang.org/x/sync/errgroup"
)

// shutdownTimeout bounds each worker's graceful disconnect.
const shutdownTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "workers:", err)
		os.Exit(1)
	}
}

// run is the whole program; main and the test call it.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("workers", flag.ContinueOnError)
	fs.SetOutput(stdout)
	server := fs.String("server", "mqtt://127.0.0.1:1883", "broker URL")
	workers := fs.Int("workers", 3, "number of workers, each with its own client")
	group := fs.String("group", "workers", "shared subscription group name")
	filter := fs.String("filter", "jobs/#", "topic filter the group shares")
	qos := fs.Int("qos", 1, "subscription QoS (0, 1 or 2)")
	count := fs.Int("count", 0, "stop after the pool processed this many messages (0: run until interrupted)")
	ready := fs.String("ready", "", "print this line once every worker is subscribed (for scripts)")
	procs := fs.Int("procs", 0, "run the pool in this many worker processes, each with -workers workers (0: in this process)")
	expiry := fs.Duration("session-expiry", 0, "keep each worker's session this long after it disconnects (persistent session; with -procs: 1h unless set)")
	process := fs.Int("process", -1, "this is worker process number N of a -procs pool (set by -procs)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *workers < 1:
		return fmt.Errorf("-workers %d: need at least one", *workers)
	case *group == "" || strings.ContainsAny(*group, "/+#"):
		return fmt.Errorf("-group %q: a share name is non-empty and has no /, + or #", *group)
	case *procs < 0 || *procs > maxProcs:
		return fmt.Errorf("-procs %d: between 0 and %d", *procs, maxProcs)
	case *procs > 0 && *process >= 0:
		return errors.New("-procs and -process exclude each other")
	}
	out := &lineWriter{w: stdout}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	if *procs > 0 {
		if *expiry == 0 {
			*expiry = time.Hour
		}
		childArgs := []string{"-server", *server, "-workers", fmt.Sprint(*workers), "-group", *group,
			"-filter", *filter, "-qos", fmt.Sprint(*qos), "-session-expiry", expiry.String()}
		return runProcesses(ctx, *procs, childArgs, *count, *ready, out)
	}
	if *process >= 0 {
		// A worker process stops when its parent closes its standard
		// input (or exits).
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
	}

	spec := workerSpec{server: *server, group: *group, shared: "$share/" + *group + "/" + *filter,
		qos: mqtt.QoS(*qos), process: *process, sessionExpiry: *expiry}
	pool := make([]*worker, *workers)
	for i := range pool {
		w, err := startWorker(ctx, i, spec)
		if err != nil {
			return err
		}
		// Close is a no-op after a successful Disconnect; on the error
		// paths it makes sure no goroutine of the client outlives run.
		defer w.client.Close()
		pool[i] = w
	}
	if *ready != "" {
		out.printf("%s\n", *ready)
	}

	var processed atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for _, w := range pool {
		g.Go(func() error {
			return w.work(gctx, out, func() {
				if n := processed.Add(1); *count > 0 && n >= int64(*count) {
					cancel() // done: the pool stops
				}
			})
		})
	}
	err := g.Wait()

	// Graceful shutdown: each client sends DISCONNECT once its in-flight
	// work is settled; all of them at once, bounded in time.
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancelShutdown()
	var wg sync.WaitGroup
	errs := make([]error, len(pool))
	for i, w := range pool {
		wg.Go(func() { errs[i] = w.client.Disconnect(shutdownCtx) })
	}
	wg.Wait()
	if err != nil {
		return err
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("disconnect: %w", err)
	}

	summary := make([]string, len(pool))
	for i, w := range pool {
		summary[i] = fmt.Sprintf("worker %d: %d", i, w.done)
	}
	out.printf("processed %d messages (%s)\n", processed.Load(), strings.Join(summary, ", "))
	return nil
}
