//go:build unix

package filestore_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/filestore"
	"github.com/b4e21b16/mqtt/internal/storetest"
)

func TestFileStoreLocked(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store")
	s := openStore(t, path, nil)
	must(t, s.SaveInbound(1))
	_, err := filestore.Open(path, nil)
	if !errors.Is(err, syscall.EWOULDBLOCK) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open: got %v, want an error naming the path and matching EWOULDBLOCK", err)
	}
	// The refused open left the store alone.
	must(t, s.SaveInbound(2))
	s = reopen(t, s, path)
	storetest.WantLoad(t, s, nil, []uint16{1, 2})
}

func TestFileStoreLockedAfterCompaction(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store")
	s := openStore(t, path, &filestore.Options{CompactBytes: 1 << 10, Sync: filestore.SyncNever})
	ino := func() uint64 {
		fi, err := os.Stat(path)
		must(t, err)
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	before := ino()
	for seq := uint64(0); ino() == before; seq++ {
		if seq == 100 {
			t.Fatal("the log was never compacted")
		}
		must(t, s.SavePublish(mqtt.StoredPublish{Seq: seq, Message: storetest.FullMessage(seq)}))
		must(t, s.DeletePublish(seq))
	}
	// The file that took the log's place is locked as well.
	if _, err := filestore.Open(path, nil); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Fatalf("Open after compaction: got %v, want EWOULDBLOCK", err)
	}
}

// TestFileStoreCloseReleasesLock: a copy of the store's file descriptor,
// such as a child process forked by another goroutine holds until it calls
// exec, does not keep the store locked after Close.
func TestFileStoreCloseReleasesLock(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store")
	s := openStore(t, path, nil)
	must(t, s.SaveInbound(1))
	fi, err := os.Stat(path)
	must(t, err)
	want := fi.Sys().(*syscall.Stat_t)
	dup := -1
	for fd := 3; fd < 1<<16 && dup < 0; fd++ {
		var st syscall.Stat_t
		if syscall.Fstat(fd, &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino {
			syscall.ForkLock.RLock()
			dup, err = syscall.Dup(fd)
			if err == nil {
				syscall.CloseOnExec(dup)
			}
			syscall.ForkLock.RUnlock()
			must(t, err)
		}
	}
	if dup < 0 {
		t.Fatal("found no file descriptor of the store")
	}
	defer syscall.Close(dup)
	must(t, s.Close())
	s = openStore(t, path, nil)
	storetest.WantLoad(t, s, nil, []uint16{1})
}
