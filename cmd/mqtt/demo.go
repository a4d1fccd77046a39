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

// demoFlags are the flags of mqtt demo.
type demoFlags struct {
	server, version string
	timeout         int
}

// runDemo is mqtt demo: two clients, alice and bob, each subscribe to their
// own topic and send the other a message at QoS 0, 1 and 2, narrating each
// step. Without --server it runs an embedded broker for the purpose.
func runDemo(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	var f demoFlags
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.StringVar(&f.server, "server", "", "broker `URL` to use (default: start an embedded broker on a free loopback port)")
	fs.StringVar(&f.version, "V", "", "protocol `version`: mqttv5 (5) or mqttv311 (311)")
	fs.IntVar(&f.timeout, "timeout", 30, "give up after this many `seconds`")
	if err := parseFlags(fs, args, stdout); err != nil {
		return fail(stderr, "demo", err)
	}
	if err := demo(ctx, &f, stdout); err != nil {
		return fail(stderr, "demo", err)
	}
	return exitOK
}

// demoPeer is one of the two demo clients.
type demoPeer struct {
	name   string
	client *mqtt.Client
	inbox  string // the topic it subscribes to
	sub    *mqtt.Subscription
}

func demo(ctx context.Context, f *demoFlags, out io.Writer) error {
	v, err := parseVersion(f.version)
	if err != nil {
		return err
	}
	if f.timeout <= 0 {
		return usagef("--timeout %d: want a positive number of seconds", f.timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(f.timeout)*time.Second)
	defer cancel()

	server := f.server
	if server == "" {
		b, err := startEmbeddedBroker()
		if err != nil {
			return fmt.Errorf("starting the embedded broker: %w", err)
		}
		defer b.close()
		server = b.url
		fmt.Fprintf(out, "[broker] embedded mochi-mqtt broker listening on %s\n", server)
		if err := converse(ctx, server, v, out); err != nil {
			return err
		}
		if err := b.close(); err != nil {
			return fmt.Errorf("stopping the embedded broker: %w", err)
		}
		fmt.Fprintln(out, "[broker] stopped")
	} else {
		fmt.Fprintf(out, "[broker] using %s\n", displayAddr(server))
		if err := converse(ctx, server, v, out); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "demo: 6 messages delivered, both ways at QoS 0, 1 and 2")
	return nil
}

// converse connects alice and bob to server and has them exchange the
// messages.
func converse(ctx context.Context, server string, v mqtt.ProtocolVersion, out io.Writer) error {
	prefix := "mqtt-demo/" + randomHex(4) + "/"
	alice := &demoPeer{name: "alice", inbox: prefix + "alice"}
	bob := &demoPeer{name: "bob", inbox: prefix + "bob"}
	for _, p := range []*demoPeer{alice, bob} {
		c, err := mqtt.Connect(ctx, mqtt.Config{
			Servers:    []string{server},
			ClientID:   "demo-" + p.name + "-" + randomHex(3),
			CleanStart: true,
			Version:    v,
		})
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, connectFailure(server, err))
		}
		defer c.Close()
		p.client = c
		fmt.Fprintf(out, "[%s] connected as %s (%s)\n", p.name, c.ClientID(), versionName(c.Connection().Version))
	}
	for _, p := range []*demoPeer{alice, bob} {
		// QoS 2 so that every message arrives at the QoS it was sent with.
		s, err := p.client.Subscribe(ctx, p.inbox, mqtt.ExactlyOnce)
		if err != nil {
			return fmt.Errorf("%s: subscribe to %s: %w", p.name, p.inbox, runFailure(err))
		}
		p.sub = s
		fmt.Fprintf(out, "[%s] subscribed to %s (granted %s)\n", p.name, p.inbox, mqtt.QoS(s.Granted()[0].Code))
	}
	for _, qos := range []mqtt.QoS{mqtt.AtMostOnce, mqtt.AtLeastOnce, mqtt.ExactlyOnce} {
		fmt.Fprintf(out, "-- %s\n", qos)
		for _, pair := range [][2]*demoPeer{{alice, bob}, {bob, alice}} {
			if err := send(ctx, pair[0], pair[1], qos, out); err != nil {
				return err
			}
		}
	}
	for _, p := range []*demoPeer{alice, bob} {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := p.client.Disconnect(dctx)
		cancel()
		if err != nil && !errors.Is(err, mqtt.ErrClosed) {
			return fmt.Errorf("%s: disconnect: %w", p.name, err)
		}
		fmt.Fprintf(out, "[%s] disconnected\n", p.name)
	}
	return nil
}

// handshakes says how each QoS completes a publish.
var handshakes = map[mqtt.QoS]string{
	mqtt.AtMostOnce:  "sent, no acknowledgement at QoS 0",
	mqtt.AtLeastOnce: "acknowledged with PUBACK",
	mqtt.ExactlyOnce: "completed with PUBREC, PUBREL, PUBCOMP",
}

// send publishes a message from one peer to the other at qos and waits
// until the other receives it.
func send(ctx context.Context, from, to *demoPeer, qos mqtt.QoS, out io.Writer) error {
	text := fmt.Sprintf("hello %s, from %s at QoS %d", to.name, from.name, qos)
	if err := from.client.Publish(ctx, mqtt.Message{Topic: to.inbox, Payload: []byte(text), QoS: qos}); err != nil {
		return fmt.Errorf("%s: publish to %s: %w", from.name, to.inbox, runFailure(err))
	}
	fmt.Fprintf(out, "[%s] -> %s: %q %s\n", from.name, to.inbox, text, handshakes[qos])
	wait := time.NewTimer(5 * time.Second)
	defer wait.Stop()
	for {
		select {
		case m, ok := <-to.sub.Messages():
			if !ok {
				return fmt.Errorf("%s: subscription ended: %w", to.name, to.client.Err())
			}
			if string(m.Payload) != text {
				fmt.Fprintf(out, "[%s] ignored another message on %s\n", to.name, m.Topic)
				continue
			}
			fmt.Fprintf(out, "[%s] <- %s: %q received at %s\n", to.name, m.Topic, m.Payload, m.QoS)
			if m.QoS != qos {
				return fmt.Errorf("%s: the message arrived at %s, sent at %s", to.name, m.QoS, qos)
			}
			return nil
		case <-to.client.Done():
			return fmt.Errorf("%s: %w", to.name, runFailure(to.client.Err()))
		case <-wait.C:
			return fmt.Errorf("%s: %q did not arrive within 5s", to.name, text)
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for %q: %w", to.name, text, ctx.Err())
		}
	}
}
