// Command demo shows the client at work in one self-contained run. It starts
// an embedded mochi-mqtt broker on a free loopback port and connects two
// clients to it:
//
//   - a "sensor", which publishes temperature readings on demo/sensor/temp
//     and subscribes to commands on demo/cmd;
//   - a "controller", which subscribes to the readings and sends commands.
//
// For each quality of service (0, 1 and 2) the sensor publishes a reading
// that the controller receives, and the controller sends a command that the
// sensor receives, so messages flow both ways at every level. Publish
// returns once the message is sent (QoS 0), acknowledged with PUBACK (QoS 1)
// or completed with PUBCOMP (QoS 2); each receiver waits in a select loop
// that also watches its connection and a timeout. Both clients then
// disconnect gracefully and the broker shuts down.
//
//	cd examples/demo && go run .
//	cd examples/demo && go run . -server mqtt://127.0.0.1:1883   # an external broker instead
//
// The whole run is bounded by a 30 s timeout; any failure ends it with a
// non-zero exit status and a message saying what went wrong.
//
// The demo is a module of its own so that the library never depends on a
// broker.
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
	"sync"
	"syscall"
	"time"

	"github.com/b4e21b16/mqtt"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

const (
	readingsTopic = "demo/sensor/temp"
	commandsTopic = "demo/cmd"

	// overallTimeout bounds the whole run, shutdown included.
	overallTimeout = 30 * time.Second
	// messageTimeout is how long a receiver waits for each message.
	messageTimeout = 5 * time.Second
	// shutdownTimeout bounds each graceful disconnect.
	shutdownTimeout = 5 * time.Second
)

// step is one round of the demo: a reading from the sensor and a command
// from the controller, both published at qos.
type step struct {
	qos     mqtt.QoS
	reading string
	command string
}

var steps = []step{
	{mqtt.AtMostOnce, "21.0", "led=on"},
	{mqtt.AtLeastOnce, "21.5", "led=blink"},
	{mqtt.ExactlyOnce, "22.0", "led=off"},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// run is the whole demo; main and the test call it.
func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(out)
	server := fs.String("server", "", "URL of an external broker to use (default: start an embedded mochi-mqtt broker)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (the only flag is -server URL)", fs.Arg(0))
	}

	ctx, cancel := context.WithTimeout(ctx, overallTimeout)
	defer cancel()

	url := *server
	if url == "" {
		addr, stopBroker, err := startBroker()
		if err != nil {
			return fmt.Errorf("start the embedded broker: %w", err)
		}
		// stopBroker runs once: on the success path below, or here when
		// run fails, after the deferred Close of both clients.
		defer stopBroker()
		url = "mqtt://" + addr
		fmt.Fprintf(out, "[broker] embedded mochi-mqtt listening on %s\n", url)
		if err := demo(ctx, url, out); err != nil {
			return err
		}
		if err := stopBroker(); err != nil {
			return fmt.Errorf("stop the embedded broker: %w", err)
		}
		fmt.Fprintln(out, "[broker] stopped")
	} else {
		fmt.Fprintf(out, "[broker] using external broker %s\n", url)
		if err := demo(ctx, url, out); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "demo: %d messages delivered both ways at QoS 0, 1 and 2\n", 2*len(steps))
	return nil
}

// startBroker runs mochi-mqtt in this process on a free loopback port, open
// to anyone, and returns its address and a function that shuts it down
// (safe to call more than once).
func startBroker() (addr string, stop func() error, err error) {
	srv := mochi.New(&mochi.Options{
		// The demo prints its own account of what happens; the broker's
		// log would only interleave with it.
		Logger: slog.New(slog.DiscardHandler),
	})
	stop = sync.OnceValue(srv.Close)
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return "", nil, err
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "demo", Address: "127.0.0.1:0"})
	if err := srv.AddListener(tcp); err != nil {
		return "", nil, err
	}
	if err := srv.Serve(); err != nil {
		stop()
		return "", nil, err
	}
	return tcp.Address(), stop, nil
}

// demo connects the sensor and the controller to the broker at url, runs
// the steps and disconnects both.
func demo(ctx context.Context, url string, out io.Writer) error {
	sensor, err := connect(ctx, url, "sensor", out)
	if err != nil {
		return err
	}
	// Close is a no-op after a successful Disconnect; on the error paths it
	// makes sure no goroutine of the client outlives run.
	defer sensor.Close()
	controller, err := connect(ctx, url, "controller", out)
	if err != nil {
		return err
	}
	defer controller.Close()

	// Subscribe at QoS 2 so that each message arrives at the QoS it was
	// published with (the broker delivers at the lower of the two).
	readings, err := subscribe(ctx, controller, "controller", readingsTopic, out)
	if err != nil {
		return err
	}
	commands, err := subscribe(ctx, sensor, "sensor", commandsTopic, out)
	if err != nil {
		return err
	}

	for _, s := range steps {
		reading := mqtt.Message{Topic: readingsTopic, Payload: []byte(s.reading), QoS: s.qos}
		if err := publish(ctx, sensor, "sensor", reading, out); err != nil {
			return err
		}
		if err := receive(ctx, controller, "controller", readings, reading, out); err != nil {
			return err
		}
		command := mqtt.Message{Topic: commandsTopic, Payload: []byte(s.command), QoS: s.qos}
		if err := publish(ctx, controller, "controller", command, out); err != nil {
			return err
		}
		if err := receive(ctx, sensor, "sensor", commands, command, out); err != nil {
			return err
		}
	}

	for _, c := range []struct {
		name   string
		client *mqtt.Client
	}{{"sensor", sensor}, {"controller", controller}} {
		shutdownCtx, cancel := context.WithTimeout(ctx, shutdownTimeout)
		err := c.client.Disconnect(shutdownCtx)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: disconnect: %w", c.name, err)
		}
		fmt.Fprintf(out, "[%s] disconnected\n", c.name)
	}
	return nil
}

// connect connects one client, with a client ID of its own per run so that
// two demos sharing an external broker do not take over each other's
// sessions.
func connect(ctx context.Context, url, name string, out io.Writer) (*mqtt.Client, error) {
	c, err := mqtt.Connect(ctx, mqtt.Config{
		Servers:        []string{url},
		ClientID:       fmt.Sprintf("demo-%s-%d", name, os.Getpid()),
		CleanStart:     true,
		KeepAlive:      30 * time.Second,
		ConnectTimeout: 10 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: connect to %s: %w (is a broker listening there? without -server the demo starts its own)", name, url, err)
	}
	fmt.Fprintf(out, "[%s] connected as %s (%s)\n", name, c.ClientID(), versionName(c.Connection().Version))
	return c, nil
}

// subscribe subscribes c to topic at QoS 2 and checks that the broker
// granted it.
func subscribe(ctx context.Context, c *mqtt.Client, name, topic string, out io.Writer) (*mqtt.Subscription, error) {
	sub, err := c.Subscribe(ctx, topic, mqtt.ExactlyOnce)
	if err != nil {
		return nil, fmt.Errorf("%s: subscribe to %s: %w", name, topic, err)
	}
	// The broker may grant less than requested; the demo needs QoS 2.
	if granted := mqtt.QoS(sub.Granted()[0].Code); granted != mqtt.ExactlyOnce {
		return nil, fmt.Errorf("%s: the broker granted only %s on %s; the demo needs QoS 2", name, granted, topic)
	}
	fmt.Fprintf(out, "[%s] subscribed to %s at QoS 2\n", name, topic)
	return sub, nil
}

// publish publishes m from c and says how the broker acknowledged it.
func publish(ctx context.Context, c *mqtt.Client, name string, m mqtt.Message, out io.Writer) error {
	if err := c.Publish(ctx, m); err != nil {
		return fmt.Errorf("%s: publish on %s at %s: %w", name, m.Topic, m.QoS, err)
	}
	ack := map[mqtt.QoS]string{
		mqtt.AtMostOnce:  "sent, no acknowledgement",
		mqtt.AtLeastOnce: "acknowledged with PUBACK",
		mqtt.ExactlyOnce: "completed with PUBREC, PUBREL, PUBCOMP",
	}[m.QoS]
	fmt.Fprintf(out, "[%s] published %s %s: %s (%s)\n", name, m.Topic, m.QoS, m.Payload, ack)
	return nil
}

// receive waits in a select loop for want to arrive on sub, for at most
// messageTimeout. Retained or other messages that an external broker may
// hold on the same topic are reported and skipped.
func receive(ctx context.Context, c *mqtt.Client, name string, sub *mqtt.Subscription, want mqtt.Message, out io.Writer) error {
	timeout := time.NewTimer(messageTimeout)
	defer timeout.Stop()
	for {
		select {
		case m, ok := <-sub.Messages():
			if !ok {
				return fmt.Errorf("%s: subscription to %s ended: %v", name, want.Topic, c.Err())
			}
			if m.Retain || string(m.Payload) != string(want.Payload) {
				fmt.Fprintf(out, "[%s] skipped a message from elsewhere on %s: %q\n", name, m.Topic, m.Payload)
				continue
			}
			fmt.Fprintf(out, "[%s] received %s %s: %s\n", name, m.Topic, m.QoS, m.Payload)
			if m.QoS != want.QoS {
				return fmt.Errorf("%s: %q arrived at %s, published at %s", name, m.Payload, m.QoS, want.QoS)
			}
			return nil
		case <-c.Done():
			return fmt.Errorf("%s: connection lost while waiting on %s: %w", name, want.Topic, c.Err())
		case <-timeout.C:
			return fmt.Errorf("%s: %q at %s did not arrive on %s within %s", name, want.Payload, want.QoS, want.Topic, messageTimeout)
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for %q on %s: %w", name, want.Payload, want.Topic, ctx.Err())
		}
	}
}

func versionName(v mqtt.ProtocolVersion) string {
	switch v {
	case mqtt.Version5:
		return "MQTT 5.0"
	case mqtt.Version311:
		return "MQTT 3.1.1"
	}
	return fmt.Sprintf("protocol version %d", byte(v))
}
