package mqtttest

import (
	"bytes"
	"runtime"
	"testing"

	"go.uber.org/goleak"
)

// TestCloseWaitsForBrokerGoroutines runs alone (not in parallel), so that
// it is the only broker of the process: after Close no goroutine may run
// broker code, or any other goroutine started since the test began.
func TestCloseWaitsForBrokerGoroutines(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	b, err := Start(WithWebSocket())
	if err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{b.URL(), b.WebSocketURL()} {
		f := new(fakeTB)
		if !f.run(func(tb testing.TB) {
			c := Connect(tb, url)
			roundTrip(tb, c, c, "settle")
		}) {
			t.Fatalf("%s: %q", url, f.fatals)
		}
		f.cleanup()
	}
	// A connection that stays open, to be ended by the broker.
	f := new(fakeTB)
	f.run(func(tb testing.TB) { Connect(tb, b.URL()) })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	if dump := buf[:runtime.Stack(buf, true)]; bytes.Contains(dump, brokerCode) {
		t.Fatalf("broker goroutines still running after Close:\n%s", dump)
	}
	f.cleanup()
	goleak.VerifyNone(t, ignore)
}
