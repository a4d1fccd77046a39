package mqtttest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
)

func messages(topics ...string) chan mqtt.Message {
	ch := make(chan mqtt.Message, len(topics))
	for _, topic := range topics {
		ch <- mqtt.Message{Topic: topic, Payload: []byte("p")}
	}
	return ch
}

func TestWaitMessage(t *testing.T) {
	t.Parallel()
	t.Run("arrives", func(t *testing.T) {
		t.Parallel()
		ch := make(chan mqtt.Message)
		go func() { ch <- mqtt.Message{Topic: "a/b"} }()
		var got mqtt.Message
		wantPass(t, func(tb testing.TB) { got = WaitMessage(tb, ch, 5*time.Second) })
		if got.Topic != "a/b" {
			t.Fatalf("topic %q, want a/b", got.Topic)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		wantFatal(t, func(tb testing.TB) { WaitMessage(tb, make(chan mqtt.Message), 50*time.Millisecond) },
			"WaitMessage", "no message within 50ms")
		if waited := time.Since(start); waited < 50*time.Millisecond {
			t.Fatalf("gave up after %v, before the timeout", waited)
		}
	})
	t.Run("closed", func(t *testing.T) {
		t.Parallel()
		ch := make(chan mqtt.Message)
		close(ch)
		wantFatal(t, func(tb testing.TB) { WaitMessage(tb, ch, 5*time.Second) }, "closed")
	})
}

func TestWaitMessages(t *testing.T) {
	t.Parallel()
	t.Run("all", func(t *testing.T) {
		t.Parallel()
		var got []mqtt.Message
		wantPass(t, func(tb testing.TB) { got = WaitMessages(tb, messages("a", "b", "c", "d"), 3, 5*time.Second) })
		if len(got) != 3 || got[0].Topic != "a" || got[2].Topic != "c" {
			t.Fatalf("got %v, want a, b, c", got)
		}
	})
	t.Run("zero", func(t *testing.T) {
		t.Parallel()
		wantPass(t, func(tb testing.TB) { WaitMessages(tb, make(chan mqtt.Message), 0, time.Millisecond) })
	})
	t.Run("some", func(t *testing.T) {
		t.Parallel()
		wantFatal(t, func(tb testing.TB) { WaitMessages(tb, messages("x/1", "x/2"), 3, 30*time.Millisecond) },
			"2 of 3 messages within 30ms", "x/1, x/2")
	})
	t.Run("closed", func(t *testing.T) {
		t.Parallel()
		ch := messages("x/1")
		close(ch)
		wantFatal(t, func(tb testing.TB) { WaitMessages(tb, ch, 2, 5*time.Second) }, "closed after 1 of 2", "x/1")
	})
}

func TestExpectNoMessage(t *testing.T) {
	t.Parallel()
	t.Run("quiet", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		wantPass(t, func(tb testing.TB) { ExpectNoMessage(tb, make(chan mqtt.Message), 30*time.Millisecond) })
		if waited := time.Since(start); waited < 30*time.Millisecond {
			t.Fatalf("returned after %v, before the window ended", waited)
		}
	})
	t.Run("closed", func(t *testing.T) {
		t.Parallel()
		ch := make(chan mqtt.Message)
		close(ch)
		wantPass(t, func(tb testing.TB) { ExpectNoMessage(tb, ch, time.Minute) })
	})
	t.Run("message", func(t *testing.T) {
		t.Parallel()
		wantFatal(t, func(tb testing.TB) { ExpectNoMessage(tb, messages("late/topic"), time.Minute) },
			"unexpected message", "late/topic")
	})
}

func TestWaitEvent(t *testing.T) {
	t.Parallel()
	events := func(kinds ...mqtt.EventKind) chan mqtt.Event {
		ch := make(chan mqtt.Event, len(kinds))
		for i, k := range kinds {
			e := mqtt.Event{Kind: k, Attempt: i}
			if k == mqtt.EventConnectionLost {
				e.Err = errors.New("boom")
			}
			ch <- e
		}
		return ch
	}
	t.Run("skips others", func(t *testing.T) {
		t.Parallel()
		var got mqtt.Event
		ch := events(mqtt.EventConnectionLost, mqtt.EventReconnecting, mqtt.EventConnected)
		wantPass(t, func(tb testing.TB) { got = WaitEvent(tb, ch, mqtt.EventConnected, 5*time.Second) })
		if got.Kind != mqtt.EventConnected || got.Attempt != 2 {
			t.Fatalf("got %+v, want the third event", got)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		ch := events(mqtt.EventConnectionLost)
		wantFatal(t, func(tb testing.TB) { WaitEvent(tb, ch, mqtt.EventConnected, 30*time.Millisecond) },
			fmt.Sprintf("no %v event within 30ms", mqtt.EventConnected), "boom")
	})
	t.Run("closed", func(t *testing.T) {
		t.Parallel()
		ch := events(mqtt.EventReconnecting)
		close(ch)
		wantFatal(t, func(tb testing.TB) { WaitEvent(tb, ch, mqtt.EventConnected, 5*time.Second) },
			"closed", mqtt.EventReconnecting.String())
	})
}

func TestDefaultTimeout(t *testing.T) {
	t.Parallel()
	if orDefault(0) != DefaultTimeout || orDefault(-1) != DefaultTimeout || orDefault(time.Second) != time.Second {
		t.Fatal("orDefault does not replace zero and negative durations only")
	}
}
