//go:build unix

package filestore_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/filestore"
	"github.com/b4e21b16/mqtt/internal/storetest"
	"github.com/google/go-cmp/cmp"
)

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
	header := log[:headerLen2]
	addFuzzSeeds(f, log)
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
		defer s.Close()
		out, in := loadSorted(t, s)
		if bytes.HasPrefix(content, header) {
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, content) {
				t.Fatalf("opening and loading changed the log (error %v)", err)
			}
		}
		goOnAfterLoad(t, s, path, opts, out, in)
	})
}

// addFuzzSeeds adds the seeds of FuzzFileStoreLoad, made from log, a log
// from fuzzLog.
func addFuzzSeeds(f *testing.F, log []byte) {
	records := log[headerLen2:]
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
}

// loadSorted calls Load on s and checks that it returns no error other
// than ErrStoreCorrupt, and sorted state without repeats.
func loadSorted(t *testing.T, s *filestore.Store) ([]mqtt.StoredPublish, []uint16) {
	t.Helper()
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
	return out, in
}

// goOnAfterLoad checks that s, which loaded out and in from the log at
// path, goes on from what it recovered: it saves a publish and an inbound
// ID that it does not hold, closes, and the store opened again holds them
// as well.
func goOnAfterLoad(t *testing.T, s *filestore.Store, path string, opts *filestore.Options, out []mqtt.StoredPublish, in []uint16) {
	t.Helper()
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

	s, err := filestore.Open(path, opts)
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	defer s.Close()
	out, in, err = s.Load()
	if err != nil && !errors.Is(err, mqtt.ErrStoreCorrupt) {
		t.Fatalf("Load after reopening: %v", err)
	}
	if d := cmp.Diff(wantOut, out, storetest.Cmp); d != "" || !slices.Equal(wantIn, in) {
		t.Fatalf("after a write and a reopen (-want +got):\n%s\ninbound: got %v, want %v", d, in, wantIn)
	}
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
