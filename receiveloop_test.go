package mqtt_test

import (
	"context"
	"encoding/binary"
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
