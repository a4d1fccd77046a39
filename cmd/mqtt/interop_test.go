package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/creack/pty"
)

// versions are the protocol versions the interoperability tests speak, as
// given to mqtt -V and to the mosquitto clients' -V.
var versions = []struct{ ours, theirs string }{{"5", "mqttv5"}, {"311", "mqttv311"}}

// TestSubReceivesFromMosquittoPub subscribes with mqtt sub and publishes
// with the real mosquitto_pub, at every QoS over both protocol versions:
// sub -v must print "topic payload" for each message and exit after -C.
func TestSubReceivesFromMosquittoPub(t *testing.T) {
	t.Parallel()
	mosquittoPub := tool(t, "mosquitto_pub")
	b := startBroker(t, brokertest.Options{})
	host, port := hostPort(t, b.Addr())
	for _, v := range versions {
		for qos := range 3 {
			t.Run(fmt.Sprintf("v%s/qos%d", v.ours, qos), func(t *testing.T) {
				t.Parallel()
				topic := fmt.Sprintf("cli/sub/v%s/%d", v.ours, qos)
				sub := start(t, "sub", "-h", host, "-p", port, "-t", topic, "-q", fmt.Sprint(qos),
					"-V", v.ours, "-C", "2", "-v", "-d")
				sub.stderr.waitFor(t, "subscribed to "+topic, sub.done)
				if !strings.Contains(sub.stderr.String(), versionName(mustVersion(t, v.ours))) {
					t.Errorf("-d output does not name the protocol version: %s", sub.stderr)
				}
				for _, msg := range []string{"one", "two"} {
					runTool(t, mosquittoPub, "-h", host, "-p", port, "-V", v.theirs, "-q", fmt.Sprint(qos), "-t", topic, "-m", msg)
				}
				if code := sub.wait(t); code != exitOK {
					t.Fatalf("exit status %d; stderr:\n%s", code, sub.stderr)
				}
				if got, want := sub.stdout.String(), topic+" one\n"+topic+" two\n"; got != want {
					t.Errorf("stdout = %q, want %q", got, want)
				}
			})
		}
	}
}

// TestPubToMosquittoSub publishes with mqtt pub and receives with the real
// mosquitto_sub: -m at every QoS over both versions, -l lines, -f a file,
// -n a null message, and -r a retained message that a later subscriber
// gets.
func TestPubToMosquittoSub(t *testing.T) {
	t.Parallel()
	mosquittoSub := tool(t, "mosquitto_sub")
	b := startBroker(t, brokertest.Options{})
	host, port := hostPort(t, b.Addr())
	file := filepath.Join(t.TempDir(), "payload.txt")
	if err := os.WriteFile(file, []byte("from a file"), 0o600); err != nil {
		t.Fatal(err)
	}
	type tc struct {
		name  string
		args  []string
		stdin string
		want  []string
		v     string // mosquitto_sub's -V
		qos   int
	}
	var cases []tc
	for _, v := range versions {
		for qos := range 3 {
			cases = append(cases, tc{name: fmt.Sprintf("m/v%s/qos%d", v.ours, qos),
				args: []string{"-m", "hello", "-q", fmt.Sprint(qos), "-V", v.ours}, want: []string{"hello"}, v: v.theirs, qos: qos})
		}
	}
	cases = append(cases,
		tc{name: "lines", args: []string{"-l", "-q", "1"}, stdin: "first\nsecond\n\nthird\n", want: []string{"first", "second", "third"}, v: "mqttv5", qos: 1},
		tc{name: "stdin", args: []string{"-s", "-q", "1"}, stdin: "all of stdin", want: []string{"all of stdin"}, v: "mqttv5", qos: 1},
		tc{name: "file", args: []string{"-f", file, "-q", "2"}, want: []string{"from a file"}, v: "mqttv311", qos: 2},
		tc{name: "null", args: []string{"-n"}, want: []string{"(null)"}, v: "mqttv5"}, // as mosquitto_sub -v shows an empty payload
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			topic := "cli/pub/" + c.name
			lines := mosquittoSubscribe(t, mosquittoSub, "-h", host, "-p", port, "-V", c.v, "-q", fmt.Sprint(c.qos),
				"-t", topic, "-v")
			r := cli(t, c.stdin, append([]string{"pub", "-h", host, "-p", port, "-t", topic}, c.args...)...)
			if r.code != exitOK {
				t.Fatalf("pub: exit status %d; stderr:\n%s", r.code, r.stderr)
			}
			var want []string
			for _, w := range c.want {
				want = append(want, topic+" "+w)
			}
			if got := lines(len(want)); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("mosquitto_sub got %q, want %q", got, want)
			}
		})
	}

	t.Run("retain", func(t *testing.T) {
		t.Parallel()
		topic := "cli/pub/retain"
		if r := cli(t, "", "pub", "-h", host, "-p", port, "-t", topic, "-m", "kept", "-r", "-q", "1"); r.code != exitOK {
			t.Fatalf("pub: exit status %d; stderr:\n%s", r.code, r.stderr)
		}
		// A subscriber that comes later gets the retained message.
		out := runTool(t, mosquittoSub, "-h", host, "-p", port, "-t", topic, "-C", "1", "-v", "-W", "10")
		if want := topic + " kept\n"; out != want {
			t.Errorf("mosquitto_sub got %q, want %q", out, want)
		}
	})
}

// runTool runs a mosquitto client to completion and returns its stdout,
// failing the test if it fails.
func runTool(t *testing.T, path string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(path), strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// mosquittoSubscribe starts mosquitto_sub with args (which should hold -v)
// and returns once it has subscribed. The returned function waits for the
// lines of n messages and returns them; the test's cleanup stops
// mosquitto_sub. It runs in a pseudo-terminal, so that
// its output is line-buffered and its SUBACK shows as it happens; it is
// stopped rather than left to exit after -C messages, since a terminal can
// lose the last output of a process that has exited.
func mosquittoSubscribe(t *testing.T, path string, args ...string) func(n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	cmd := exec.CommandContext(ctx, path, append([]string{"-d"}, args...)...)
	tty, err := pty.Start(cmd)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(tty)
		for sc.Scan() {
			lines <- strings.TrimSuffix(sc.Text(), "\r")
		}
	}()
	stop := func() {
		cancel()
		_ = cmd.Wait()
		tty.Close()
		for range lines {
		}
	}
	t.Cleanup(stop)
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	var seen []string
	for subscribed := false; !subscribed; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("mosquitto_sub ended before subscribing: %q", seen)
			}
			seen = append(seen, l)
			subscribed = strings.Contains(l, "received SUBACK")
		case <-deadline.C:
			t.Fatalf("mosquitto_sub did not subscribe in time: %q", seen)
		}
	}
	return func(n int) []string {
		t.Helper()
		deadline := time.NewTimer(testTimeout)
		defer deadline.Stop()
		var got []string
		for len(got) < n {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("mosquitto_sub ended after %q", got)
				}
				// -d adds lines about the packets, starting "Client ",
				// and one about the subscription.
				if !strings.HasPrefix(l, "Client ") && !strings.HasPrefix(l, "Subscribed (mid") {
					got = append(got, l)
				}
			case <-deadline.C:
				t.Fatalf("mosquitto_sub printed %d of %d messages in time: %q", len(got), n, got)
			}
		}
		return got
	}
}

func mustVersion(t *testing.T, s string) (v mqttVersion) {
	t.Helper()
	v, err := parseVersion(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestSubSkipsRetained checks sub -R, which leaves out retained messages,
// and -N, which prints payloads without a newline.
func TestSubSkipsRetained(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokertest.Options{})
	if r := cli(t, "", "pub", "--server", b.URL(), "-t", "cli/stale", "-m", "old", "-r"); r.code != exitOK {
		t.Fatalf("pub: exit status %d; stderr:\n%s", r.code, r.stderr)
	}
	sub := start(t, "sub", "--server", b.URL(), "-t", "cli/stale", "-R", "-N", "-C", "2", "-d")
	sub.stderr.waitFor(t, "subscribed to", sub.done)
	for _, m := range []string{"new", "er"} {
		if r := cli(t, "", "pub", "--server", b.URL(), "-t", "cli/stale", "-m", m); r.code != exitOK {
			t.Fatalf("pub: exit status %d; stderr:\n%s", r.code, r.stderr)
		}
	}
	if code := sub.wait(t); code != exitOK {
		t.Fatalf("sub: exit status %d; stderr:\n%s", code, sub.stderr)
	}
	if got := sub.stdout.String(); got != "newer" {
		t.Errorf("sub printed %q, want %q", got, "newer")
	}
}
