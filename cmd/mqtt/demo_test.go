package main

import (
	"strings"
	"testing"

	"github.com/b4e21b16/mqtt/internal/brokertest"
)

// demoWants are the lines every demo run prints: each message sent and
// received, both ways, at each QoS.
func demoWants() []string {
	var wants []string
	for _, q := range []string{"0", "1", "2"} {
		for _, pair := range [][2]string{{"alice", "bob"}, {"bob", "alice"}} {
			from, to := pair[0], pair[1]
			text := `"hello ` + to + `, from ` + from + ` at QoS ` + q + `"`
			wants = append(wants,
				"["+from+"] -> mqtt-demo/",
				text+map[string]string{"0": " sent, no acknowledgement at QoS 0", "1": " acknowledged with PUBACK", "2": " completed with PUBREC, PUBREL, PUBCOMP"}[q],
				"["+to+"] <- mqtt-demo/",
				text+" received at QoS "+q,
			)
		}
	}
	return append(wants, "[alice] disconnected\n", "[bob] disconnected\n")
}

// TestDemo runs the demo on its embedded broker, and against mosquitto
// with --server: it must exit 0 after showing the six messages.
func TestDemo(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokertest.Options{})
	for _, c := range []struct {
		name  string
		args  []string
		wants []string
	}{
		{"embedded", []string{"demo"}, []string{"[broker] embedded mochi-mqtt broker listening on mqtt://127.0.0.1:", "[broker] stopped\n"}},
		{"mosquitto 3.1.1", []string{"demo", "--server", b.URL(), "-V", "311"}, []string{"[broker] using " + b.Addr(), "(MQTT 3.1.1)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := cli(t, "", c.args...)
			t.Logf("output:\n%s", r.stdout)
			if r.code != exitOK {
				t.Fatalf("exit status %d; stderr:\n%s", r.code, r.stderr)
			}
			for _, w := range append(c.wants, demoWants()...) {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			if want := "demo: 6 messages delivered, both ways at QoS 0, 1 and 2\n"; !strings.HasSuffix(r.stdout, want) {
				t.Errorf("output does not end with %q", want)
			}
		})
	}
}
