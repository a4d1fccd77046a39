//go:build unix

package filestore_test

import (
	"bytes"
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

func TestFileStoreNotAStore(t *testing.T) {
	t.Parallel()
	for _, content := range []string{
		"hello, this is not a store log",
		"MQTTSTOR\x03\x00\x00\x00", // a version from the future
		"MQTTSTOR\x03\x00\x00\x00 and then some more bytes, as many as a header and a record",
		"x",
	} {
		path := filepath.Join(t.TempDir(), "store")
		must(t, os.WriteFile(path, []byte(content), 0o600))
		if _, err := filestore.Open(path, nil); err == nil {
			t.Errorf("Open on %q: no error", content)
		}
		if got, _ := os.ReadFile(path); string(got) != content {
			t.Errorf("Open changed a file that is not a store log: %q", got)
		}
	}
}

func TestFileStoreLeftoverTemp(t *testing.T) {
	t.Parallel()
	// A crash during compaction leaves the temporary file behind.
	path := filepath.Join(t.TempDir(), "store")
	s := openStore(t, path, nil)
	must(t, s.SaveInbound(3))
	must(t, s.Close())
	must(t, os.WriteFile(path+".tmp", []byte("half a compaction"), 0o600))
	s = openStore(t, path, nil)
	storetest.WantLoad(t, s, nil, []uint16{3})
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover temporary file: %v", err)
	}
}

// wantFile checks that the file at path holds content, or does not exist
// if content is nil.
func wantFile(t *testing.T, path string, content []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	switch {
	case content == nil && !errors.Is(err, os.ErrNotExist):
		t.Errorf("%s: got %q (error %v), want no file", path, got, err)
	case content != nil && (err != nil || !bytes.Equal(got, content)):
		t.Errorf("%s: got %q (error %v), want %q", path, got, err, content)
	}
}

func TestFileStoreSymlinkAtPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	precious := []byte("not a store log, and not to be written")
	must(t, os.WriteFile(target, precious, 0o600))
	for _, tc := range []struct{ name, target string }{{"Existing", target}, {"Dangling", filepath.Join(dir, "nothing")}} {
		path := filepath.Join(dir, "store-"+tc.name)
		must(t, os.Symlink(tc.target, path))
		s, err := filestore.Open(path, nil)
		if err == nil {
			s.Close()
			t.Fatalf("%s: Open through a symbolic link: no error", tc.name)
		}
		if !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("%s: Open: got %v, want an error saying the path is a symbolic link", tc.name, err)
		}
	}
	wantFile(t, target, precious)
	wantFile(t, filepath.Join(dir, "nothing"), nil)
}

func TestFileStoreSymlinkAtTempPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	precious := []byte("not to be written")
	must(t, os.WriteFile(target, precious, 0o600))
	dangling := filepath.Join(dir, "nothing")
	path := filepath.Join(dir, "store")
	opts := &filestore.Options{Sync: filestore.SyncNever, CompactBytes: 1 << 10}

	// Planted before the store opens: removed as a leftover.
	must(t, os.Symlink(target, path+".tmp"))
	s := openStore(t, path, opts)
	r := mqtt.StoredPublish{Seq: 1, PacketID: 7, Message: storetest.FullMessage(1)}
	must(t, s.SavePublish(r))
	must(t, s.SaveInbound(3))
	if _, err := os.Lstat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("symbolic link at the temporary path after Open: %v", err)
	}

	// Planted while the store is open, before a compaction.
	for _, to := range []string{target, dangling} {
		must(t, os.Symlink(to, path+".tmp"))
		compact(t, s, path)
		if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("the log after compaction: %v, %v; want a regular file", fi, err)
		}
		wantFile(t, target, precious)
		wantFile(t, dangling, nil)
	}
	s = reopen(t, s, path)
	storetest.WantLoad(t, s, []mqtt.StoredPublish{r}, []uint16{3})
}

// TestFileStoreFileModes runs alone (no t.Parallel): it changes the
// process's umask to one that would leave a file created with mode 0600
// read-only, and checks that the store's files get 0600 all the same.
func TestFileStoreFileModes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "store")
	old := syscall.Umask(0o277)
	s, err := filestore.Open(path, &filestore.Options{Sync: filestore.SyncNever, CompactBytes: 1 << 10})
	syscall.Umask(old)
	must(t, err)
	t.Cleanup(func() { s.Close() })
	wantMode := func(what string) {
		t.Helper()
		fi, err := os.Stat(path)
		must(t, err)
		if fi.Mode() != 0o600 {
			t.Errorf("%s: mode %v, want %v", what, fi.Mode(), os.FileMode(0o600))
		}
	}
	wantMode("new log")

	old = syscall.Umask(0o277)
	compact(t, s, path) // the log is now the temporary file, renamed
	syscall.Umask(old)
	wantMode("log after compaction")
	must(t, s.SaveInbound(1))
	s = reopen(t, s, path) // and the owner can open it again
	storetest.WantLoad(t, s, nil, []uint16{1})

	// A log that exists keeps its mode until compaction replaces it.
	must(t, s.Close())
	must(t, os.Chmod(path, 0o640))
	s = openStore(t, path, &filestore.Options{Sync: filestore.SyncNever, CompactBytes: 1 << 10})
	if fi, err := os.Stat(path); err != nil || fi.Mode() != 0o640 {
		t.Errorf("existing log after Open: %v, %v; want mode 0640", fi, err)
	}
	compact(t, s, path)
	wantMode("existing log after compaction")
}
