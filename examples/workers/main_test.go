package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// With -procs the program re-executes itself as worker processes; in
	// a test, that is the test binary, which then acts as the program.
	if slices.Contains(os.Args, "-process") {
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

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

// TestWorkersProcesses runs the pool as three worker processes of two
// workers each, with persistent sessions, against a real mosquitto,
// publishes jobs at QoS 1 and checks that every job was processed exactly
// once, that more than one process took a share, and that the summary's
// per-process counts match the lines each process printed.
func TestWorkersProcesses(t *testing.T) {
	t.Parallel()
	const (
		procs = 3
		jobs  = 300
	)
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"-server", b.URL(), "-procs", fmt.Sprint(procs), "-workers", "2", "-group", "ptest",
			"-filter", "pjobs/#", "-count", fmt.Sprint(jobs), "-ready", "READY"}, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() || lines.Text() != "READY" {
		t.Fatalf("the pool did not get ready: %q %v", lines.Text(), lines.Err())
	}

	pub, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{b.URL()}, ClientID: "pjobs-publisher"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for i := range jobs {
		if err := pub.Publish(ctx, mqtt.Message{Topic: fmt.Sprintf("pjobs/%d", i), Payload: []byte(fmt.Sprint(i)), QoS: mqtt.AtLeastOnce}); err != nil {
			t.Fatal(err)
		}
	}

	seen := make(map[string]int)       // job topic → times processed
	perProcess := make(map[string]int) // "process P" → jobs processed, from the job lines
	summaries := make(map[string]string)
	var summary string
	for lines.Scan() {
		line := lines.Text()
		who, rest, ok := strings.Cut(line, ": ")
		switch {
		case strings.HasPrefix(line, "processed "):
			summary = line
		case !ok:
			t.Fatalf("unexpected line %q", line)
		case strings.HasPrefix(rest, "processed "):
			summaries[who] = rest
		default:
			proc, _, isWorker := strings.Cut(who, " worker ")
			if !isWorker || !strings.HasPrefix(proc, "process ") {
				t.Fatalf("line %q does not name its process and worker", line)
			}
			topic, payload, _ := strings.Cut(rest, " ")
			if topic != "pjobs/"+payload {
				t.Errorf("line %q: payload does not match the topic", line)
			}
			seen[topic]++
			perProcess[proc]++
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}

	for i := range jobs {
		if n := seen[fmt.Sprintf("pjobs/%d", i)]; n != 1 {
			t.Errorf("job %d processed %d times, want exactly once", i, n)
		}
	}
	if len(seen) != jobs {
		t.Errorf("%d distinct jobs processed, want %d", len(seen), jobs)
	}
	if len(perProcess) < 2 {
		t.Errorf("work was not spread across processes: %v", perProcess)
	}
	if len(summaries) != procs {
		t.Errorf("summaries of %d processes, want %d: %v", len(summaries), procs, summaries)
	}
	var parts []string
	for p := range procs {
		who := fmt.Sprintf("process %d", p)
		if want := fmt.Sprintf("processed %d messages", perProcess[who]); !strings.HasPrefix(summaries[who], want) {
			t.Errorf("%s summary %q, want it to start with %q", who, summaries[who], want)
		}
		parts = append(parts, fmt.Sprintf("%s: %d", who, perProcess[who]))
	}
	if want := fmt.Sprintf("processed %d messages (%s)", jobs, strings.Join(parts, ", ")); summary != want {
		t.Errorf("summary %q, want %q", summary, want)
	}
	t.Logf("jobs per process: %v", perProcess)
}

func TestWorkersFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-workers", "0"},
		{"-group", "a/b"},
		{"extra"},
		{"-procs", "-1"},
		{"-procs", "2", "-process", "0"},
	} {
		if err := run(t.Context(), args, io.Discard); err == nil {
			t.Errorf("run %q succeeded", args)
		}
	}
}
