// Command service is the skeleton of a long-running MQTT service. One
// client, reconnecting on its own when the connection is lost, is shared
// by three parts tied together with an errgroup:
//
//   - a consumer that handles the messages of the service's input topics;
//   - a status publisher that reports every -interval that the service is
//     running and how much it has done;
//   - an event logger that logs the client's connection state changes.
//
// The client registers a last will ("lost" on the status topic), which the
// broker publishes if the service dies without saying goodbye. On SIGTERM
// or SIGINT the service stops gracefully: it publishes "stopped", sends
// DISCONNECT (so the broker discards the will) within a deadline, and exits
// with status 0. If the client stops for good, the service exits with
// status 1. Logs go to stderr through log/slog.
//
//	go run ./examples/service -server mqtt://127.0.0.1:1883 -id svc-1
//	mosquitto_sub -t 'service/svc-1/#' -v          # watch its status
//	mosquitto_pub -t service/svc-1/in/job -m work   # give it work
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/b4e21b16/mqtt"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	err := run(ctx, os.Args[1:], logger)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		logger.Error("service failed", "err", err)
		os.Exit(1)
	}
}

// config is the service's command line.
type config struct {
	server     string
	id         string
	interval   time.Duration
	maxBackoff time.Duration
	shutdown   time.Duration
}

func parseFlags(args []string, out io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("service", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&cfg.server, "server", "mqtt://127.0.0.1:1883", "broker URL")
	fs.StringVar(&cfg.id, "id", "svc-1", "client ID; topics are under service/<id>/")
	fs.DurationVar(&cfg.interval, "interval", 10*time.Second, "how often to publish the status")
	fs.DurationVar(&cfg.maxBackoff, "max-backoff", 5*time.Second, "longest wait between reconnection attempts")
	fs.DurationVar(&cfg.shutdown, "shutdown-timeout", 5*time.Second, "how long a graceful shutdown may take")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	switch {
	case fs.NArg() > 0:
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case cfg.id == "":
		return cfg, errors.New("-id must not be empty")
	case cfg.interval <= 0 || cfg.shutdown <= 0 || cfg.maxBackoff <= 0:
		return cfg, errors.New("-interval, -max-backoff and -shutdown-timeout must be positive")
	}
	return cfg, nil
}

// statusTopic is where the service reports on itself, and where its will
// goes.
func (c config) statusTopic() string { return "service/" + c.id + "/status" }

// inputFilter matches the topics the service consumes.
func (c config) inputFilter() string { return "service/" + c.id + "/in/#" }

// run is the whole service; main calls it. It returns nil after a graceful
// shutdown that ctx started.
func run(ctx context.Context, args []string, log *slog.Logger) error {
	cfg, err := parseFlags(args, os.Stderr)
	if err != nil {
		return err
	}

	connectCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := mqtt.Connect(connectCtx, mqtt.Config{
		Servers:   []string{cfg.server},
		ClientID:  cfg.id,
		KeepAlive: 30 * time.Second,
		Will:      &mqtt.Message{Topic: cfg.statusTopic(), Payload: []byte("lost"), QoS: mqtt.AtLeastOnce},
		Reconnect: mqtt.ReconnectConfig{MaxDelay: cfg.maxBackoff},
	})
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	// Close is a no-op after a successful Disconnect; on the error paths it
	// makes sure no goroutine of the client outlives run.
	defer c.Close()

	svc := &service{cfg: cfg, client: c, log: log, started: time.Now()}
	if err := svc.serve(ctx); err != nil {
		return err
	}
	return svc.shutdown()
}
