package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestConsumer runs the example against a real mosquitto: it must print the
// messages published to its topic and exit cleanly after -count of them,
// and again when its context is cancelled.
func TestConsumer(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	for _, tc := range []struct {
		name   string
		count  int
		cancel bool
	}{{"count", 3, false}, {"interrupt", 0, true}} {
		t.Run(tc.name, func(t *testing.T) {
			runCtx, interrupt := context.WithCancel(ctx)
			defer interrupt()
			pr, pw := io.Pipe()
			done := make(chan error, 1)
			go func() {
				err := run(runCtx, []string{"-server", b.URL(), "-topic", "demo/" + tc.name + "/#",
					"-count", fmt.Sprint(tc.count), "-ready", "READY"}, pw)
				pw.CloseWithError(err)
				done <- err
			}()
			lines := bufio.NewScanner(pr)
			if !lines.Scan() || lines.Text() != "READY" {
				t.Fatalf("consumer did not get ready: %q %v", lines.Text(), lines.Err())
			}
			pub, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{b.URL()}})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			for i := range 3 {
				if err := pub.Publish(ctx, mqtt.Message{Topic: fmt.Sprintf("demo/%s/%d", tc.name, i), Payload: []byte("hello"), QoS: 1}); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 3 {
				if !lines.Scan() {
					t.Fatalf("line %d: %v", i, lines.Err())
				}
				if want := fmt.Sprintf("demo/%s/%d hello", tc.name, i); lines.Text() != want {
					t.Fatalf("line %d = %q, want %q", i, lines.Text(), want)
				}
			}
			if tc.cancel {
				interrupt()
			}
			go io.Copy(io.Discard, pr)
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("run: %v", err)
				}
			case <-ctx.Done():
				t.Fatal("consumer did not exit")
			}
		})
	}
}

func TestConsumerFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-qos", "3"},
		{"-count", "-1"},
		{"extra"},
	} {
		if err := run(t.Context(), args, io.Discard); err == nil {
			t.Errorf("run %q succeeded", args)
		}
	}
}
