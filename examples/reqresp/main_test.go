package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds each test against the broker.
const testTimeout = 30 * time.Second

// TestBoth runs both roles in one process against mosquitto with requests
// given on the command line, including ones the responder must refuse.
func TestBoth(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	var out strings.Builder
	err := run(ctx, []string{"-server", b.URL(), "-prefix", "test/both",
		"add 1 2 3", "upper hello, world", "add -5 5", "add 1 x", "sqrt 4", "add 9223372036854775807 1", "upper"}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	want := []string{
		"add 1 2 3 -> 6",
		"upper hello, world -> HELLO, WORLD",
		"add -5 5 -> 0",
		`add 1 x -> error: add: "x" is not an integer`,
		`sqrt 4 -> error: unknown operation "sqrt"`,
		"add 9223372036854775807 1 -> error: add: the sum overflows 64 bits",
		"upper -> ",
		"responder: answered 7 requests",
	}
	if diff := cmp.Diff(want, lines(out.String())); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

// TestBothGenerated sends many generated requests concurrently (more than
// -parallel, so some wait for a slot) and checks every reply.
func TestBothGenerated(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	const n = 200
	var out strings.Builder
	err := run(ctx, []string{"-server", b.URL(), "-prefix", "test/generated",
		"-n", strconv.Itoa(n), "-parallel", "50", "-workers", "3"}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := lines(out.String())
	if len(got) != n+1 {
		t.Fatalf("got %d lines, want %d:\n%s", len(got), n+1, out.String())
	}
	for i, line := range got[:n] {
		var want string
		if i%2 == 0 {
			want = fmt.Sprintf("add %d %d -> %d", i, i*i, i+i*i)
		} else {
			want = fmt.Sprintf("upper request %d -> REQUEST %d", i, i)
		}
		if line != want {
			t.Errorf("line %d = %q, want %q", i, line, want)
		}
	}
	if want := fmt.Sprintf("responder: answered %d requests", n); got[n] != want {
		t.Errorf("last line = %q, want %q", got[n], want)
	}
}

// TestSeparateRoles runs the responder and the requester as two runs, as
// two processes would, and stops the responder by cancelling its context
// as a signal would.
func TestSeparateRoles(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	respCtx, stopResponder := context.WithCancel(ctx)
	defer stopResponder()
	pr, pw := io.Pipe()
	done := make(chan struct{})
	var respErr error
	go func() {
		respErr = run(respCtx, []string{"-server", b.URL(), "-prefix", "test/roles", "-role", "responder", "-ready", "READY"}, pw)
		pw.CloseWithError(respErr)
		close(done)
	}()
	// On every path out of the test, the responder stops before goleak looks.
	defer func() {
		stopResponder()
		go io.Copy(io.Discard, pr) // the responder's last lines, if nobody read them
		<-done
	}()
	respLines := bufio.NewScanner(pr)
	if !respLines.Scan() || respLines.Text() != "READY" {
		t.Fatalf("responder did not get ready: %q %v", respLines.Text(), respLines.Err())
	}

	for round := range 2 {
		var out strings.Builder
		err := run(ctx, []string{"-server", b.URL(), "-prefix", "test/roles", "-role", "requester",
			"add 40 2", fmt.Sprintf("upper round %d", round)}, &out)
		if err != nil {
			t.Fatalf("requester round %d: %v", round, err)
		}
		want := []string{"add 40 2 -> 42", fmt.Sprintf("upper round %d -> ROUND %d", round, round)}
		if diff := cmp.Diff(want, lines(out.String())); diff != "" {
			t.Errorf("requester round %d (-want +got):\n%s", round, diff)
		}
	}

	stopResponder()
	if !respLines.Scan() || respLines.Text() != "responder: answered 4 requests" {
		t.Errorf("responder summary = %q %v", respLines.Text(), respLines.Err())
	}
	go io.Copy(io.Discard, pr)
	select {
	case <-done:
		if respErr != nil {
			t.Fatalf("responder: %v", respErr)
		}
	case <-ctx.Done():
		t.Fatal("responder did not exit")
	}
}

// TestNoResponder checks that a request nobody answers fails after
// -timeout instead of waiting forever.
func TestNoResponder(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	var out strings.Builder
	start := time.Now()
	err := run(ctx, []string{"-server", b.URL(), "-prefix", "test/nobody", "-role", "requester",
		"-timeout", "300ms", "add 1 1"}, &out)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("run = %v, want a deadline error", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the test's own deadline passed after %v", time.Since(start))
	}
	if out.Len() != 0 {
		t.Errorf("unexpected output %q", out.String())
	}
}

// TestArgs checks that bad command lines are refused before anything is
// dialed: the server is an address nothing listens on.
func TestArgs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-role", "broker"}, `-role "broker"`},
		{[]string{"-prefix", "calc/#"}, `-prefix "calc/#"`},
		{[]string{"-prefix", ""}, `-prefix ""`},
		{[]string{"-workers", "0"}, "-workers 0"},
		{[]string{"-parallel", "0"}, "-parallel 0"},
		{[]string{"-timeout", "0s"}, "-timeout 0s"},
		{[]string{"-n", "0"}, "-n 0"},
		{[]string{"-role", "responder", "add 1 2"}, "the responder takes no requests"},
		{[]string{"a/b 1"}, `request "a/b 1"`},
		{[]string{"  "}, `request "  "`},
	} {
		var out strings.Builder
		err := run(context.Background(), append([]string{"-server", "mqtt://127.0.0.1:1"}, tc.args...), &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run %q = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// TestCompute checks the responder's operations without a broker.
func TestCompute(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		op, arg, want, err string
	}{
		{"add", "1 2 3", "6", ""},
		{"add", "  -7   3 ", "-4", ""},
		{"add", "-9223372036854775808 -1", "", "overflows"},
		{"add", "", "", "no numbers"},
		{"add", "1.5", "", "not an integer"},
		{"upper", "mqtt 5.0 ünïcode", "MQTT 5.0 ÜNÏCODE", ""},
		{"lower", "X", "", "unknown operation"},
	} {
		got, err := compute(tc.op, tc.arg)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("compute(%q, %q) = %q, %v; want error containing %q", tc.op, tc.arg, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("compute(%q, %q) = %q, %v; want %q", tc.op, tc.arg, got, err, tc.want)
		}
	}
}

// lines splits output into its lines.
func lines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
