package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestWorkers runs a pool of three workers on a shared subscription against
// a real mosquitto, publishes jobs at QoS 1 and checks that every job was
// processed exactly once across the pool, and by more than one worker.
func TestWorkers(t *testing.T) {
	t.Parallel()
	const (
		workers = 3
		jobs    = 60
	)
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"-server", b.URL(), "-workers", fmt.Sprint(workers), "-group", "test",
			"-filter", "jobs/#", "-count", fmt.Sprint(jobs), "-ready", "READY"}, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() || lines.Text() != "READY" {
		t.Fatalf("the pool did not get ready: %q %v", lines.Text(), lines.Err())
	}

	pub, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{b.URL()}, ClientID: "jobs-publisher"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for i := range jobs {
		if err := pub.Publish(ctx, mqtt.Message{Topic: fmt.Sprintf("jobs/%d", i), Payload: []byte(fmt.Sprint(i)), QoS: mqtt.AtLeastOnce}); err != nil {
			t.Fatal(err)
		}
	}

	seen := make(map[string]int)      // job topic → times processed
	perWorker := make(map[string]int) // worker → jobs processed
	var summary string
	for lines.Scan() {
		line := lines.Text()
		if strings.HasPrefix(line, "processed ") {
			summary = line
			continue
		}
		who, job, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("unexpected line %q", line)
		}
		topic, payload, _ := strings.Cut(job, " ")
		if topic != "jobs/"+payload {
			t.Errorf("line %q: payload does not match the topic", line)
		}
		seen[topic]++
		perWorker[who]++
	}
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}

	for i := range jobs {
		if n := seen[fmt.Sprintf("jobs/%d", i)]; n != 1 {
			t.Errorf("job %d processed %d times, want exactly once", i, n)
		}
	}
	if len(seen) != jobs {
		t.Errorf("%d distinct jobs processed, want %d", len(seen), jobs)
	}
	if len(perWorker) < 2 {
		t.Errorf("work was not spread: %v", perWorker)
	}
	if want := fmt.Sprintf("processed %d messages", jobs); !strings.HasPrefix(summary, want) {
		t.Errorf("summary %q, want it to start with %q", summary, want)
	}
	t.Logf("jobs per worker: %v", perWorker)
}

func TestWorkersFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-workers", "0"},
		{"-group", "a/b"},
		{"extra"},
	} {
		if err := run(t.Context(), args, io.Discard); err == nil {
			t.Errorf("run %q succeeded", args)
		}
	}
}
