package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestCluster runs the program for a short while: it starts the cluster,
// kills the publisher's node once, and every acknowledged message arrives.
func TestCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	args := []string{"-duration", "12s", "-kill-every", "6s", "-down", "2s", "-interval", "10ms"}
	if err := run(ctx, args, strings.NewReader(""), &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Log("\n" + out.String())
	text := out.String()
	for _, want := range []string{"node 2: mqtt://127.0.0.1:", "publisher connected to node 0", "subscriber connected to node 1",
		"killed node 0, the publisher's, with SIGKILL", "node 0 is back", "failover 1: node 0 (the publisher's) killed"} {
		if !strings.Contains(text, want) {
			t.Errorf("the output has no %q", want)
		}
	}
	summary := regexp.MustCompile(`summary: (\d+) published, (\d+) acknowledged, (\d+) received, (\d+) lost`).FindStringSubmatch(text)
	if summary == nil {
		t.Fatal("no summary")
	}
	if summary[2] == "0" || summary[4] != "0" {
		t.Errorf("%s: want messages acknowledged and none lost", summary[0])
	}
}
