//go:build unix

package filestore_test

import (
	"path/filepath"
	"testing"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/filestore"
)

// BenchmarkFileStoreSave measures SavePublish of a 64-byte QoS 1 message.
// The live set is bounded (each save replaces one of 1000 sequence
// numbers), so the cost of compaction is included.
func BenchmarkFileStoreSave(b *testing.B) {
	for _, sync := range []filestore.SyncPolicy{filestore.SyncNever, filestore.SyncAlways} {
		b.Run(sync.String(), func(b *testing.B) {
			s := openStore(b, filepath.Join(b.TempDir(), "store"), &filestore.Options{Sync: sync})
			r := mqtt.StoredPublish{Message: mqtt.Message{Topic: "bench/topic", Payload: make([]byte, 64), QoS: mqtt.AtLeastOnce}}
			b.ReportAllocs()
			b.SetBytes(int64(len(r.Message.Payload)))
			seq := uint64(0)
			for b.Loop() {
				r.Seq = seq % 1000
				r.PacketID = uint16(seq)
				seq++
				if err := s.SavePublish(r); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "saves/s")
		})
	}
}
