package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/creack/pty"
)

// summary is the parsed "name: value" lines of a bench summary.
type summary map[string]string

// parseSummary reads the lines after "summary" up to the histogram.
func parseSummary(t *testing.T, out string) summary {
	t.Helper()
	_, after, ok := strings.Cut(out, "\nsummary\n")
	if !ok {
		t.Fatalf("no summary in:\n%s", out)
	}
	s := summary{}
	sc := bufio.NewScanner(strings.NewReader(after))
	for sc.Scan() && sc.Text() != "" {
		name, value, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			t.Fatalf("summary line %q is not name: value", sc.Text())
		}
		s[name] = value
	}
	return s
}

func (s summary) int(t *testing.T, name string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s[name], 10, 64)
	if err != nil {
		t.Fatalf("summary %s: %v", name, err)
	}
	return n
}

func (s summary) duration(t *testing.T, name string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s[name])
	if err != nil {
		t.Fatalf("summary %s: %v", name, err)
	}
	return d
}

func (s summary) rate(t *testing.T, name string) float64 {
	t.Helper()
	v, ok := strings.CutSuffix(s[name], " msg/s")
	f, err := strconv.ParseFloat(v, 64)
	if !ok || err != nil {
		t.Fatalf("summary %s = %q, want a number of msg/s", name, s[name])
	}
	return f
}

// histogramRow matches a histogram row and captures its count.
var histogramRow = regexp.MustCompile(`^  \S.*\|[# ]{40}\| +(\d+) +\d+\.\d%$`)

// checkBench checks a bench run's output: the summary's counts match the
// run, the figures parse and are ordered, and the histogram rows add up to
// the messages received.
func checkBench(t *testing.T, out string, wantSent, wantReceived int64) {
	t.Helper()
	s := parseSummary(t, out)
	if got := s.int(t, "sent"); got != wantSent {
		t.Errorf("sent %d, want %d", got, wantSent)
	}
	if got := s.int(t, "received"); got != wantReceived {
		t.Errorf("received %d, want %d", got, wantReceived)
	}
	if got := s.int(t, "expected"); got != wantReceived {
		t.Errorf("expected %d, want %d", got, wantReceived)
	}
	if got := s.int(t, "lost"); got != 0 {
		t.Errorf("lost %d", got)
	}
	if d := s.duration(t, "duration"); d <= 0 {
		t.Errorf("duration %s", d)
	}
	if r := s.rate(t, "publish throughput"); r <= 0 {
		t.Errorf("publish throughput %v", r)
	}
	if r := s.rate(t, "receive throughput"); r <= 0 {
		t.Errorf("receive throughput %v", r)
	}
	var prev time.Duration
	for _, name := range []string{"latency p50", "latency p90", "latency p99", "latency p99.9", "latency max"} {
		d := s.duration(t, name)
		if d <= 0 || d < prev {
			t.Errorf("%s = %s after %s: latencies must be positive and ordered", name, d, prev)
		}
		prev = d
	}
	_, hist, ok := strings.Cut(out, "\nlatency histogram\n")
	if !ok {
		t.Fatalf("no histogram in:\n%s", out)
	}
	var total int64
	for _, line := range strings.Split(strings.TrimSuffix(hist, "\n"), "\n") {
		m := histogramRow.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("histogram row %q does not parse", line)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		total += n
	}
	if total != wantReceived {
		t.Errorf("histogram counts add up to %d, want %d", total, wantReceived)
	}
}

// TestBench runs short loads against mosquitto at each QoS. Its stdout is
// not a terminal, so progress comes as plain lines, without \r.
func TestBench(t *testing.T) {
	t.Parallel()
	b := startBroker(t, benchBroker)
	for _, c := range []struct {
		name       string
		args       []string
		sent, recv int64
	}{
		{"qos1 2x2000", []string{"-q", "1", "--publishers", "2", "--count", "2000"}, 4000, 4000},
		{"qos0 2 subscribers", []string{"-q", "0", "--publishers", "1", "--subscribers", "2", "--count", "500"}, 500, 1000},
		{"qos2", []string{"-q", "2", "--count", "300", "--size", "256"}, 300, 300},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := cli(t, "", append([]string{"bench", "--server", b.URL(), "--interval", "20ms"}, c.args...)...)
			t.Logf("output:\n%s", r.stdout)
			if r.code != exitOK {
				t.Fatalf("exit status %d; stderr:\n%s", r.code, r.stderr)
			}
			checkBench(t, r.stdout, c.sent, c.recv)
			if strings.Contains(r.stdout, "\r") {
				t.Error("progress to a non-terminal uses \\r")
			}
			progress := regexp.MustCompile(`(?m)^\[ *\d+\.\d+s\] sent \d+/\d+`).FindAllString(r.stdout, -1)
			if len(progress) == 0 {
				t.Error("no progress lines")
			}
		})
	}
}

// TestBenchTerminal builds the mqtt binary and runs bench in a
// pseudo-terminal: progress must then be one line updated in place with
// \r, and the summary must follow.
func TestBenchTerminal(t *testing.T) {
	t.Parallel()
	b := startBroker(t, benchBroker)
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "bench", "--server", b.URL(), "-q", "1", "--publishers", "2", "--count", "3000", "--interval", "5ms")
	out := runInTerminal(t, cmd)
	// The terminal turns each \n into \r\n; the progress updates are the
	// \r that start a line without a \n before them.
	text := out
	t.Logf("output: %q", text)
	updates := strings.Count(text, "\r[")
	if updates < 2 {
		t.Errorf("%d progress updates in place (\\r[), want at least 2", updates)
	}
	if regexp.MustCompile(`\n\[ *\d+\.\d+s\] sent`).MatchString(text) {
		t.Error("a progress update starts a new line on a terminal")
	}
	checkBench(t, strings.ReplaceAll(text, "\r\n", "\n"), 6000, 6000)
}

// runInTerminal runs cmd with a pseudo-terminal as its stdin, stdout and
// stderr, and returns all it wrote there. The test keeps the terminal open
// until it has read, after the program's output, a mark it writes itself
// once the program has exited: a terminal whose last user has gone may
// report the end before the last output has been read.
func runInTerminal(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := newSyncBuffer()
	read := make(chan struct{})
	go func() {
		defer close(read)
		_, _ = io.Copy(out, master)
	}()
	waitErr := cmd.Wait()
	const mark = "END-OF-OUTPUT-MARK"
	if _, err := slave.Write([]byte(mark)); err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, mark, read)
	slave.Close()
	master.Close()
	<-read
	if waitErr != nil {
		t.Fatalf("%s: %v; output:\n%s", cmd.Path, waitErr, out)
	}
	text, _, _ := strings.Cut(out.String(), mark)
	return text
}

// buildBinary builds the command into the test's temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mqtt")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// benchBroker configures the brokers of the bench tests. Publishers run
// ahead of a subscriber that the machine slows down; mosquitto would drop
// what a subscriber's queue holds beyond max_queued_messages (1000 by
// default), and the tests check that nothing is lost.
var benchBroker = brokertest.Options{Extra: []string{"max_queued_messages 0"}}

// TestBenchTimeout checks that --timeout bounds a run that cannot finish
// in time: status 1, a message that says what to change, and the summary
// of what was done.
func TestBenchTimeout(t *testing.T) {
	t.Parallel()
	b := startBroker(t, benchBroker)
	r := cli(t, "", "bench", "--server", b.URL(), "-q", "2", "--inflight", "1", "--count", "10000000", "--subscribers", "0", "--timeout", "1")
	wantFailure(t, r, exitFailure, "stopped by --timeout 1s before the run completed; raise --timeout or lower --count")
	s := parseSummary(t, r.stdout)
	if sent := s.int(t, "sent"); sent <= 0 || sent >= 10000000 {
		t.Errorf("sent %d, want some but not all", sent)
	}
}
