package main

import (
	"context"
	"fmt"
	"io"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // connecting, publishing or receiving failed
	exitUsage   = 2 // bad flags or arguments
	exitTimeout = 3 // sub -W ran out before -C messages arrived
)

const usageText = `mqtt: publish, subscribe, benchmark and demonstrate MQTT.

Usage:
  mqtt pub   [flags]   publish a message, a file or stdin lines
  mqtt sub   [flags]   subscribe and print what arrives
  mqtt bench [flags]   measure throughput and latency against a broker
  mqtt demo  [flags]   show messages flowing both ways at QoS 0, 1 and 2

Run "mqtt COMMAND --help" for the flags of a command. As with mosquitto_pub
and mosquitto_sub, -h is the broker host, so help is --help.

Exit status: 0 success, 1 runtime or connection error, 2 usage error,
3 sub timed out (-W).
`

// command is one subcommand: it parses args and does its work, returning an
// exit status. Messages for the user go to stderr.
type command func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int

var commands = map[string]command{
	"pub":   runPub,
	"sub":   runSub,
	"bench": runBench,
	"demo":  runDemo,
}

// run is the whole program: main passes it the process's arguments (without
// the program name) and streams, and exits with what it returns. Tests call
// it in process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	switch args[0] {
	case "help", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mqtt: unknown command %q\n\n%s", args[0], usageText)
		return exitUsage
	}
	return cmd(ctx, args[1:], stdin, stdout, stderr)
}
