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
