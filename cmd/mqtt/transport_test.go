package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestTransports publishes and subscribes through --server URLs of every
// plain transport the broker offers: TCP, WebSocket and a unix socket.
func TestTransports(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokertest.Options{WebSocket: true, Unix: true})
	for _, c := range []struct{ name, url string }{
		{"tcp", b.URL()},
		{"websocket", b.WebSocketURL()},
		{"unix", "unix://" + b.UnixPath()},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			topic := "cli/transport/" + c.name
			sub := start(t, "sub", "--server", c.url, "-t", topic, "-q", "1", "-C", "1", "-d")
			sub.stderr.waitFor(t, "subscribed to", sub.done)
			if r := cli(t, "", "pub", "--server", c.url, "-t", topic, "-m", "via "+c.name, "-q", "1"); r.code != exitOK {
				t.Fatalf("pub: exit status %d; stderr:\n%s", r.code, r.stderr)
			}
			if code := sub.wait(t); code != exitOK {
				t.Fatalf("sub: exit status %d; stderr:\n%s", code, sub.stderr)
			}
			if got, want := sub.stdout.String(), "via "+c.name+"\n"; got != want {
				t.Errorf("sub printed %q, want %q", got, want)
			}
		})
	}
}

// TestConfigFromFlags checks how connection flags become a Config.
func TestConfigFromFlags(t *testing.T) {
	t.Parallel()
	pw := func(s string) []byte { return []byte(s) }
	for _, c := range []struct {
		args []string
		want mqtt.Config
	}{
		{[]string{"-h", "127.0.0.1", "-p", "1884", "-i", "me", "-k", "0", "-V", "mqttv311"},
			mqtt.Config{Servers: []string{"mqtt://127.0.0.1:1884"}, ClientID: "me", KeepAlive: -1, Version: mqtt.Version311, CleanStart: true}},
		{[]string{"-h", "::1", "-i", "me", "-c", "-u", "u", "-P", "", "-V", "5"},
			mqtt.Config{Servers: []string{"mqtt://[::1]:1883"}, ClientID: "me", Username: "u", Password: pw(""), KeepAlive: time.Minute,
				Version: mqtt.Version5, SessionExpiry: (1<<32 - 1) * time.Second}},
		{[]string{"-L", "mqtt://user:secret@127.0.0.1:2000/a/b", "-i", "me", "-x", "30", "-k", "5"},
			mqtt.Config{Servers: []string{"mqtt://127.0.0.1:2000"}, ClientID: "me", Username: "user", Password: pw("secret"),
				KeepAlive: 5 * time.Second, CleanStart: true, SessionExpiry: 30 * time.Second}},
		{[]string{"--server", "ws://127.0.0.1:8080/mqtt", "-i", "me", "--will-topic", "w", "--will-payload", "bye", "--will-qos", "2", "--will-retain"},
			mqtt.Config{Servers: []string{"ws://127.0.0.1:8080/mqtt"}, ClientID: "me", KeepAlive: time.Minute, CleanStart: true,
				Will: &mqtt.Message{Topic: "w", Payload: []byte("bye"), QoS: 2, Retain: true}}},
	} {
		t.Run(fmt.Sprint(c.args), func(t *testing.T) {
			t.Parallel()
			var f connFlags
			fs := newTestFlagSet(&f)
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			got, err := f.config(fs)
			if err != nil {
				t.Fatal(err)
			}
			got.ConnectTimeout = 0
			if diff := cmp.Diff(c.want, got, cmpopts.IgnoreUnexported(mqtt.Message{})); diff != "" {
				t.Errorf("Config (-want +got):\n%s", diff)
			}
		})
	}
}

// newTestFlagSet registers the connection flags of f on a new flag set.
func newTestFlagSet(f *connFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f.register(fs)
	return fs
}

// TestSubReconnects restarts the broker under a running sub: it must say
// that the connection was lost, reconnect, subscribe again and go on
// receiving.
func TestSubReconnects(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokertest.Options{})
	sub := start(t, "sub", "--server", b.URL(), "-t", "cli/restart", "-q", "1", "-C", "1", "-d")
	sub.stderr.waitFor(t, "subscribed to", sub.done)
	b.Stop(t)
	sub.stderr.waitFor(t, "connection lost:", sub.done)
	b.Restart(t)
	sub.stderr.waitFor(t, "subscribed again", sub.done)
	if r := cli(t, "", "pub", "--server", b.URL(), "-t", "cli/restart", "-m", "after the restart", "-q", "1"); r.code != exitOK {
		t.Fatalf("pub: exit status %d; stderr:\n%s", r.code, r.stderr)
	}
	if code := sub.wait(t); code != exitOK {
		t.Fatalf("sub: exit status %d; stderr:\n%s", code, sub.stderr)
	}
	if got, want := sub.stdout.String(), "after the restart\n"; got != want {
		t.Errorf("sub printed %q, want %q", got, want)
	}
}

// TestPubLinesInterrupted checks that an interrupt ends pub -l while it
// waits for more input, with status 0, once the lines read so far are
// published.
func TestPubLinesInterrupted(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokertest.Options{})
	sub := start(t, "sub", "--server", b.URL(), "-t", "cli/lines", "-q", "1", "-C", "2", "-d")
	sub.stderr.waitFor(t, "subscribed to", sub.done)

	ctx, interrupt := context.WithTimeout(context.Background(), testTimeout)
	defer interrupt()
	stdin, input := io.Pipe()
	defer input.Close()
	stderr := newSyncBuffer()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"pub", "--server", b.URL(), "-t", "cli/lines", "-q", "1", "-l", "-d"}, stdin, io.Discard, stderr)
	}()
	if _, err := io.WriteString(input, "one\ntwos\n"); err != nil {
		t.Fatal(err)
	}
	if c := sub.wait(t); c != exitOK {
		t.Fatalf("sub: exit status %d; stderr:\n%s", c, sub.stderr)
	}
	if got, want := sub.stdout.String(), "one\ntwos\n"; got != want {
		t.Errorf("sub printed %q, want %q", got, want)
	}
	// The broker may forward the second line before pub has its PUBACK.
	stderr.waitFor(t, "published 4 bytes", make(chan struct{}))
	// pub now waits for a third line that does not come.
	interrupt()
	select {
	case c := <-code:
		if c != exitOK {
			t.Errorf("pub: exit status %d after the interrupt; stderr:\n%s", c, stderr.String())
		}
	case <-time.After(testTimeout):
		t.Fatal("pub did not end after the interrupt")
	}
}
