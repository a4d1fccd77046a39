package interop

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
)

// testTimeout bounds every wait of a scenario, so a client or broker that
// hangs fails the test instead of the run.
const testTimeout = 15 * time.Second

var seq atomic.Int64

// uniqueID returns a client ID and topic prefix unique within the test
// binary; targets that share a broker never see each other's topics.
func uniqueID(t testing.TB) string {
	name := t.Name()
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	return fmt.Sprintf("%s-%d-%d", name, time.Now().UnixNano()%1e6, seq.Add(1))
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// config returns the configuration a scenario starts from: the target's
// broker and protocol version, a unique client ID, and no automatic
// reconnection, so that a connection the broker ends surfaces as the
// client's Err instead of being silently re-established.
func (tg *target) config(t testing.TB, b *broker, suffix string) mqtt.Config {
	return mqtt.Config{
		Servers:   []string{b.url},
		ClientID:  uniqueID(t) + suffix,
		Version:   tg.version,
		Reconnect: mqtt.ReconnectConfig{Disable: true},
	}
}

// connect connects with cfg and closes the client when the test ends.
func connect(t testing.TB, b *broker, cfg mqtt.Config) *mqtt.Client {
	t.Helper()
	c, err := mqtt.Connect(testContext(t), cfg)
	if err != nil {
		t.Fatalf("Connect to %s %s: %v", b.name, b.version, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// receive waits for one message on ch.
func receive(t testing.TB, ch <-chan mqtt.Message) mqtt.Message {
	t.Helper()
	timer := time.NewTimer(testTimeout)
	defer timer.Stop()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("message channel closed")
		}
		return m
	case <-timer.C:
		t.Fatal("no message within the test timeout")
	}
	return mqtt.Message{}
}

// expectNone checks that nothing arrives on ch within d.
func expectNone(t testing.TB, ch <-chan mqtt.Message, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("unexpected message %s %q", m.String(), m.Payload)
		}
	case <-timer.C:
	}
}

// waitDone waits until the client has stopped and returns its Err.
func waitDone(t testing.TB, c *mqtt.Client) error {
	t.Helper()
	timer := time.NewTimer(testTimeout)
	defer timer.Stop()
	select {
	case <-c.Done():
		return c.Err()
	case <-timer.C:
		t.Fatal("client still running after the test timeout")
	}
	return nil
}
