package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// parseArgs parses and checks the command line. Every mistake is reported
// here, before anything is dialed.
func parseArgs(args []string, stdout io.Writer) (options, error) {
	fs := flag.NewFlagSet("reqresp", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: reqresp [flags] [request ...]\n\nA request is an operation and its argument, such as 'add 1 2' or 'upper text'.\nWithout requests the requester sends -n generated ones.\n\nFlags:")
		fs.PrintDefaults()
	}
	var o options
	fs.StringVar(&o.server, "server", "mqtt://127.0.0.1:1883", "broker URL")
	fs.StringVar(&o.role, "role", "both", "responder, requester, or both (two clients in one process)")
	fs.StringVar(&o.prefix, "prefix", "calc", "topic prefix: requests go to <prefix>/<operation>")
	fs.IntVar(&o.workers, "workers", 4, "responder: requests answered concurrently")
	fs.IntVar(&o.parallel, "parallel", 64, "requester: requests in flight at once")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "requester: how long to wait for each reply")
	fs.StringVar(&o.ready, "ready", "", "responder: print this line once subscribed (for scripts)")
	n := fs.Int("n", 10, "requester: number of generated requests when none are given")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}

	switch {
	case o.role != "both" && o.role != "responder" && o.role != "requester":
		return options{}, fmt.Errorf("-role %q: want responder, requester or both", o.role)
	case o.prefix == "" || strings.ContainsAny(o.prefix, "+#") || strings.HasPrefix(o.prefix, "$"):
		return options{}, fmt.Errorf("-prefix %q: want a non-empty topic name without wildcards or a leading $", o.prefix)
	case o.workers < 1:
		return options{}, fmt.Errorf("-workers %d: need at least one", o.workers)
	case o.parallel < 1:
		return options{}, fmt.Errorf("-parallel %d: need at least one", o.parallel)
	case o.timeout <= 0:
		return options{}, fmt.Errorf("-timeout %v: must be positive", o.timeout)
	case o.role == "responder" && fs.NArg() > 0:
		return options{}, fmt.Errorf("unexpected argument %q: the responder takes no requests", fs.Arg(0))
	}

	for _, a := range fs.Args() {
		r, err := parseRequest(a)
		if err != nil {
			return options{}, err
		}
		o.requests = append(o.requests, r)
	}
	if len(o.requests) == 0 && o.role != "responder" {
		if *n < 1 {
			return options{}, fmt.Errorf("-n %d: need at least one request", *n)
		}
		o.requests = generate(*n)
	}
	return o, nil
}
