package mqtt_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/filestore"
	"github.com/b4e21b16/mqtt/packet"
)

// TestFakeStoreInboundQoS2AcrossRestart: with a file store, a QoS 2 message
// the application received before the process ended (its PUBREC sent, no
// PUBREL yet) is recorded before the PUBREC goes out, so when the broker
// re-sends it to the next process (DUP, same packet ID) it is answered with
// PUBREC and not handed to the application again [MQTT-4.3.3-11].
func TestFakeStoreInboundQoS2AcrossRestart(t *testing.T) {
	t.Parallel()
	for _, ver := range fakeVersions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "store")
			synctest.Test(t, func(t *testing.T) {
				open := func() mqtt.Store {
					st, err := filestore.Open(path, &filestore.Options{Sync: filestore.SyncNever})
					if err != nil {
						t.Fatal(err)
					}
					return st
				}
				cfg := mqtt.Config{ClientID: "s", Version: ver.v, SessionExpiry: time.Hour, KeepAlive: -1}

				// First process: receives message 7 and sends PUBREC.
				cfg.Store = open()
				c1, bc1 := fakeClientConn(t, cfg, &packet.Connack{})
				bc1.Send(t, &packet.Publish{Topic: "in/a", QoS: 2, PacketID: 7, Payload: []byte("once")})
				if got := fakeRecv(t, c1.Messages()); string(got.Payload) != "once" {
					t.Fatalf("first delivery: %q", got.Payload)
				}
				if a := bc1.ExpectAck(t, packet.PUBREC); a.PacketID != 7 {
					t.Fatalf("PUBREC for %d, want 7", a.PacketID)
				}
				c1.Close() // the process ends before PUBREL arrives

				// Next process, same store: the broker re-sends message 7.
				cfg.Store = open()
				c2, bc2 := fakeClientConn(t, cfg, &packet.Connack{SessionPresent: true})
				defer c2.Close()
				bc2.Send(t, &packet.Publish{Topic: "in/a", QoS: 2, PacketID: 7, Dup: true, Payload: []byte("once")})
				if a := bc2.ExpectAck(t, packet.PUBREC); a.PacketID != 7 {
					t.Fatalf("PUBREC for %d, want 7", a.PacketID)
				}
				bc2.Send(t, &packet.Ack{PacketType: packet.PUBREL, PacketID: 7})
				if a := bc2.ExpectAck(t, packet.PUBCOMP); a.PacketID != 7 || a.ReasonCode != 0 {
					t.Fatalf("PUBCOMP %d code %v, want 7 success", a.PacketID, a.ReasonCode)
				}
				synctest.Wait()
				select {
				case m := <-c2.Messages():
					t.Fatalf("message delivered again after the restart: %q", m.Payload)
				default:
				}
			})
		})
	}
}

// TestFakeUnencodableStoredPublishFails: a stored publish that cannot be
// encoded (here correlation data over 65,535 bytes, which publishing
// refuses but a store written by an older version may hold) fails with an
// error on DeliveryResults, whether it was in flight (re-sent on resume) or
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
		for range 2 {
			select {
			case r := <-c.DeliveryResults():
				if r.ID == 3 || r.Err == nil || !strings.Contains(r.Err.Error(), "cannot encode") {
					t.Errorf("delivery result %d: %v, want seq 1 or 2 failing as unencodable", r.ID, r.Err)
				}
			case <-time.After(fakeTimeout):
				t.Fatal("no delivery result for an unencodable stored publish")
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
