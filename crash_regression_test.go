//go:build unix

package mqtt_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/filestore"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/b4e21b16/mqtt/packet"
)

// Regression: the file store once dropped the publish saved right after it
// tidied its Seq order (see TestFileStoreLoadAfterOrderTidy in filestore):
// live in its index, but Load no longer returned it. Found by
// TestCrashDurablePublish (3.1.1, about one run in 15 to 30): a message
// that the killed child had sent and stored with its packet ID was in the
// store file, but the next child's Load returned one record fewer and never
// re-sent it.

// TestMosquittoDurablePublishLostAfterRestart shows the effect on a
// client: after 1024 durable publishes have completed, the next one, made
// while the broker is down, is accepted by PublishDurable but is gone when
// the process restarts with the same file store.
func TestMosquittoDurablePublishLostAfterRestart(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Persistence: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := uniqueID(t)
	topic := id + "/durable"
	path := filepath.Join(t.TempDir(), "store")
	cfg := func(st mqtt.Store) mqtt.Config {
		return mqtt.Config{
			Servers: []string{b.URL()}, ClientID: id + "-pub", Version: mqtt.Version5,
			SessionExpiry: time.Hour, Store: st,
			Reconnect: mqtt.ReconnectConfig{MinDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond},
		}
	}
	sub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-sub", Version: mqtt.Version5, SessionExpiry: time.Hour})
	s, err := sub.Subscribe(ctx, topic, mqtt.AtLeastOnce)
	must(t, err)

	st, err := filestore.Open(path, &filestore.Options{Sync: filestore.SyncNever})
	must(t, err)
	pub, err := mqtt.Connect(ctx, cfg(st))
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	defer pub.Close()
	const n = 1024
	for i := range n {
		if _, err := pub.PublishDurable(ctx, mqtt.Message{Topic: topic, Payload: []byte(fmt.Sprint(i)), QoS: mqtt.AtLeastOnce}); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		select {
		case r := <-pub.DeliveryResults():
			must(t, r.Err)
		case <-ctx.Done():
			t.Fatal("delivery results missing")
		}
	}
	for range n {
		receive(t, s.Messages())
	}

	b.Stop(t)
	if _, err := pub.PublishDurable(ctx, mqtt.Message{Topic: topic, Payload: []byte("last"), QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	pub.Close() // the process ends; the store is closed with the client
	b.Restart(t)

	st, err = filestore.Open(path, nil)
	must(t, err)
	out, _, err := st.Load()
	must(t, err)
	if len(out) != 1 {
		t.Errorf("the store holds %d publishes after the restart, want 1 (the message accepted while the broker was down)", len(out))
	}
	pub2, err := mqtt.Connect(ctx, cfg(st))
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	defer pub2.Close()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m := <-s.Messages():
			if string(m.Payload) == "last" {
				return
			}
			// A re-delivery of an earlier message: the broker restarted.
		case <-timeout:
			t.Fatal("the message accepted by PublishDurable before the restart never arrived")
		}
	}
}

// Regression: after a restart from a Store, QoS 2 messages past PUBREC were
// released in random order: loadStore left their relSeq at 0, so resume's
// sort by seqNo (relSeq for a message awaiting PUBCOMP) ranked them all
// equal and they kept the map iteration order of s.out. [MQTT-4.6.0-3]
// requires PUBREL in the order the PUBRECs arrived; a Store keeps no
// PUBREC order, but Seq order is what it has (and mosquitto forwards a QoS
// 2 message when it gets the PUBREL, so subscribers see that order). Seen on
// the wire in TestCrashDurablePublish: PUBREL 1185, 1181, 1193, 1183, ...

// TestFakeResumeReleasesInSeqOrderAfterRestart loads 16 messages
// past PUBREC from a store and checks that the PUBRELs go out in Seq order.
func TestFakeResumeReleasesInSeqOrderAfterRestart(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		st := mqtt.NewMemoryStore()
		const n = 16
		for seq := uint64(1); seq <= n; seq++ {
			must(t, st.SavePublish(mqtt.StoredPublish{Seq: seq, PacketID: uint16(seq), Released: true,
				Message: mqtt.Message{Topic: "t", Payload: []byte(fmt.Sprint(seq)), QoS: mqtt.ExactlyOnce}}))
		}
		_, bc := fakeClientConn(t, mqtt.Config{ClientID: "r", Version: mqtt.Version5, Store: st}, &packet.Connack{SessionPresent: true})
		var got []uint16
		for range n {
			got = append(got, bc.ExpectAck(t, packet.PUBREL).PacketID)
		}
		for i, id := range got {
			if id != uint16(i+1) {
				t.Fatalf("PUBREL packet IDs in order %v, want 1 to %d (Seq order)", got, n)
			}
		}
	})
}
