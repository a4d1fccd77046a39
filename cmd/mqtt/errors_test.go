package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/b4e21b16/mqtt/internal/brokertest"
)

// wantFailure checks a command's exit status and that its stderr holds
// every one of wants.
func wantFailure(t *testing.T, r result, code int, wants ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d; stderr:\n%s", r.code, code, r.stderr)
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q; it is:\n%s", w, r.stderr)
		}
	}
}

// TestUsageErrors checks that mistakes on the command line end with status
// 2 and a message that says what is wrong, before anything is dialed (the
// address given, port 1 of 127.0.0.1, would refuse a connection with
// status 1).
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	nowhere := []string{"-h", "127.0.0.1", "-p", "1"}
	for _, c := range []struct {
		name  string
		args  []string
		wants []string
	}{
		{"no command", nil, []string{"Usage:", "mqtt pub"}},
		{"unknown command", []string{"publish"}, []string{`unknown command "publish"`, "Usage:"}},
		{"unknown flag", []string{"pub", "--nope"}, []string{"flag provided but not defined: -nope", "mqtt pub --help"}},
		{"flag without value", []string{"sub", "-t"}, []string{"flag needs an argument: -t"}},
		{"stray argument", []string{"pub", "-t", "a", "-m", "x", "extra"}, []string{`unexpected argument "extra"`}},
		{"no topic", append([]string{"pub", "-m", "x"}, nowhere...), []string{"no topic", "-t"}},
		{"no message", append([]string{"pub", "-t", "a"}, nowhere...), []string{"exactly one of -m"}},
		{"two messages", append([]string{"pub", "-t", "a", "-m", "x", "-n"}, nowhere...), []string{"exactly one of -m"}},
		{"wildcard topic", append([]string{"pub", "-t", "a/+/b", "-m", "x"}, nowhere...), []string{`invalid topic "a/+/b" (-t)`, "wildcard", "mqtt sub"}},
		{"empty topic", append([]string{"pub", "-t", "", "-m", "x"}, nowhere...), []string{"no topic"}},
		{"bad filter", append([]string{"sub", "-t", "a/#/b"}, nowhere...), []string{`invalid topic filter "a/#/b" (-t)`, "# must be the last level"}},
		{"bad plus", append([]string{"sub", "-t", "ok", "-t", "a+/b"}, nowhere...), []string{`invalid topic filter "a+/b"`, "single-level wildcard"}},
		{"no filter", append([]string{"sub"}, nowhere...), []string{"at least one topic filter"}},
		{"qos", append([]string{"pub", "-t", "a", "-m", "x", "-q", "3"}, nowhere...), []string{"-q 3: QoS is 0, 1 or 2"}},
		{"version", append([]string{"sub", "-t", "a", "-V", "4"}, nowhere...), []string{`-V "4": unknown protocol version`}},
		{"version 3.1", append([]string{"sub", "-t", "a", "-V", "mqttv31"}, nowhere...), []string{"MQTT 3.1 is not supported"}},
		{"port", []string{"pub", "-t", "a", "-m", "x", "-p", "70000"}, []string{"-p 70000"}},
		{"server and host", []string{"pub", "-t", "a", "-m", "x", "-h", "x", "--server", "mqtt://127.0.0.1:1"}, []string{"--server replaces -h"}},
		{"server not a URL", []string{"pub", "-t", "a", "-m", "x", "--server", "127.0.0.1"}, []string{"is not a URL"}},
		{"tls on plain server", []string{"pub", "-t", "a", "-m", "x", "--server", "mqtt://127.0.0.1:1", "--insecure"}, []string{"not a TLS URL"}},
		{"server scheme", []string{"pub", "-t", "a", "-m", "x", "--server", "http://127.0.0.1:1"}, []string{`invalid server URL "http://127.0.0.1:1"`}},
		{"password without user on 3.1.1", []string{"pub", "-t", "a", "-m", "x", "-h", "127.0.0.1", "-p", "1", "-V", "311", "-P", "pw"}, []string{"MQTT 3.1.1 allows a password only with a user name"}},
		{"L scheme", []string{"pub", "-m", "x", "-L", "http://127.0.0.1/a"}, []string{"-L wants a mqtt:// or mqtts:// URL"}},
		{"cert without key", append([]string{"pub", "-t", "a", "-m", "x", "--cert", "c.pem"}, nowhere...), []string{"--cert and --key go together"}},
		{"clean session needs id", append([]string{"sub", "-t", "a", "-c"}, nowhere...), []string{"-c keeps a session", "-i"}},
		{"will without topic", append([]string{"pub", "-t", "a", "-m", "x", "--will-payload", "bye"}, nowhere...), []string{"need --will-topic"}},
		{"will wildcard", append([]string{"pub", "-t", "a", "-m", "x", "--will-topic", "a/#"}, nowhere...), []string{`invalid topic "a/#" (--will-topic)`}},
		{"json and v", append([]string{"sub", "-t", "a", "--json", "-v"}, nowhere...), []string{"--json"}},
		{"user property", append([]string{"pub", "-t", "a", "-m", "x", "--user-property", "novalue"}, nowhere...), []string{"want name=value"}},
		{"bench size", append([]string{"bench", "--size", "4"}, nowhere...), []string{"--size 4"}},
		{"bench progress", append([]string{"bench", "--progress", "fancy"}, nowhere...), []string{`--progress "fancy"`}},
		{"demo argument", []string{"demo", "now"}, []string{`unexpected argument "now"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			wantFailure(t, cli(t, "", c.args...), exitUsage, c.wants...)
		})
	}
}

// TestHelp checks that --help prints a command's flags on stdout with
// status 0, and that -h is the host, as for mosquitto_pub.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"pub", "sub", "bench", "demo"} {
		r := cli(t, "", cmd, "--help")
		if r.code != exitOK || !strings.Contains(r.stdout, "Usage: mqtt "+cmd) {
			t.Errorf("%s --help: exit status %d, stdout:\n%s", cmd, r.code, r.stdout)
		}
	}
	if r := cli(t, "", "--help"); r.code != exitOK || !strings.Contains(r.stdout, "mqtt sub") {
		t.Errorf("--help: exit status %d, stdout:\n%s", r.code, r.stdout)
	}
	if r := cli(t, "", "pub", "-t", "a", "-m", "x", "-h"); r.code != exitUsage || !strings.Contains(r.stderr, "flag needs an argument: -h") {
		t.Errorf("-h without a host: exit status %d, stderr:\n%s", r.code, r.stderr)
	}
}

// TestConnectionRefused runs each command against a closed port: status 1
// and a message naming the address and what to do.
func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	addr := closedPort(t)
	host, port := hostPort(t, addr)
	want := fmt.Sprintf("cannot connect to %s: connection refused; is a broker running there? choose another with -h/-p or --server", addr)
	for _, args := range [][]string{
		{"pub", "-h", host, "-p", port, "-t", "a", "-m", "x"},
		{"sub", "-h", host, "-p", port, "-t", "a"},
		{"pub", "--server", "mqtt://" + addr, "-t", "a", "-m", "x"},
		{"pub", "-L", "mqtt://" + addr + "/a", "-m", "x"},
		{"bench", "--server", "mqtt://" + addr},
		{"demo", "--server", "mqtt://" + addr},
	} {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			t.Parallel()
			wantFailure(t, cli(t, "", args...), exitFailure, want)
		})
	}
}

// TestBadCredentials connects to a broker that knows one user: wrong or
// missing credentials end with status 1 and the broker's reason, over
// both protocol versions; the right ones, also given in -L, work.
func TestBadCredentials(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokertest.Options{Users: map[string]string{"alice": "s3cret"}})
	host, port := hostPort(t, b.Addr())
	base := []string{"pub", "-h", host, "-p", port, "-t", "cli/creds", "-m", "x"}
	for _, c := range []struct {
		name  string
		args  []string
		wants []string
	}{
		{"wrong password v5", []string{"-V", "5", "-u", "alice", "-P", "wrong"}, []string{"refused the connection", "check the user name and password (-u and -P)"}},
		{"wrong password v311", []string{"-V", "311", "-u", "alice", "-P", "wrong"}, []string{"refused the connection", "check the user name and password (-u and -P)"}},
		{"anonymous", nil, []string{"refused the connection", "check the user name and password"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := cli(t, "", append(base, c.args...)...)
			wantFailure(t, r, exitFailure, append(c.wants, b.Addr())...)
			if strings.Contains(r.stderr, "wrong") {
				t.Errorf("stderr shows the password: %s", r.stderr)
			}
		})
	}
	t.Run("right", func(t *testing.T) {
		t.Parallel()
		if r := cli(t, "", append(base, "-u", "alice", "-P", "s3cret")...); r.code != exitOK {
			t.Errorf("exit status %d; stderr:\n%s", r.code, r.stderr)
		}
		if r := cli(t, "", "pub", "-L", "mqtt://alice:s3cret@"+b.Addr()+"/cli/creds", "-m", "x"); r.code != exitOK {
			t.Errorf("-L: exit status %d; stderr:\n%s", r.code, r.stderr)
		}
	})
}

// TestSubTimeout checks -W: with no message coming, sub ends with status 3
// and says how many of -C arrived.
func TestSubTimeout(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokertest.Options{})
	r := cli(t, "", "sub", "--server", b.URL(), "-t", "cli/quiet", "-C", "2", "-W", "1")
	wantFailure(t, r, exitTimeout, "timed out after 1s with 0 of 2 messages (-C 2)")
	r = cli(t, "", "sub", "--server", b.URL(), "-t", "cli/quiet", "-W", "1")
	wantFailure(t, r, exitTimeout, "timed out after 1s (-W) with 0 messages received")
}
