// Command mqtt publishes, subscribes, measures and demonstrates MQTT from the
// command line, with the flags that mosquitto_pub and mosquitto_sub users
// know:
//
//	mqtt pub -h 127.0.0.1 -t sensors/1 -m 21.5 -q 1
//	mqtt sub -h 127.0.0.1 -t 'sensors/#' -v
//	mqtt bench --publishers 4 --count 10000 --qos 1
//	mqtt demo
//
// Exit status: 0 on success, 1 when connecting, publishing or receiving
// fails, 2 for a usage error, 3 when sub -W times out.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
