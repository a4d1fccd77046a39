package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain checks that neither the clients nor the embedded broker leave a
// goroutine behind once run has returned.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDemo runs the demo on its embedded broker: every message must be
// printed as received, at the QoS it was published with, and the run must
// end with the summary and no error.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var out strings.Builder
	err := run(ctx, nil, &out)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, want := range []string{
		"[broker] embedded mochi-mqtt listening on mqtt://127.0.0.1:",
		"[controller] received demo/sensor/temp QoS 0: 21.0\n",
		"[sensor] received demo/cmd QoS 0: led=on\n",
		"[controller] received demo/sensor/temp QoS 1: 21.5\n",
		"[sensor] received demo/cmd QoS 1: led=blink\n",
		"[controller] received demo/sensor/temp QoS 2: 22.0\n",
		"[sensor] received demo/cmd QoS 2: led=off\n",
		"[sensor] disconnected\n",
		"[controller] disconnected\n",
		"[broker] stopped\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if want := "demo: 6 messages delivered both ways at QoS 0, 1 and 2\n"; !strings.HasSuffix(out.String(), want) {
		t.Errorf("output does not end with %q", want)
	}
}

// TestDemoUnreachableServer checks that a broker that cannot be reached
// ends the run with an error that names it, and quickly.
func TestDemoUnreachableServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var out strings.Builder
	err := run(ctx, []string{"-server", "mqtt://127.0.0.1:1"}, &out)
	if err == nil {
		t.Fatalf("run succeeded against a closed port; output:\n%s", out.String())
	}
	if !strings.Contains(err.Error(), "mqtt://127.0.0.1:1") {
		t.Errorf("error %q does not name the server", err)
	}
}
