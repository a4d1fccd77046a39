//go:build !js

package websocket_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
)

// testTimeout bounds every wait in a test so a broken client fails instead
// of hanging.
const testTimeout = 15 * time.Second

var clientSeq atomic.Int64

// uniqueID returns a client ID (and topic prefix) unique within the test
// binary.
func uniqueID(testing.TB) string {
	return fmt.Sprintf("ws%d-%d", time.Now().UnixNano()%1e6, clientSeq.Add(1))
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// connect connects with cfg and closes the client at the end of the test.
func connect(t testing.TB, cfg mqtt.Config) *mqtt.Client {
	t.Helper()
	c, err := mqtt.Connect(testContext(t), cfg)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// receive waits for one message on ch.
func receive(t testing.TB, ch <-chan mqtt.Message) mqtt.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("message channel closed")
		}
		return m
	case <-time.After(testTimeout):
		t.Fatal("no message within the test timeout")
	}
	return mqtt.Message{}
}

// waitEvent waits for an event of kind on c's events and returns it.
func waitEvent(t testing.TB, c *mqtt.Client, kind mqtt.EventKind) mqtt.Event {
	t.Helper()
	timeout := time.After(testTimeout)
	for {
		select {
		case e, ok := <-c.Events():
			if !ok {
				t.Fatalf("events closed before %v", kind)
			}
			if e.Kind == kind {
				return e
			}
		case <-timeout:
			t.Fatalf("no %v event within the test timeout", kind)
		}
	}
}
