//go:build unix

package mqtt_test

import (
	"path/filepath"
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
