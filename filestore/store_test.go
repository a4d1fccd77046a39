//go:build unix

package filestore_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/filestore"
	"github.com/b4e21b16/mqtt/internal/storetest"
)

func TestFileStoreContract(t *testing.T) {
	t.Parallel()
	for _, sync := range []filestore.SyncPolicy{filestore.SyncAlways, filestore.SyncNever} {
		t.Run(sync.String(), func(t *testing.T) {
			t.Parallel()
			storetest.Contract(t, func(t *testing.T) mqtt.Store {
				return openStore(t, filepath.Join(t.TempDir(), "store"), &filestore.Options{Sync: sync})
			})
		})
	}
}

// openStore opens the store at path and closes it when the test ends.
func openStore(t testing.TB, path string, opts *filestore.Options) *filestore.Store {
	t.Helper()
	s, err := filestore.Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// reopen closes s and opens the store at path again.
func reopen(t *testing.T, s *filestore.Store, path string) *filestore.Store {
	t.Helper()
	must(t, s.Close())
	return openStore(t, path, nil)
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestFileStoreReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store")
	s := openStore(t, path, nil)
	var want []mqtt.StoredPublish
	for seq := uint64(10); seq > 0; seq-- { // saved out of Seq order
		r := mqtt.StoredPublish{Seq: seq, PacketID: uint16(seq * 3), Released: seq%2 == 0, Message: storetest.FullMessage(seq)}
		must(t, s.SavePublish(r))
		if seq != 4 {
			want = append(want, r)
		}
	}
	slices.Reverse(want)
	must(t, s.DeletePublish(4))
	must(t, s.SaveInbound(9))
	must(t, s.SaveInbound(2))
	must(t, s.SaveInbound(5))
	must(t, s.DeleteInbound(9))
	s = reopen(t, s, path)
	storetest.WantLoad(t, s, want, []uint16{2, 5})

	// The reopened store goes on appending to the same log.
	r := mqtt.StoredPublish{Seq: 1, PacketID: 77, Message: storetest.FullMessage(100)}
	must(t, s.SavePublish(r))
	want[0] = r
	s = reopen(t, s, path)
	storetest.WantLoad(t, s, want, []uint16{2, 5})
}

func TestFileStoreBadOptions(t *testing.T) {
	t.Parallel()
	if _, err := filestore.Open(filepath.Join(t.TempDir(), "store"), &filestore.Options{Sync: 7}); err == nil {
		t.Fatal("Open with an unknown sync policy: no error")
	}
}

// Regression: Store.applyLocked once appended the Seq of a new publish
// to s.order and, when order had grown past 2*len(out)+1024, tidied it with
// seqsLocked, which keeps only the Seqs present in s.out, before the new
// record was put in s.out. The record just saved dropped out of order: live
// in the index, but Load (and compaction, which also walks seqsLocked) no
// longer saw it, and replaying the log on Open repeated it.
//
// Found by the root package's TestCrashDurablePublish (3.1.1, about one run
// in 15 to 30): a message that the killed child had sent and stored with
// its packet ID was in the store file (a savePublish record, no
// deletePublish), but the next child's Load returned one record fewer and
// never re-sent it.

// TestFileStoreLoadAfterOrderTidy: 1024 publishes saved and deleted,
// then one more saved: Load must return it, before and after a reopen.
func TestFileStoreLoadAfterOrderTidy(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store")
	rec := func(seq uint64) mqtt.StoredPublish {
		return mqtt.StoredPublish{Seq: seq, PacketID: uint16(seq), Message: mqtt.Message{Topic: "t", Payload: []byte(fmt.Sprint(seq)), QoS: mqtt.AtLeastOnce}}
	}
	st, err := filestore.Open(path, &filestore.Options{Sync: filestore.SyncNever})
	must(t, err)
	for seq := uint64(1); seq <= 1024; seq++ {
		must(t, st.SavePublish(rec(seq)))
		must(t, st.DeletePublish(seq))
	}
	must(t, st.SavePublish(rec(1025)))
	out, _, err := st.Load()
	must(t, err)
	if len(out) != 1 || out[0].Seq != 1025 {
		t.Errorf("Load returned %d publishes %v, want the one with Seq 1025", len(out), seqsOf(out))
	}
	must(t, st.Close())

	st, err = filestore.Open(path, nil)
	must(t, err)
	defer st.Close()
	out, _, err = st.Load()
	must(t, err)
	if len(out) != 1 || out[0].Seq != 1025 {
		t.Errorf("after a reopen, Load returned %d publishes %v, want the one with Seq 1025", len(out), seqsOf(out))
	}
}

// seqsOf returns the Seq of each publish in out.
func seqsOf(out []mqtt.StoredPublish) []uint64 {
	s := make([]uint64, len(out))
	for i, r := range out {
		s[i] = r.Seq
	}
	return s
}
