package mqtttest

import (
	"strings"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
)

// DefaultTimeout is the timeout the helpers of this package use when they
// are given zero or a negative duration.
const DefaultTimeout = 10 * time.Second

func orDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultTimeout
	}
	return d
}

// WaitMessage receives one message from ch and returns it. It fails the test
// if none arrives within timeout (zero or less: DefaultTimeout) or if ch is
// closed.
func WaitMessage(tb testing.TB, ch <-chan mqtt.Message, timeout time.Duration) mqtt.Message {
	tb.Helper()
	timeout = orDefault(timeout)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case m, ok := <-ch:
		if !ok {
			tb.Fatalf("mqtttest: WaitMessage: the channel was closed before a message arrived")
		}
		return m
	case <-timer.C:
		tb.Fatalf("mqtttest: WaitMessage: no message within %v", timeout)
	}
	return mqtt.Message{}
}

// WaitMessages receives n messages from ch and returns them in arrival
// order. It fails the test, saying how many arrived and on which topics, if
// the n messages do not all arrive within timeout (zero or less:
// DefaultTimeout), or if ch is closed before.
func WaitMessages(tb testing.TB, ch <-chan mqtt.Message, n int, timeout time.Duration) []mqtt.Message {
	tb.Helper()
	timeout = orDefault(timeout)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	got := make([]mqtt.Message, 0, max(n, 0))
	for len(got) < n {
		select {
		case m, ok := <-ch:
			if !ok {
				tb.Fatalf("mqtttest: WaitMessages: the channel was closed after %d of %d messages%s", len(got), n, topics(got))
				return got
			}
			got = append(got, m)
		case <-timer.C:
			tb.Fatalf("mqtttest: WaitMessages: %d of %d messages within %v%s", len(got), n, timeout, topics(got))
			return got
		}
	}
	return got
}

// ExpectNoMessage fails the test if a message arrives on ch within d. It
// returns after d, or as soon as ch is closed: a closed channel delivers no
// more messages.
func ExpectNoMessage(tb testing.TB, ch <-chan mqtt.Message, d time.Duration) {
	tb.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case m, ok := <-ch:
		if ok {
			tb.Fatalf("mqtttest: ExpectNoMessage: unexpected message within %v: %v", d, &m)
		}
	case <-timer.C:
	}
}

// WaitEvent receives events from ch until one of the given kind arrives and
// returns it; events of other kinds are skipped. It fails the test, listing
// the skipped events, if none of that kind arrives within timeout (zero or
// less: DefaultTimeout) or if ch is closed. Pass Client.Events as ch.
func WaitEvent(tb testing.TB, ch <-chan mqtt.Event, kind mqtt.EventKind, timeout time.Duration) mqtt.Event {
	tb.Helper()
	timeout = orDefault(timeout)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var skipped []string
	// Each round receives an event or ends the wait; the client's Events
	// channel is bounded, and the timer ends the loop in any case.
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				tb.Fatalf("mqtttest: WaitEvent: the channel was closed before a %v event (skipped: %s)", kind, list(skipped))
				return mqtt.Event{}
			}
			if e.Kind == kind {
				return e
			}
			skipped = append(skipped, describe(e))
		case <-timer.C:
			tb.Fatalf("mqtttest: WaitEvent: no %v event within %v (skipped: %s)", kind, timeout, list(skipped))
			return mqtt.Event{}
		}
	}
}

// topics lists the topics of ms for a failure message.
func topics(ms []mqtt.Message) string {
	if len(ms) == 0 {
		return ""
	}
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Topic
	}
	return "; topics received: " + strings.Join(names, ", ")
}

func describe(e mqtt.Event) string {
	if e.Err != nil {
		return e.Kind.String() + " (" + e.Err.Error() + ")"
	}
	return e.Kind.String()
}

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
