package mqtt_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/storetest"
	"github.com/b4e21b16/mqtt/packet"
)

// TestFakeDurableQueueBounds checks that PublishDurable, like every other
// publish made while reconnecting, is bounded by Config.Queue (documented
// as bounding "the publishes that wait to be sent").
//
// Bug: durableReq.handle (durable.go) appends to s.waiting without the
// checks of enqueue: any number of durable publishes queue up in memory
// while offline. Fix: apply Queue.MaxMessages/MaxBytes (fail with
// ErrQueueFull or wait per Queue.Full).
func TestFakeDurableQueueBounds(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		cfg := mqtt.Config{ClientID: "dq", Version: mqtt.Version5, KeepAlive: -1,
			Queue: mqtt.QueueConfig{MaxMessages: 1, Full: mqtt.QueueFail}}
		c, _ := fakeRcOffline(t, cfg)
		if _, err := c.PublishDurable(context.Background(), mqtt.Message{Topic: "d", QoS: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.PublishDurable(context.Background(), mqtt.Message{Topic: "d", QoS: 1}); !errors.Is(err, mqtt.ErrQueueFull) {
			t.Errorf("second durable publish into a full queue: %v, want ErrQueueFull", err)
		}
	})
}

func TestMemoryStoreContract(t *testing.T) {
	t.Parallel()
	storetest.Contract(t, func(t *testing.T) mqtt.Store {
		s := mqtt.NewMemoryStore()
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestFakeUnencodableStoredPublishFails: a stored publish that cannot be
// encoded (here correlation data over 65,535 bytes, which publishing
// refuses but a store written by an older version may hold) completes its
// restored Pending with an error, whether it was in flight (re-sent on resume) or
// still waiting, and gives back its packet ID and send quota: the broker's
// whole Receive Maximum stays usable.
func TestFakeUnencodableStoredPublishFails(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		bad := mqtt.Message{Topic: "bad", QoS: mqtt.AtLeastOnce, CorrelationData: make([]byte, 65536)}
		st := mqtt.NewMemoryStore()
		for _, r := range []mqtt.StoredPublish{
			{Seq: 1, PacketID: 1, Message: bad}, // in flight: re-sent with DUP
			{Seq: 2, Message: bad},              // waiting to be sent
			{Seq: 3, Message: mqtt.Message{Topic: "good", QoS: mqtt.AtLeastOnce}},
		} {
			if err := st.SavePublish(r); err != nil {
				t.Fatal(err)
			}
		}
		ack := &packet.Connack{SessionPresent: true}
		ack.Props.ReceiveMaximum = 2
		ack.Props.Set(packet.PropReceiveMaximum)
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "s", Version: mqtt.Version5, Store: st, KeepAlive: -1}, ack)

		p := fc.expectPublish()
		if p.Topic != "good" {
			t.Fatalf("broker received a PUBLISH to %q, want only the encodable one", p.Topic)
		}
		restored := c.Restored()
		if len(restored) != 3 {
			t.Fatalf("Restored = %d Pendings, want 3", len(restored))
		}
		for _, r := range restored[:2] {
			if err := r.Wait(context.Background()); r.ID() == 3 || err == nil || !strings.Contains(err.Error(), "cannot encode") {
				t.Errorf("restored publish %d: %v, want seq 1 or 2 failing as unencodable", r.ID(), err)
			}
		}
		// With "good" still in flight, one more publish must go out at
		// once; after its PUBACK, two at once.
		first := c.PublishAsync(mqtt.Message{Topic: "more", QoS: mqtt.AtLeastOnce})
		q := fc.expectPublish()
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: p.PacketID})
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: q.PacketID})
		if err := first.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		pubs := []*mqtt.Pending{
			c.PublishAsync(mqtt.Message{Topic: "more", QoS: mqtt.AtLeastOnce}),
			c.PublishAsync(mqtt.Message{Topic: "more", QoS: mqtt.AtLeastOnce}),
		}
		a, b := fc.expectPublish(), fc.expectPublish()
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: a.PacketID})
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: b.PacketID})
		for _, pub := range pubs {
			if err := pub.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	})
}
