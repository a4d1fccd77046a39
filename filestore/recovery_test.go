//go:build unix

package filestore_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/filestore"
	"github.com/b4e21b16/mqtt/internal/storetest"
	"github.com/google/go-cmp/cmp"
)

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

// replayIntact returns what a store should recover from the log of ops
// when the records of the first present ops are there, and of these the
// ones marked bad are damaged: the intact records replayed in order, less
// the inbound IDs saved before damage followed by an intact record (a
// deletion may have been lost there) and not saved again since; these are
// returned as forgotten. mid says there was such damage.
func replayIntact(t testing.TB, ops []storeOp, present int, bad []bool) (out []mqtt.StoredPublish, in, forgotten []uint16, mid bool) {
	t.Helper()
	m := mqtt.NewMemoryStore()
	defer m.Close()
	uncertain := map[uint16]bool{}
	pending := false
	for i, op := range ops[:present] {
		if bad[i] {
			pending = true
			continue
		}
		if pending {
			_, ids, _ := m.Load()
			for _, id := range ids {
				uncertain[id] = true
			}
			pending, mid = false, true
		}
		if op.kind == "saveInbound" {
			delete(uncertain, op.id)
		}
		if err := op.apply(m); err != nil {
			t.Fatal(err)
		}
	}
	out, ids, err := m.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if uncertain[id] {
			forgotten = append(forgotten, id)
		} else {
			in = append(in, id)
		}
	}
	return out, in, forgotten, mid
}

// recoveryCase checks what a store recovers from damaged copies of one log.
type recoveryCase struct {
	ops    []storeOp
	log    []byte // undamaged
	hdrLen int64
	recs   []logRecord
	path   string // where the damaged copies go
	// writeAfter: after the check, write a change, reopen and check
	// again. It makes the damage go away, by a cut or a compaction.
	writeAfter bool
}

// damageSeen is what a damaged copy of a recoveryCase's log lost.
type damageSeen struct {
	fresh      bool   // a header cut short: a new log
	hdrDamaged bool   // the header differs
	present    int    // how many records the copy still reaches, damaged or not
	bad        []bool // by record: damaged
	firstBad   int64  // the offset of the first damaged record, or -1
}

// seen compares damaged with the undamaged log.
func (rc *recoveryCase) seen(damaged []byte) damageSeen {
	d := damageSeen{bad: make([]bool, len(rc.recs)), firstBad: -1}
	d.fresh = int64(len(damaged)) < rc.hdrLen
	d.hdrDamaged = !d.fresh && !bytes.Equal(damaged[:rc.hdrLen], rc.log[:rc.hdrLen])
	for i, r := range rc.recs {
		if r.off >= int64(len(damaged)) {
			break // the log ends before it: not damage
		}
		d.present = i + 1
		if r.off+r.n > int64(len(damaged)) || !bytes.Equal(damaged[r.off:r.off+r.n], rc.log[r.off:r.off+r.n]) {
			d.bad[i] = true
			if d.firstBad < 0 {
				d.firstBad = r.off
			}
		}
	}
	if d.fresh {
		d.present = 0
	}
	return d
}

// check writes damaged to the store's path and checks what it recovers. It
// returns what is wrong, or nil.
func (rc *recoveryCase) check(t *testing.T, damaged []byte) error {
	d := rc.seen(damaged)
	wantOut, wantIn, forgotten, mid := replayIntact(t, rc.ops, d.present, d.bad)
	wantErr := !d.fresh && (d.hdrDamaged || d.firstBad >= 0)

	writeLog(t, rc.path, damaged)
	s, err := filestore.Open(rc.path, nil)
	if err != nil {
		return fmt.Errorf("Open: %v", err)
	}
	defer s.Close()
	out, in, err := s.Load()
	if err := wantLoadErr(err, wantErr, d.hdrDamaged, d.firstBad, forgotten); err != nil {
		return err
	}
	if !samePublishes(wantOut, out) || !slices.Equal(wantIn, in) {
		return fmt.Errorf("Load: (-want +got):\n%s\ninbound IDs: got %v, want %v", cmp.Diff(wantOut, out, storetest.Cmp), in, wantIn)
	}
	if wantErr {
		// Nothing was removed before Load reported it.
		if got, err := os.ReadFile(rc.path); err != nil || !bytes.Equal(got, damaged) {
			return fmt.Errorf("the damaged log changed before the damage was reported (error %v)", err)
		}
	}
	if !rc.writeAfter {
		return nil
	}
	if err := rc.checkAfterWrite(s, wantOut, wantIn, mid, d.firstBad, forgotten); err != nil {
		return fmt.Errorf("after a write and a reopen: %w", err)
	}
	return nil
}

// checkAfterWrite checks that s, which recovered wantOut and wantIn from
// damage, goes on from there. A damaged end of the log is cut off at the
// first write and a damaged header is rewritten; other damage (mid) stays
// until a compaction, reported at each opening, with the offset of the
// first damaged record and the inbound IDs forgotten.
func (rc *recoveryCase) checkAfterWrite(s *filestore.Store, wantOut []mqtt.StoredPublish, wantIn []uint16, mid bool, firstBad int64, forgotten []uint16) error {
	const newID = 999
	if err := errors.Join(s.SaveInbound(newID), s.Close()); err != nil {
		return err
	}
	s, err := filestore.Open(rc.path, nil)
	if err != nil {
		return fmt.Errorf("Open: %v", err)
	}
	defer s.Close()
	out, in, err := s.Load()
	if err := wantLoadErr(err, mid, false, firstBad, forgotten); err != nil {
		return err
	}
	wantIn = append(slices.Clip(wantIn), newID)
	if !samePublishes(wantOut, out) || !slices.Equal(wantIn, in) {
		return fmt.Errorf("Load: (-want +got):\n%s\ninbound IDs: got %v, want %v", cmp.Diff(wantOut, out, storetest.Cmp), in, wantIn)
	}
	return nil
}

// samePublishes is cmp.Equal(a, b, storetest.Cmp), checked first with the much
// cheaper reflect.DeepEqual: the recovery test compares thousands of times.
func samePublishes(a, b []mqtt.StoredPublish) bool {
	return reflect.DeepEqual(a, b) || cmp.Equal(a, b, storetest.Cmp)
}

// wantLoadErr checks the error of Load: nil, or else matching
// ErrStoreCorrupt and naming the offset of the first damage (0 for the
// header) and the inbound IDs forgotten.
func wantLoadErr(err error, wantErr, hdrDamaged bool, firstBad int64, forgotten []uint16) error {
	if !wantErr {
		if err != nil {
			return fmt.Errorf("Load: %v, want no error", err)
		}
		return nil
	}
	if !errors.Is(err, mqtt.ErrStoreCorrupt) {
		return fmt.Errorf("Load: got error %v, want one matching ErrStoreCorrupt", err)
	}
	where := fmt.Sprintf(": offset %d: ", firstBad)
	if hdrDamaged {
		where = ": offset 0: damaged file header"
	}
	if !strings.Contains(err.Error(), where) {
		return fmt.Errorf("Load error %q does not mention %q", err, where)
	}
	if ids := fmt.Sprintf("forgot inbound packet IDs %v", forgotten); (len(forgotten) > 0) != strings.Contains(err.Error(), ids) {
		return fmt.Errorf("Load error %q: want it to mention %q: %t", err, ids, len(forgotten) > 0)
	}
	return nil
}

// TestFileStoreRecoversEveryIntactRecord damages a small log at every
// offset in turn (flipping bits, zeroing a stretch, cutting it short) and
// checks that the store recovers every record the damage did not touch,
// says where the damage is, and does not remove it before saying so.
func TestFileStoreRecoversEveryIntactRecord(t *testing.T) {
	t.Parallel()
	ops := recoveryOps()
	log := buildOpsLog(t, ops)
	for _, format := range []struct {
		name   string
		log    []byte
		hdrLen int64
		// writeAfter is off for version 1, whose every write after
		// damage is a compaction (a conversion) with an fsync: slow.
		writeAfter bool
	}{
		{"Version2", log, headerLen2, true},
		{"Version1", version1(log), headerLen1, false},
	} {
		t.Run(format.name, func(t *testing.T) {
			t.Parallel()
			for name, damages := range map[string]damager{"Flip": flipBits, "Zero": zeroBytes, "Truncate": cutShort} {
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					rc := &recoveryCase{
						ops: ops, log: format.log, hdrLen: format.hdrLen, recs: parseLog(format.log),
						path: filepath.Join(t.TempDir(), "store"), writeAfter: format.writeAfter,
					}
					rc.checkEach(t, damages)
				})
			}
		})
	}
}

// A damager yields, for a log of size bytes with a header of hdrLen bytes,
// ways to damage it in place, each with a description.
type damager func(size int, hdrLen int64, yield func(what string, damage func([]byte) []byte))

// flipBits flips all the bits, and then one, of each byte in turn.
func flipBits(size int, _ int64, yield func(string, func([]byte) []byte)) {
	for off := range size {
		for _, bits := range []byte{0xff, 1 << (off % 8)} {
			yield(fmt.Sprintf("bits %#x flipped at offset %d", bits, off), func(b []byte) []byte {
				b[off] ^= bits
				return b
			})
		}
	}
}

// zeroBytes zeroes a stretch of bytes after the header, at each offset in
// turn.
func zeroBytes(size int, hdrLen int64, yield func(string, func([]byte) []byte)) {
	const n = 29
	for off := int(hdrLen); off < size; off++ {
		yield(fmt.Sprintf("%d bytes zeroed at offset %d", n, off), func(b []byte) []byte {
			clear(b[off:min(off+n, size)])
			return b
		})
	}
}

// cutShort cuts the log to each shorter length in turn.
func cutShort(size int, _ int64, yield func(string, func([]byte) []byte)) {
	for n := range size {
		yield(fmt.Sprintf("cut to %d bytes", n), func(b []byte) []byte { return b[:n] })
	}
}

// checkEach checks what the store recovers from each damaged copy of the
// log that damages yields, giving up after five failures.
func (rc *recoveryCase) checkEach(t *testing.T, damages damager) {
	start, n, failed := time.Now(), 0, 0
	damages(len(rc.log), rc.hdrLen, func(what string, damage func([]byte) []byte) {
		n++
		if failed >= 5 {
			return
		}
		if err := rc.check(t, damage(bytes.Clone(rc.log))); err != nil {
			t.Errorf("%s: %v", what, err)
			failed++
		}
	})
	t.Logf("%d cases on a log of %d bytes in %v", n, len(rc.log), time.Since(start).Round(time.Millisecond))
}

// buildLog saves n publishes to a new store at path and returns them and
// the log offset at which each record starts.
func buildLog(t *testing.T, path string, n int) (want []mqtt.StoredPublish, offs []int64) {
	t.Helper()
	s := openStore(t, path, &filestore.Options{Sync: filestore.SyncNever})
	for i := range n {
		seq := uint64(i + 1)
		r := mqtt.StoredPublish{Seq: seq, PacketID: uint16(seq), Message: storetest.FullMessage(seq)}
		offs = append(offs, fileSize(t, path))
		must(t, s.SavePublish(r))
		want = append(want, r)
	}
	must(t, s.Close())
	return want, offs
}

func TestFileStoreTornTail(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store")
	want, offs := buildLog(t, path, 4)
	full, err := os.ReadFile(path)
	must(t, err)
	last := int64(len(full)) - offs[3]
	for _, cut := range []int64{1, 2, 4, 7, 8, 9, 12, 16, 17, last / 2, last - 17, last - 16, last - 9, last - 8, last - 1} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "store")
			torn := full[:int64(len(full))-cut]
			must(t, os.WriteFile(path, torn, 0o600))
			s := openStore(t, path, nil)
			out, in, err := s.Load()
			wantCorrupt(t, err, path, fmt.Sprintf("1 damaged region, %s: offset %d: ", nBytes(last-cut), offs[3]),
				fmt.Sprintf("ignored the last %s of the log", nBytes(last-cut)))
			if d := cmp.Diff(want[:3], out, storetest.Cmp); d != "" || len(in) != 0 {
				t.Fatalf("Load after a torn tail (-want +got):\n%s\ninbound: %v", d, in)
			}
			// Nothing was removed before Load reported it.
			wantFile(t, path, torn)
			// The next write cuts the damaged end off, and the damage is
			// gone for good.
			r := mqtt.StoredPublish{Seq: 99, Message: storetest.FullMessage(99)}
			must(t, s.SavePublish(r))
			s = reopen(t, s, path)
			storetest.WantLoad(t, s, append(slices.Clip(want[:3]), r), nil)
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got[:offs[3]], full[:offs[3]]) {
				t.Errorf("the log before the damage changed (%v)", err)
			}
		})
	}
	// Cutting exactly one whole record is not damage: the log simply ends
	// earlier.
	path = filepath.Join(t.TempDir(), "store")
	must(t, os.WriteFile(path, full[:offs[3]], 0o600))
	storetest.WantLoad(t, openStore(t, path, nil), want[:3], nil)
}

func TestFileStoreZeroedTail(t *testing.T) {
	t.Parallel()
	// An OS crash can leave the file longer than what was written, the
	// rest filled with zeros.
	path := filepath.Join(t.TempDir(), "store")
	want, _ := buildLog(t, path, 3)
	size := fileSize(t, path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.Write(make([]byte, 4096))
	must(t, errors.Join(err, f.Close()))
	s := openStore(t, path, nil)
	out, _, err := s.Load()
	wantCorrupt(t, err, fmt.Sprintf("offset %d: no sync marker; ignored the last 4096 bytes of the log", size))
	if d := cmp.Diff(want, out, storetest.Cmp); d != "" {
		t.Fatalf("Load (-want +got):\n%s", d)
	}
	if got := fileSize(t, path); got != size+4096 {
		t.Errorf("log size %d before a write, want %d", got, size+4096)
	}
	must(t, s.SaveInbound(1))
	s = reopen(t, s, path)
	storetest.WantLoad(t, s, want, []uint16{1})
}

func TestFileStoreDamagedMiddle(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store")
	want, offs := buildLog(t, path, 4)
	full, err := os.ReadFile(path)
	must(t, err)
	for _, tc := range []struct {
		name    string
		at      int64 // offset in the second record
		bits    byte
		message string
	}{
		{"Marker", 0, 0x01, "no sync marker"},
		{"Length", markerLen + 3, 0xff, "implausible record length"},
		{"LengthShorter", markerLen, 0x01, "checksum mismatch"},
		{"Checksum", markerLen + 5, 0x10, "checksum mismatch"},
		{"Body", 30, 0x40, "checksum mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			damaged := bytes.Clone(full)
			damaged[offs[1]+tc.at] ^= tc.bits
			path := filepath.Join(t.TempDir(), "store")
			must(t, os.WriteFile(path, damaged, 0o600))
			s := openStore(t, path, nil)
			out, _, err := s.Load()
			wantCorrupt(t, err, fmt.Sprintf("1 damaged region, %d bytes: offset %d: %s", offs[2]-offs[1], offs[1], tc.message),
				fmt.Sprintf("skipped %d bytes", offs[2]-offs[1]))
			// Every record after the damaged one is recovered.
			wantOut := []mqtt.StoredPublish{want[0], want[2], want[3]}
			if d := cmp.Diff(wantOut, out, storetest.Cmp); d != "" {
				t.Fatalf("Load (-want +got):\n%s", d)
			}
			// The damaged record stays until a compaction, and is reported
			// at each opening until then.
			must(t, s.SaveInbound(4))
			s = reopen(t, s, path)
			out, in, err := s.Load()
			wantCorrupt(t, err, fmt.Sprintf("offset %d: %s", offs[1], tc.message))
			if d := cmp.Diff(wantOut, out, storetest.Cmp); d != "" || !slices.Equal(in, []uint16{4}) {
				t.Fatalf("Load after reopening (-want +got):\n%s\ninbound: %v", d, in)
			}
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got[:len(damaged)], damaged) {
				t.Errorf("the damaged log changed (%v)", err)
			}
		})
	}
}

// TestFileStoreDamageKeptUntilReported: a store written to before any Load
// keeps the damage it found, even when a compaction is due; the first
// compaction after a Load drops it.
func TestFileStoreDamageKeptUntilReported(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store")
	want, offs := buildLog(t, path, 3)
	damaged, err := os.ReadFile(path)
	must(t, err)
	damaged[offs[0]+40] ^= 1           // the first record
	damaged = damaged[:len(damaged)-5] // and a torn end
	must(t, os.WriteFile(path, damaged, 0o600))

	opts := &filestore.Options{Sync: filestore.SyncNever, CompactBytes: 1 << 10}
	s := openStore(t, path, opts)
	for seq := uint64(100); seq < 120; seq++ { // enough to compact many times over
		must(t, s.SavePublish(mqtt.StoredPublish{Seq: seq, Message: storetest.FullMessage(seq)}))
		must(t, s.DeletePublish(seq))
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got[:len(damaged)], damaged) {
		t.Fatalf("writes before Load changed the damaged log (%v)", err)
	}
	must(t, s.Close())

	// The torn end is now followed by records: damage in the middle.
	s = openStore(t, path, opts)
	out, _, err := s.Load()
	wantCorrupt(t, err, "2 damaged regions", fmt.Sprintf("offset %d: checksum mismatch; skipped", offs[0]),
		fmt.Sprintf("offset %d: ", offs[2]))
	if d := cmp.Diff(want[1:2], out, storetest.Cmp); d != "" {
		t.Fatalf("Load (-want +got):\n%s", d)
	}
	compact(t, s, path)
	s = reopen(t, s, path)
	storetest.WantLoad(t, s, want[1:2], nil)
}

// TestFileStoreForgetsInboundBeforeDamage: an inbound packet ID whose
// deletion may have been lost with a damaged record is forgotten, unless
// it was saved again after the damage.
func TestFileStoreForgetsInboundBeforeDamage(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store")
	s := openStore(t, path, nil)
	must(t, s.SaveInbound(1))
	must(t, s.SaveInbound(2))
	must(t, s.SaveInbound(3))
	off := fileSize(t, path)
	must(t, s.DeleteInbound(2)) // to be damaged
	must(t, s.DeleteInbound(3))
	must(t, s.SaveInbound(3))
	must(t, s.SaveInbound(4))
	must(t, s.Close())
	damaged, err := os.ReadFile(path)
	must(t, err)
	damaged[off+recHeaderLen2] ^= 0x80
	must(t, os.WriteFile(path, damaged, 0o600))

	s = openStore(t, path, nil)
	_, in, err := s.Load()
	wantCorrupt(t, err, fmt.Sprintf("offset %d: checksum mismatch", off), "forgot inbound packet IDs [1 2]")
	if !slices.Equal(in, []uint16{3, 4}) {
		t.Errorf("Load: inbound IDs %v, want [3 4]", in)
	}
}

func TestFileStoreVersion1(t *testing.T) {
	t.Parallel()
	ops := recoveryOps()
	log := buildOpsLog(t, ops)
	wantOut, wantIn, _, _ := replayIntact(t, ops, len(ops), make([]bool, len(ops)))
	v1 := version1(log)

	t.Run("Converted", func(t *testing.T) {
		t.Parallel()
		// An undamaged log is rewritten in the current format when opened.
		path := filepath.Join(t.TempDir(), "store")
		must(t, os.WriteFile(path, v1, 0o600))
		s := openStore(t, path, nil)
		storetest.WantLoad(t, s, wantOut, wantIn)
		got, err := os.ReadFile(path)
		must(t, err)
		if !bytes.HasPrefix(got, []byte("MQTTSTOR\x02\x00\x00\x00")) {
			t.Fatalf("log after opening starts with %q, want a version 2 header", got[:min(len(got), 24)])
		}
		must(t, s.SaveInbound(100))
		s = reopen(t, s, path)
		storetest.WantLoad(t, s, wantOut, append(slices.Clip(wantIn), 100))
	})

	t.Run("Damaged", func(t *testing.T) {
		t.Parallel()
		// A damaged one is kept as it is until Load has reported the
		// damage, then converted at the next write.
		recs := parseLog(v1)
		damaged := bytes.Clone(v1)
		damaged[recs[1].off+2] ^= 0x20 // the length of a publish record
		path := filepath.Join(t.TempDir(), "store")
		must(t, os.WriteFile(path, damaged, 0o600))
		s := openStore(t, path, nil)
		bad := make([]bool, len(ops))
		bad[1] = true
		wantOut, wantIn, forgotten, _ := replayIntact(t, ops, len(ops), bad)
		out, in, err := s.Load()
		wantCorrupt(t, err, fmt.Sprintf("offset %d: incomplete record", recs[1].off), fmt.Sprintf("skipped %d bytes", recs[1].n))
		if len(forgotten) != 0 || !cmp.Equal(wantOut, out, storetest.Cmp) || !slices.Equal(wantIn, in) {
			t.Fatalf("Load (-want +got):\n%s\ninbound: got %v, want %v", cmp.Diff(wantOut, out, storetest.Cmp), in, wantIn)
		}
		wantFile(t, path, damaged)
		must(t, s.SaveInbound(100))
		s = reopen(t, s, path)
		storetest.WantLoad(t, s, wantOut, append(slices.Clip(wantIn), 100))
		if got, err := os.ReadFile(path); err != nil || got[8] != 2 {
			t.Errorf("log after a write: version %d (%v), want 2", got[8], err)
		}
	})
}

// TestFileStoreDamagedHeader: a log whose header and first record both
// lost their sync marker is still recognised: the marker is learned from
// the next record.
func TestFileStoreDamagedHeader(t *testing.T) {
	t.Parallel()
	ops := recoveryOps()
	log := buildOpsLog(t, ops)
	recs := parseLog(log)
	damaged := bytes.Clone(log)
	clear(damaged[headerLen1 : headerLen2+recHeaderLen2]) // the header's marker and checksum, the first record's header
	path := filepath.Join(t.TempDir(), "store")
	must(t, os.WriteFile(path, damaged, 0o600))
	s := openStore(t, path, nil)
	bad := make([]bool, len(ops))
	bad[0] = true
	wantOut, wantIn, _, _ := replayIntact(t, ops, len(ops), bad)
	out, in, err := s.Load()
	wantCorrupt(t, err, "offset 0: damaged file header (its sync marker)", fmt.Sprintf("offset %d: no sync marker; skipped %d bytes", recs[0].off, recs[0].n))
	if !cmp.Equal(wantOut, out, storetest.Cmp) || !slices.Equal(wantIn, in) {
		t.Fatalf("Load (-want +got):\n%s\ninbound: got %v, want %v", cmp.Diff(wantOut, out, storetest.Cmp), in, wantIn)
	}
}
