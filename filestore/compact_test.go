//go:build unix

package filestore_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/filestore"
	"github.com/b4e21b16/mqtt/internal/storetest"
)

// inode returns the inode number of the file at path.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	must(t, err)
	return fi.Sys().(*syscall.Stat_t).Ino
}

// compact makes s, opened with a small CompactBytes, compact its log at
// path: it saves and deletes publishes until the log is replaced.
func compact(t *testing.T, s *filestore.Store, path string) {
	t.Helper()
	before := inode(t, path)
	for seq := uint64(1000); inode(t, path) == before; seq++ {
		if seq == 1100 {
			t.Fatal("the log was never compacted")
		}
		must(t, s.SavePublish(mqtt.StoredPublish{Seq: seq, Message: storetest.FullMessage(seq)}))
		must(t, s.DeletePublish(seq))
	}
}

func TestFileStoreCompaction(t *testing.T) {
	t.Parallel()
	const (
		n            = 100_000
		window       = 10 // live publishes
		compactBytes = 64 << 10
	)
	path := filepath.Join(t.TempDir(), "store")
	opts := &filestore.Options{Sync: filestore.SyncNever, CompactBytes: compactBytes}
	s := openStore(t, path, opts)
	payload := bytes.Repeat([]byte("x"), 100)
	msg := func(seq uint64) mqtt.Message {
		return mqtt.Message{Topic: "compact/" + strconv.FormatUint(seq, 10), Payload: payload, QoS: mqtt.AtLeastOnce}
	}
	var maxSize int64
	for seq := uint64(1); seq <= n; seq++ {
		must(t, s.SavePublish(mqtt.StoredPublish{Seq: seq, Message: msg(seq)}))
		must(t, s.SavePublish(mqtt.StoredPublish{Seq: seq, PacketID: uint16(seq), Message: msg(seq)}))
		must(t, s.SaveInbound(uint16(seq)))
		if seq > window {
			must(t, s.DeletePublish(seq-window))
			must(t, s.DeleteInbound(uint16(seq-window)))
		}
		if seq%100 == 0 {
			maxSize = max(maxSize, fileSize(t, path))
		}
	}
	// Each record is under 200 bytes: the file never gets much past
	// CompactBytes.
	if limit := int64(compactBytes + 1024); maxSize > limit {
		t.Errorf("log grew to %d bytes, want at most %d", maxSize, limit)
	}
	t.Logf("largest log seen: %d bytes for %d live records", maxSize, 2*window)
	var want []mqtt.StoredPublish
	var wantIn []uint16
	for seq := uint64(n - window + 1); seq <= n; seq++ {
		want = append(want, mqtt.StoredPublish{Seq: seq, PacketID: uint16(seq), Message: msg(seq)})
		wantIn = append(wantIn, uint16(seq))
	}
	slices.Sort(wantIn)
	storetest.WantLoad(t, s, want, wantIn)
	must(t, s.Close())
	s = openStore(t, path, opts)
	storetest.WantLoad(t, s, want, wantIn)
}
