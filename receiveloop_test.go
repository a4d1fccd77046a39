package mqtt_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
)

// TestMosquittoReplyFromReceiveLoop is the most common way services use
// MQTT: take a message from the subscription, publish a reply at QoS 1 and
// wait for its PUBACK, take the next one. A publisher floods the
// subscription with QoS 1 messages and, alongside, QoS 0 messages, while
// mosquitto's in-flight window is 20 (its default), 1000 or unlimited, so
// the broker sends far more unacknowledged messages than the client's
// Receive Maximum (mosquitto 2.0 overshoots it on MQTT 5.0 too). Every
// reply must be acknowledged while the application waits inside the loop,
// no QoS 1 message may be lost, and the connection must be kept.
func TestMosquittoReplyFromReceiveLoop(t *testing.T) {
	t.Parallel()
	const (
		n     = 5000 // QoS 1 messages
		n0    = 5000 // QoS 0 messages alongside
		limit = 20 * time.Second
	)
	for _, inflight := range []int{20, 1000, 0} {
		b := brokertest.Start(t, brokertest.Options{Extra: []string{
			fmt.Sprintf("max_inflight_messages %d", inflight),
			"max_queued_messages 0", // no broker-side drops: a loss is the client's
		}})
		for _, ver := range versions {
			t.Run(fmt.Sprintf("inflight%d/%s", inflight, ver.name), func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), 2*limit)
				defer cancel()
				id := uniqueID(t)
				sub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-sub", Version: ver.v,
					ReceiveMaximum: 16})
				s, err := sub.Subscribe(ctx, id+"/flood/#", mqtt.AtLeastOnce)
				if err != nil {
					t.Fatal(err)
				}
				pub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-pub", Version: ver.v})
				flood := func(qos mqtt.QoS, count int) chan error {
					done := make(chan error, 1)
					go func() {
						payload := make([]byte, 64)
						for i := range count {
							binary.BigEndian.PutUint32(payload, uint32(i))
							m := mqtt.Message{Topic: fmt.Sprintf("%s/flood/%d", id, qos), Payload: payload, QoS: qos}
							if err := pub.PublishAsync(m).Wait(ctx); err != nil {
								done <- fmt.Errorf("publish %d at %v: %w", i, qos, err)
								return
							}
						}
						done <- nil
					}()
					return done
				}
				flood1, flood0 := flood(mqtt.AtLeastOnce, n), flood(mqtt.AtMostOnce, n0)

				// The receive loop: every message is answered with a QoS 1
				// publish that is waited for before the next is taken.
				deadline := time.After(limit)
				var got1, got0, replies int
				next1 := uint32(0)
				// The loop ends when every QoS 1 message arrived and every QoS 0
				// one either arrived or was dropped and counted by the client
				// (the broker is configured to drop none).
				for got1 < n || uint64(got0)+sub.Stats().Dropped < n0 {
					var m mqtt.Message
					select {
					case m = <-s.Messages():
					case <-deadline:
						t.Fatalf("after %v: %d of %d QoS 1 messages, %d QoS 0, %d replies; stats %+v", limit, got1, n, got0, replies, sub.Stats())
					}
					seq := binary.BigEndian.Uint32(m.Payload)
					if m.QoS == mqtt.AtLeastOnce {
						if seq != next1 {
							t.Fatalf("QoS 1 message %d arrived when %d was expected", seq, next1)
						}
						next1++
						got1++
					} else {
						got0++
					}
					rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
					err := sub.Publish(rctx, mqtt.Message{Topic: id + "/reply", Payload: m.Payload[:4], QoS: mqtt.AtLeastOnce})
					rcancel()
					if err != nil {
						t.Fatalf("reply %d (after %d QoS 1, %d QoS 0 messages): %v; stats %+v", replies, got1, got0, err, sub.Stats())
					}
					replies++
				}
				for _, f := range []chan error{flood1, flood0} {
					if err := <-f; err != nil {
						t.Fatal(err)
					}
				}
				st := sub.Stats()
				t.Logf("%d QoS 1 and %d QoS 0 received, %d replies acknowledged; stats: dropped %d, receive maximum exceeded %d",
					got1, got0, replies, st.Dropped, st.ReceiveMaximumExceeded)
				if st.Connects != 1 {
					t.Errorf("the subscriber connected %d times; want 1 (no reconnection)", st.Connects)
				}
				if uint64(got0)+st.Dropped != n0 {
					t.Errorf("QoS 0: %d received + %d dropped, want %d", got0, st.Dropped, n0)
				}
				if st.Deferred != 0 {
					t.Errorf("%d QoS 1 messages deferred; the memory limit was never near", st.Deferred)
				}
			})
		}
	}
}

// TestMosquittoReplyFromReceiveLoopOverflow is the receive loop of
// TestMosquittoReplyFromReceiveLoop with a memory limit far below what the
// broker sends at once (mosquitto with an unlimited in-flight window sends
// all 2,000 messages of 4 KiB; MemoryLimit is 256 KiB). While the loop
// waits for its reply's PUBACK, the client keeps reading and defers what
// does not fit (EventOverflow, Stats.Deferred); once the loop has caught
// up, it reconnects, resuming the persistent session, and mosquitto sends
// the deferred messages again. Every reply is acknowledged, and every
// message arrives exactly once, in order.
func TestMosquittoReplyFromReceiveLoopOverflow(t *testing.T) {
	t.Parallel()
	const (
		n    = 2000
		size = 4096
	)
	b := brokertest.Start(t, brokertest.Options{Extra: []string{"max_inflight_messages 0", "max_queued_messages 0"}})
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			id := uniqueID(t)
			sub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-sub", Version: ver.v,
				SessionExpiry: time.Hour, MemoryLimit: 256 << 10,
				Reconnect: mqtt.ReconnectConfig{MinDelay: 10 * time.Millisecond}})
			s, err := sub.Subscribe(ctx, id+"/flood", mqtt.AtLeastOnce)
			if err != nil {
				t.Fatal(err)
			}
			published := floodFrom(ctx, t, b.URL(), id+"/flood", ver.v, mqtt.AtLeastOnce, size, n)
			for i := range n {
				var m mqtt.Message
				select {
				case m = <-s.Messages():
				case <-ctx.Done():
					t.Fatalf("message %d of %d did not arrive; stats %+v", i, n, sub.Stats())
				}
				if seq := binary.BigEndian.Uint32(m.Payload); seq != uint32(i) {
					t.Fatalf("message %d arrived when %d was expected", seq, i)
				}
				rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
				err := sub.Publish(rctx, mqtt.Message{Topic: id + "/reply", Payload: m.Payload[:4], QoS: mqtt.AtLeastOnce})
				rcancel()
				if err != nil {
					t.Fatalf("reply %d: %v; stats %+v", i, err, sub.Stats())
				}
			}
			if err := <-published; err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-s.Messages():
				t.Fatalf("an extra message %d arrived", binary.BigEndian.Uint32(m.Payload))
			case <-time.After(200 * time.Millisecond):
			}
			st := sub.Stats()
			t.Logf("%d messages and replies; %d deferred, %d connections", n, st.Deferred, st.Connects)
			if st.Deferred == 0 || st.Connects < 2 {
				t.Errorf("Deferred = %d, Connects = %d: the memory limit was never reached", st.Deferred, st.Connects)
			}
			var overflow bool
			for len(sub.Events()) > 0 {
				if e := <-sub.Events(); e.Kind == mqtt.EventOverflow && errors.Is(e.Err, mqtt.ErrOverflow) {
					overflow = true
				}
			}
			if !overflow && st.EventsDropped == 0 {
				t.Error("no EventOverflow")
			}
		})
	}
}
