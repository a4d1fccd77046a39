//go:build unix

package filestore_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/filestore"
	"github.com/b4e21b16/mqtt/internal/storetest"
	"github.com/google/go-cmp/cmp"
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

// openFileStore opens the store at path and closes it when the test ends.
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

// wantCorrupt checks that err matches ErrStoreCorrupt and mentions each of
// the given strings.
func wantCorrupt(t *testing.T, err error, mentions ...string) {
	t.Helper()
	if !errors.Is(err, mqtt.ErrStoreCorrupt) {
		t.Fatalf("Load: got error %v, want one matching ErrStoreCorrupt", err)
	}
	for _, m := range mentions {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("Load error %q does not mention %q", err, m)
		}
	}
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

func TestFileStoreBadOptions(t *testing.T) {
	t.Parallel()
	if _, err := filestore.Open(filepath.Join(t.TempDir(), "store"), &filestore.Options{Sync: 7}); err == nil {
		t.Fatal("Open with an unknown sync policy: no error")
	}
}

func TestFileStoreTornHeader(t *testing.T) {
	t.Parallel()
	// A crash while the file was being created leaves part of the header.
	path := filepath.Join(t.TempDir(), "store")
	must(t, os.WriteFile(path, []byte("MQTT"), 0o600))
	s := openStore(t, path, nil)
	must(t, s.SaveInbound(3))
	s = reopen(t, s, path)
	storetest.WantLoad(t, s, nil, []uint16{3})
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

// The crash test: a child process (this test binary, running
// TestFileStoreCrashChild) applies a deterministic sequence of operations to
// a store and reports each one it completed; the parent kills it with
// SIGKILL at a random moment and checks what survived.
const (
	crashEnvPath   = "MQTT_TEST_STORE_CRASH_PATH"
	crashEnvStart  = "MQTT_TEST_STORE_CRASH_START"
	crashEnvSync   = "MQTT_TEST_STORE_CRASH_SYNC"
	crashWindow    = 40       // live publishes and inbound IDs
	crashCompact   = 16 << 10 // small, so that kills land during compactions
	crashOpsPerSeq = 5
)

// crashRecord is the publish with sequence number seq, before (sent false)
// or after it was sent.
func crashRecord(seq uint64, sent bool) mqtt.StoredPublish {
	r := mqtt.StoredPublish{Seq: seq, Message: mqtt.Message{
		Topic:          fmt.Sprintf("crash/%d", seq),
		Payload:        bytes.Repeat(fmt.Appendf(nil, "<%d>", seq), int(seq%50)),
		QoS:            mqtt.QoS(1 + seq%2),
		UserProperties: []mqtt.UserProperty{{Key: "seq", Value: strconv.FormatUint(seq, 10)}},
	}}
	if sent {
		r.PacketID = uint16(seq%65535 + 1)
		r.Released = r.Message.QoS == mqtt.ExactlyOnce
	}
	return r
}

// applyCrashOp applies operation i of the crash test's sequence to s. Every
// operation is idempotent, so repeating one that may or may not have
// happened is harmless.
func applyCrashOp(s mqtt.Store, i int) error {
	seq := uint64(i/crashOpsPerSeq) + 1
	old := seq - min(seq, crashWindow) // 0: nothing to delete yet
	switch i % crashOpsPerSeq {
	case 0:
		return s.SavePublish(crashRecord(seq, false))
	case 1:
		return s.SavePublish(crashRecord(seq, true))
	case 2:
		return s.SaveInbound(uint16(seq))
	case 3:
		return s.DeletePublish(old)
	default:
		return s.DeleteInbound(uint16(old))
	}
}

func TestFileStoreCrashChild(t *testing.T) {
	path := os.Getenv(crashEnvPath)
	if path == "" {
		t.Skip("run by TestFileStoreCrash in a child process")
	}
	start, err := strconv.Atoi(os.Getenv(crashEnvStart))
	must(t, err)
	opts := &filestore.Options{Sync: filestore.SyncNever, CompactBytes: crashCompact}
	if os.Getenv(crashEnvSync) == "always" {
		opts.Sync = filestore.SyncAlways
	}
	s, err := filestore.Open(path, opts)
	must(t, err)
	defer s.Close()
	if _, _, err := s.Load(); err != nil && !errors.Is(err, mqtt.ErrStoreCorrupt) {
		t.Fatal(err)
	}
	// The parent kills us long before the end; if it died, writing to the
	// closed pipe ends us.
	var line []byte
	for i := start; i < start+1_000_000; i++ {
		must(t, applyCrashOp(s, i))
		line = strconv.AppendInt(append(line[:0], "done "...), int64(i), 10)
		line = append(line, '\n')
		if _, err := os.Stdout.Write(line); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFileStoreCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "store")
	tmp := filepath.Join(dir, "tmp")
	must(t, os.Mkdir(tmp, 0o700))
	model := mqtt.NewMemoryStore() // what the store must hold
	t.Cleanup(func() { model.Close() })
	next := 0 // first operation the next child runs
	for run, sync := range []string{"never", "never", "never", "always", "never", "never"} {
		killAfter := 100 + rand.IntN(1901)
		if sync == "always" {
			killAfter = 100 + rand.IntN(301) // fsync per operation is slow
		}
		last := crashRun(t, path, tmp, sync, next, killAfter, model)
		t.Logf("run %d (sync %s): the child completed operations %d to %d before SIGKILL", run, sync, next, last)

		// The store holds every reported operation, and perhaps the one
		// that was under way when the child died; nothing else.
		s, err := filestore.Open(path, nil)
		if err != nil {
			t.Fatalf("run %d: Open: %v", run, err)
		}
		out, in, err := s.Load()
		must(t, s.Close())
		if err != nil {
			// Only a torn tail is acceptable damage after a process crash.
			if !errors.Is(err, mqtt.ErrStoreCorrupt) || !strings.Contains(err.Error(), "1 damaged region") ||
				!strings.Contains(err.Error(), "ignored the last") || strings.Contains(err.Error(), "forgot") {
				t.Fatalf("run %d: Load: %v", run, err)
			}
			t.Logf("run %d: %v", run, err)
		}
		wantOut, wantIn, err := model.Load()
		must(t, err)
		must(t, applyCrashOp(model, last+1))
		nextOut, nextIn, err := model.Load()
		must(t, err)
		if cmp.Diff(wantOut, out, storetest.Cmp) != "" || !slices.Equal(wantIn, in) {
			if d := cmp.Diff(nextOut, out, storetest.Cmp); d != "" || !slices.Equal(nextIn, in) {
				t.Fatalf("run %d: store after a crash following operation %d (-want +got):\n%s\ninbound: got %v, want %v",
					run, last, cmp.Diff(wantOut, out, storetest.Cmp), in, wantIn)
			}
		}
		// The model now includes operation last+1; the next child repeats it.
		next = last + 1
	}
}

// crashRun runs a child from operation start, kills it once it has reported
// killAfter operations, applies every operation it reported to model and
// returns the last one.
func crashRun(t *testing.T, path, tmp, sync string, start, killAfter int, model mqtt.Store) (last int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileStoreCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		crashEnvPath+"="+path,
		crashEnvStart+"="+strconv.Itoa(start),
		crashEnvSync+"="+sync,
		// Whatever the child's TestMain leaves in the temporary directory
		// when it is killed goes away with the test's.
		"TMPDIR="+tmp,
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 10 * time.Second
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	r := bufio.NewReader(stdout)
	last, reported := start-1, 0
	killed := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if err != io.EOF {
				t.Errorf("reading the child's output: %v", err)
			}
			break // a last line without its newline was cut short: not reported
		}
		i, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "done ")
		if !ok {
			continue // the test framework's own output
		}
		n, err := strconv.Atoi(i)
		if err != nil || n != last+1 {
			cmd.Process.Kill()
			t.Fatalf("child reported %q after operation %d", line, last)
		}
		must(t, applyCrashOp(model, n))
		last = n
		if reported++; reported == killAfter {
			must(t, cmd.Process.Kill())
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before it was killed (%v):\n%s", err, stderr.Bytes())
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: got %v, want death by SIGKILL:\n%s", err, stderr.Bytes())
	}
	return last
}

// fuzzMarker is the sync marker of the fuzzer's logs. A store picks a
// random one for each new log, but the seeds must be the same in every
// process of a fuzzing run (the coordinator and each worker compute them),
// so fuzzLog rewrites its log with this one.
var fuzzMarker = []byte("fuzzsync")

// fuzzLog is the log of a store holding a few small records, replaced and
// deleted, to seed the fuzzer. It is short on purpose: see maxFuzzLog.
func fuzzLog(f *testing.F) []byte {
	msg := mqtt.StoredPublish{Seq: 1, Message: mqtt.Message{Topic: "t", QoS: mqtt.AtLeastOnce}}
	sent := msg
	sent.PacketID = 5
	return withMarker(buildOpsLog(f, []storeOp{
		{kind: "save", r: msg},
		{kind: "saveInbound", id: 1},
		{kind: "save", r: sent},
		{kind: "deleteInbound", id: 1},
	}), fuzzMarker)
}

// frame turns data into a log of records with valid checksums: each record
// takes a length byte from data and that many following bytes as its body.
// It lets the fuzzer reach the record decoder past the checksum.
func frame(header, data []byte) []byte {
	log := bytes.Clone(header)
	for len(data) > 0 {
		n := min(int(data[0]), len(data)-1)
		log = appendRecord2(log, fuzzMarker, data[1:1+n])
		data = data[1+n:]
	}
	return log
}

// maxFuzzLog is the longest input FuzzFileStoreLoad tries. The fuzzer
// minimises each input that adds coverage by running it again for every
// way of cutting a stretch out of it, some n²/2 runs for n bytes, and each
// run here makes a few dozen system calls: for 128 bytes that takes
// seconds, while the 600-byte inputs grown from the earlier seeds took
// longer than -fuzzminimizetime (60s by default), so that a short fuzzing
// budget went on minimising alone. An input this long still holds a header
// and several records; longer ones reach no code that shorter ones do not.
const maxFuzzLog = 128

// FuzzFileStoreLoad opens stores whose files hold arbitrary bytes: after the
// store's header (mode 0), as checksummed record bodies (mode 1), or
// entirely (mode 2). Opening may fail only without a valid header; Load
// must return sorted, duplicate-free state and no error other than
// ErrStoreCorrupt; opening and loading a log with a valid header must not
// change it (damage stays until reported); and the store must go on
// working: what it holds survives a write and a reopen.
//
// Each input costs a few file operations on one file per process (each
// fuzzing worker has its own temporary directory), rewritten in place:
// truncating a file to nothing and writing it again makes some file systems
// (ext4) flush it on close, which made each input take milliseconds.
func FuzzFileStoreLoad(f *testing.F) {
	log := fuzzLog(f)
	header, records := log[:headerLen2], log[headerLen2:]
	full := parseLog(buildOpsLog(f, []storeOp{{kind: "save", r: mqtt.StoredPublish{Seq: 1, Message: storetest.FullMessage(1)}}}))[0].body
	f.Add(byte(0), records)
	f.Add(byte(0), records[:len(records)-3])
	f.Add(byte(0), records[20:])
	f.Add(byte(0), []byte{})
	f.Add(byte(1), []byte{9, 2, 1, 0, 0, 0, 0, 0, 0, 0, 3, 3, 5, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0})
	f.Add(byte(1), append([]byte{byte(len(full))}, full...))
	f.Add(byte(2), log[:min(len(log), maxFuzzLog)])
	f.Add(byte(2), version1(log))
	f.Add(byte(2), []byte("MQTT"))
	// One file for all inputs: a fresh t.TempDir per input would give the
	// fuzzer's coverage random noise from the directory names.
	path := filepath.Join(f.TempDir(), "fuzz")
	opts := &filestore.Options{Sync: filestore.SyncNever}
	f.Fuzz(func(t *testing.T, mode byte, data []byte) {
		if len(data) > maxFuzzLog {
			return
		}
		var content []byte
		switch mode % 3 {
		case 0:
			content = append(bytes.Clone(header), data...)
		case 1:
			content = frame(header, data)
		default:
			content = data
		}
		writeLog(t, path, content)
		s, err := filestore.Open(path, opts)
		if err != nil {
			if bytes.HasPrefix(content, header) {
				t.Fatalf("Open on a log with a valid header: %v", err)
			}
			return
		}
		defer func() { s.Close() }()
		out, in, err := s.Load()
		if err != nil && !errors.Is(err, mqtt.ErrStoreCorrupt) {
			t.Fatalf("Load: %v", err)
		}
		if !slices.IsSortedFunc(out, func(a, b mqtt.StoredPublish) int { return cmpUint(a.Seq, b.Seq) }) ||
			!slices.IsSorted(in) ||
			len(slices.CompactFunc(slices.Clone(out), func(a, b mqtt.StoredPublish) bool { return a.Seq == b.Seq })) != len(out) ||
			len(slices.Compact(slices.Clone(in))) != len(in) {
			t.Fatalf("Load returned unsorted or repeated entries: %v %v", out, in)
		}
		if bytes.HasPrefix(content, header) {
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, content) {
				t.Fatalf("opening and loading changed the log (error %v)", err)
			}
		}

		// The store goes on from what it recovered.
		r := mqtt.StoredPublish{Seq: 0, PacketID: 1, Message: storetest.FullMessage(1)}
		for slices.ContainsFunc(out, func(o mqtt.StoredPublish) bool { return o.Seq == r.Seq }) {
			r.Seq++
		}
		id := uint16(0)
		for slices.Contains(in, id) && id < 1<<16-1 {
			id++
		}
		if err := errors.Join(s.SavePublish(r), s.SaveInbound(id), s.Close()); err != nil {
			t.Fatal(err)
		}
		i, _ := slices.BinarySearchFunc(out, r.Seq, func(a mqtt.StoredPublish, seq uint64) int { return cmpUint(a.Seq, seq) })
		wantOut := slices.Insert(out, i, r)
		wantIn := in
		if j, found := slices.BinarySearch(in, id); !found {
			wantIn = slices.Insert(in, j, id)
		}

		s, err = filestore.Open(path, opts)
		if err != nil {
			t.Fatalf("reopening: %v", err)
		}
		out, in, err = s.Load()
		if err != nil && !errors.Is(err, mqtt.ErrStoreCorrupt) {
			t.Fatalf("Load after reopening: %v", err)
		}
		if d := cmp.Diff(wantOut, out, storetest.Cmp); d != "" || !slices.Equal(wantIn, in) {
			t.Fatalf("after a write and a reopen (-want +got):\n%s\ninbound: got %v, want %v", d, in, wantIn)
		}
	})
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

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

// Regression: Store.applyLocked once appended the Seq of a new publish
// to s.order and, when order had grown past 2*len(out)+1024, tidied it with
// seqsLocked, which keeps only the Seqs present in s.out, before the new
// record was put in s.out. The record just saved dropped out of order: live
// in the index, but Load (and compaction, which also walks seqsLocked) no
// longer saw it, and replaying the log on Open repeated it.
//
// Found by TestCrashDurablePublish (3.1.1, about one run in 15 to 30): a
// message that the killed child had sent and stored with its packet ID was
// in the store file (a savePublish record, no deletePublish), but the next
// child's Load returned one record fewer and never re-sent it.

// TestFileStoreLoadAfterOrderTidy: 1024 publishes saved and deleted,
// then one more saved: Load must return it, before and after a reopen.
func TestFileStoreLoadAfterOrderTidy(t *testing.T) {
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
