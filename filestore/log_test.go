//go:build unix

package filestore_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/filestore"
	"github.com/b4e21b16/mqtt/internal/storetest"
)

// The layout of a log, as format.go describes it: the tests build
// and take apart logs byte by byte.
const (
	headerLen1    = 12 // "MQTTSTOR", version 1
	recHeaderLen1 = 8  // length, CRC-32C of the body
	headerLen2    = 24 // "MQTTSTOR", version 2, sync marker, CRC-32C
	recHeaderLen2 = 16 // sync marker, length, CRC-32C of offset, length and body
	markerLen     = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header2 returns the header of a version 2 log with sync marker m.
func header2(m []byte) []byte {
	h := binary.LittleEndian.AppendUint32([]byte("MQTTSTOR"), 2)
	h = append(h, m...)
	return binary.LittleEndian.AppendUint32(h, crc32.Checksum(h, castagnoli))
}

// appendRecord2 appends to log a version 2 record holding body, with sync
// marker m.
func appendRecord2(log, m, body []byte) []byte {
	var p [12]byte
	binary.LittleEndian.PutUint64(p[:], uint64(len(log)))
	binary.LittleEndian.PutUint32(p[8:], uint32(len(body)))
	log = append(log, m...)
	log = binary.LittleEndian.AppendUint32(log, uint32(len(body)))
	log = binary.LittleEndian.AppendUint32(log, crc32.Update(crc32.Update(0, castagnoli, p[:]), castagnoli, body))
	return append(log, body...)
}

// logRecord is a record of a log.
type logRecord struct {
	off, n int64 // where it starts; its length, header included
	body   []byte
}

// parseLog returns the records of an undamaged log of either version.
func parseLog(log []byte) []logRecord {
	hl, rl, lenAt := int64(headerLen2), int64(recHeaderLen2), int64(markerLen)
	if log[8] == 1 {
		hl, rl, lenAt = headerLen1, recHeaderLen1, 0
	}
	var recs []logRecord
	for off := hl; off < int64(len(log)); {
		n := rl + int64(binary.LittleEndian.Uint32(log[off+lenAt:]))
		recs = append(recs, logRecord{off, n, log[off+rl : off+n]})
		off += n
	}
	return recs
}

// version1 returns a version 2 log in the version 1 format.
func version1(log []byte) []byte {
	v1 := binary.LittleEndian.AppendUint32([]byte("MQTTSTOR"), 1)
	for _, r := range parseLog(log) {
		v1 = binary.LittleEndian.AppendUint32(v1, uint32(len(r.body)))
		v1 = binary.LittleEndian.AppendUint32(v1, crc32.Checksum(r.body, castagnoli))
		v1 = append(v1, r.body...)
	}
	return v1
}

// withMarker returns a version 2 log rewritten with sync marker m.
func withMarker(log, m []byte) []byte {
	out := header2(m)
	for _, r := range parseLog(log) {
		out = appendRecord2(out, m, r.body)
	}
	return out
}

// writeLog makes content the content of the file at path. It overwrites
// the file in place rather than truncating it to nothing, which is much
// cheaper on file systems that flush a file truncated that way.
func writeLog(t testing.TB, path string, content []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt(content, 0)
	if err := errors.Join(err, f.Truncate(int64(len(content))), f.Close()); err != nil {
		t.Fatal(err)
	}
}

// nBytes says "1 byte" or "n bytes", as the store's errors do.
func nBytes(n int64) string {
	if n == 1 {
		return "1 byte"
	}
	return fmt.Sprintf("%d bytes", n)
}

// storeOp is one change to a store.
type storeOp struct {
	kind string // "save", "delete", "saveInbound" or "deleteInbound"
	r    mqtt.StoredPublish
	id   uint16
}

func (op storeOp) apply(s mqtt.Store) error {
	switch op.kind {
	case "save":
		return s.SavePublish(op.r)
	case "delete":
		return s.DeletePublish(op.r.Seq)
	case "saveInbound":
		return s.SaveInbound(op.id)
	case "deleteInbound":
		return s.DeleteInbound(op.id)
	}
	panic("unknown store operation " + op.kind)
}

// recoveryOps are the changes behind the log of the recovery tests, a
// record each. Later ones replace and delete earlier ones, so that which
// records are lost decides what the store holds.
func recoveryOps() []storeOp {
	msg := func(seq uint64, id uint16, released bool) mqtt.StoredPublish {
		return mqtt.StoredPublish{Seq: seq, PacketID: id, Released: released, Message: mqtt.Message{
			Topic: fmt.Sprintf("r/%d", seq), Payload: []byte{byte(seq)}, QoS: mqtt.ExactlyOnce,
		}}
	}
	return []storeOp{
		{kind: "save", r: msg(1, 0, false)},
		{kind: "save", r: mqtt.StoredPublish{Seq: 2, Message: storetest.FullMessage(2)}},
		{kind: "saveInbound", id: 7},
		{kind: "save", r: msg(1, 1, false)}, // sent
		{kind: "saveInbound", id: 9},
		{kind: "delete", r: msg(2, 0, false)},
		{kind: "save", r: msg(3, 0, false)},
		{kind: "deleteInbound", id: 7},
		{kind: "save", r: msg(1, 1, true)}, // PUBREC received
		{kind: "saveInbound", id: 7},       // the ID used again
		{kind: "save", r: msg(4, 0, false)},
		{kind: "deleteInbound", id: 9},
		{kind: "delete", r: msg(3, 0, false)},
		{kind: "saveInbound", id: 11},
		{kind: "save", r: msg(3, 2, false)}, // a Seq used again
	}
}

// buildOpsLog applies ops to a new store and returns its log, checking that
// each op wrote one record.
func buildOpsLog(t testing.TB, ops []storeOp) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store")
	s := openStore(t, path, &filestore.Options{Sync: filestore.SyncNever})
	for _, op := range ops {
		if err := op.apply(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(parseLog(log)); n != len(ops) {
		t.Fatalf("%d operations wrote %d records", len(ops), n)
	}
	return log
}
