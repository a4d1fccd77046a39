//go:build unix

package filestore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"path/filepath"
	"strings"

	"github.com/b4e21b16/mqtt"
)

// damage is a damaged region of the log found by replay.
type damage struct {
	off  int64  // where it starts
	n    int64  // its length
	what string // what is wrong at off
}

// replay identifies the format of the log (writing a header to a new
// file), then replays the log to build the index, recovering every intact
// record. It changes nothing in a log that has a header: damage stays in
// place until Load has reported it (see Store). It sets s.damage to
// what it found, and returns an error only when the file cannot be used.
func (s *Store) replay() error {
	fi, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("filestore: failed to open %s: %w", s.path, err)
	}
	sc := &scanner{r: logReader{f: s.f, size: fi.Size()}}
	lf, hdrDamage, err := sc.identify()
	if err != nil {
		return fmt.Errorf("filestore: failed to read %s: %w", s.path, err)
	}
	switch hdrDamage {
	case notStoreLog:
		h, _ := sc.r.at(0, min(sc.r.size, headerLen1))
		if sc.r.size >= headerLen1 && string(h[:len(fileMagic)]) == fileMagic {
			return fmt.Errorf("filestore: %s has format version %d, this version of the library reads versions %d and %d",
				s.path, binary.LittleEndian.Uint32(h[len(fileMagic):]), fileVersion1, fileVersion2)
		}
		return fmt.Errorf("filestore: %s is not a store log: it starts with %q", s.path, h)
	case newLog:
		return s.writeHeader()
	}
	s.lf = lf
	s.rewrite = lf.version != fileVersion2 || hdrDamage != ""
	found, dropped, err := s.replayRecords(sc)
	if err != nil {
		return fmt.Errorf("filestore: failed to read %s: %w", s.path, err)
	}
	if hdrDamage != "" {
		found = append([]damage{{0, lf.headerLen(), hdrDamage}}, found...)
	}
	s.damage = damageReport(s.path, found, s.tailOff, dropped)
	return nil
}

// replayRecords indexes every intact record of the log, in format s.lf. It
// returns the damaged regions it skipped, and the inbound IDs it dropped
// because damage after their last save may have held their deletion.
func (s *Store) replayRecords(sc *scanner) (found []damage, dropped []uint16, err error) {
	var (
		off       = s.lf.headerLen()
		damaged   = false     // damage since the last good record
		uncertain *inboundSet // inbound IDs saved before damage, not since
	)
	s.live = off
	for off < sc.r.size {
		rec, why, err := sc.recordAt(&s.lf, off)
		if err != nil {
			return nil, nil, err
		}
		if why == "" {
			if damaged {
				if uncertain == nil {
					uncertain = new(inboundSet)
				}
				uncertain.add(&s.in)
				damaged = false
			}
			if rec.kind == recSaveInbound && uncertain != nil {
				uncertain.set(uint16(rec.key), false)
			}
			s.applyLocked(rec.kind, rec.key, recordLoc{off, rec.n})
			off += rec.n
			continue
		}
		end := off + rec.n // a whole record that does not decode
		if rec.n == 0 {
			if end, err = sc.next(&s.lf, off); err != nil {
				return nil, nil, err
			}
		}
		if last := len(found) - 1; last >= 0 && found[last].off+found[last].n == off {
			found[last].n += end - off
		} else {
			found = append(found, damage{off, end - off, why})
		}
		damaged = true
		off = end
	}
	s.size = off
	if damaged {
		s.tailOff = found[len(found)-1].off
	}
	if uncertain != nil {
		for _, id := range uncertain.ids() {
			if s.in.set(id, false) {
				s.live -= s.lf.recHeaderLen() + 3 // a saveInbound record
				dropped = append(dropped, id)
			}
		}
	}
	return found, dropped, nil
}

// damageReport describes the damage replay found, or returns nil if there
// is none. tail is the offset of the damaged region at the end of the log,
// if there is one (otherwise 0); a region at offset 0 is the file header.
func damageReport(path string, found []damage, tail int64, dropped []uint16) error {
	if len(found) == 0 {
		return nil
	}
	const maxShown = 5 // regions described one by one
	var total int64
	msgs := make([]string, 0, min(len(found), maxShown)+2)
	for i, d := range found {
		total += d.n
		switch {
		case i >= maxShown:
		case d.off == 0:
			msgs = append(msgs, fmt.Sprintf("offset 0: %s", d.what))
		case d.off == tail:
			msgs = append(msgs, fmt.Sprintf("offset %d: %s; ignored the last %s of the log", d.off, d.what, nBytes(d.n)))
		default:
			msgs = append(msgs, fmt.Sprintf("offset %d: %s; skipped %s", d.off, d.what, nBytes(d.n)))
		}
	}
	if len(found) > maxShown {
		msgs = append(msgs, fmt.Sprintf("and %d more damaged regions", len(found)-maxShown))
	}
	if len(dropped) > 0 {
		const maxIDs = 20
		ids := fmt.Sprint(dropped[:min(len(dropped), maxIDs)])
		if len(dropped) > maxIDs {
			ids = fmt.Sprintf("%s and %d more", ids[:len(ids)-1], len(dropped)-maxIDs) + "]"
		}
		msgs = append(msgs, fmt.Sprintf("forgot inbound packet IDs %s, saved before damage that may have held their deletion", ids))
	}
	regions := "1 damaged region"
	if len(found) > 1 {
		regions = fmt.Sprintf("%d damaged regions", len(found))
	}
	return fmt.Errorf("%w: %s: %s, %s: %s", mqtt.ErrStoreCorrupt, path, regions, nBytes(total), strings.Join(msgs, "; "))
}

// nBytes says "1 byte" or "n bytes".
func nBytes(n int64) string {
	if n == 1 {
		return "1 byte"
	}
	return fmt.Sprintf("%d bytes", n)
}

// writeHeader makes the log a new, empty one: a version 2 header.
func (s *Store) writeHeader() error {
	s.lf = newLogFormat()
	hdr := header2(s.lf.marker[:])
	if _, err := s.f.WriteAt(hdr, 0); err != nil {
		return fmt.Errorf("filestore: failed to write %s: %w", s.path, err)
	}
	if err := s.f.Truncate(int64(len(hdr))); err != nil {
		return fmt.Errorf("filestore: failed to write %s: %w", s.path, err)
	}
	s.size, s.live = int64(len(hdr)), int64(len(hdr))
	if s.opts.Sync == SyncAlways {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("filestore: failed to sync %s: %w", s.path, err)
		}
		if err := syncDir(filepath.Dir(s.path)); err != nil {
			return fmt.Errorf("filestore: failed to sync the directory of %s: %w", s.path, err)
		}
	}
	return nil
}

// Outcomes of scanner.identify other than a (possibly damaged) header.
const (
	newLog      = "\x00new"       // an empty file, or a header cut short: no records
	notStoreLog = "\x00not a log" // not a log, or too damaged to tell
)

// identify reads the file header and returns the format of the log, and
// what is wrong with the header: "" if nothing, newLog or notStoreLog.
//
// A damaged header does not lose the log if what is left of it, or its
// first records, show whose it is: at least one of the magic string, the
// version and the header checksum must be intact, and the sync marker must
// be confirmed by the header checksum or by a record that checks out with
// it. A header that was never completely written (the file is a prefix of
// one) means a new log.
func (sc *scanner) identify() (lf logFormat, what string, err error) {
	size := sc.r.size
	h, err := sc.r.at(0, min(size, headerLen2))
	if err != nil {
		return lf, "", err
	}
	h = bytes.Clone(h)
	if size < headerLen2 && isHeaderPrefix(h) {
		return lf, newLog, nil
	}
	magicOK := size >= int64(len(fileMagic)) && string(h[:len(fileMagic)]) == fileMagic
	var version uint32
	if size >= headerLen1 {
		version = binary.LittleEndian.Uint32(h[len(fileMagic):])
	}
	if size >= headerLen2 {
		if lf, what, ok, err := sc.identify2(h, magicOK, version); err != nil || ok {
			return lf, what, err
		}
	}
	return sc.identify1(magicOK, version)
}

// isHeaderPrefix reports whether h, the whole of a file shorter than a
// version 2 header, is the start of a header of either version: one that
// a crash cut short while the file was being created.
func isHeaderPrefix(h []byte) bool {
	k := min(len(h), headerLen1)
	v2 := header2(make([]byte, markerLen))[:headerLen1]
	v1 := binary.LittleEndian.AppendUint32([]byte(fileMagic), fileVersion1)
	return bytes.Equal(h[:k], v2[:k]) || len(h) < headerLen1 && bytes.Equal(h, v1[:k])
}

// identify2 reads h, the first headerLen2 bytes of the file, as a version 2
// header, intact or damaged, given whether its magic string is intact and
// the version it holds. ok says whether the file is a version 2 log (or
// err says why that could not be told); if not, it may be a version 1 log.
func (sc *scanner) identify2(h []byte, magicOK bool, version uint32) (lf logFormat, what string, ok bool, err error) {
	lf = logFormat{version: fileVersion2, marker: [markerLen]byte(h[headerLen1:])}
	// The checksum, as it would be if the magic and version were intact.
	sumOK := bytes.Equal(header2(lf.marker[:])[headerLen2-4:], h[headerLen2-4:])
	switch {
	case magicOK && version == fileVersion2 && sumOK:
		return lf, "", true, nil
	case version == fileVersion1:
		// Version 1, unless the checksum of a version 2 header and the
		// first record both say otherwise.
		valid, err := sc.valid(&lf, headerLen2)
		return lf, "damaged file header (its version)", err != nil || sumOK && (valid || sc.r.size == headerLen2), err
	case sumOK && (magicOK || version == fileVersion2):
		return lf, "damaged file header (its magic string or version)", true, nil
	case magicOK || version == fileVersion2:
		return sc.confirmMarker(lf, magicOK && version == fileVersion2)
	}
	return lf, "", false, nil
}

// confirmMarker looks for the sync marker of a log whose version 2 header
// has a checksum that does not match, lf holding the header's marker: it is
// the header's marker if the first record checks out with it, or else the
// first record's own if it checks out with that. sure says the magic string
// and version are intact: then the file is a version 2 log even if no
// record confirms a marker, and the whole log is searched for one. It
// returns what identify2 does.
func (sc *scanner) confirmMarker(lf logFormat, sure bool) (logFormat, string, bool, error) {
	if ok, err := sc.valid(&lf, headerLen2); err != nil || ok {
		return lf, "damaged file header (its checksum)", true, err
	}
	if sc.r.size >= headerLen2+markerLen {
		m, err := sc.r.at(headerLen2, markerLen)
		if err != nil {
			return lf, "", true, err
		}
		lf2 := logFormat{version: fileVersion2, marker: [markerLen]byte(m)}
		if ok, err := sc.valid(&lf2, headerLen2); err != nil || ok {
			return lf2, "damaged file header (its sync marker)", true, err
		}
	}
	if !sure {
		return lf, "", false, nil
	}
	// Both the header's marker and the first record may be damaged: look
	// for any record to learn the marker from.
	lf2, found, err := sc.findMarker(headerLen2)
	if err != nil || found {
		return lf2, "damaged file header (its sync marker)", true, err
	}
	return lf, "damaged file header (no record confirms its sync marker)", true, nil
}

// identify1 reads the file as a version 1 log, whose header may be damaged
// (given whether its magic string is intact and the version it holds), or
// finds that it is not a store log.
func (sc *scanner) identify1(magicOK bool, version uint32) (logFormat, string, error) {
	lf := logFormat{version: fileVersion1}
	if sc.r.size < headerLen1 {
		return lf, notStoreLog, nil
	}
	if magicOK && version == fileVersion1 {
		return lf, "", nil
	}
	if magicOK || version == fileVersion1 {
		if ok, err := sc.valid(&lf, headerLen1); err != nil || ok {
			return lf, "damaged file header", err
		}
	}
	return lf, notStoreLog, nil
}

// scanner reads the records of a log.
type scanner struct {
	r logReader
	// work is the number of bytes checksummed by searches that try every
	// position (version 1 logs, a lost sync marker). They give up past
	// maxSearchWork, so that damage cannot make opening a log take
	// quadratic time.
	work int64
}

// maxSearchWork bounds scanner.work.
func (sc *scanner) maxSearchWork() int64 { return 16*sc.r.size + 64<<20 }

// record is what recordAt found at an offset of the log.
type record struct {
	n    int64 // length, header included
	kind byte
	key  uint64 // seq or packet ID
}

// recordAt checks the record at off: it returns it, or why there is no
// good record there. A record that checks out but does not decode comes
// with its length (n > 0), so that it can be skipped exactly.
func (sc *scanner) recordAt(lf *logFormat, off int64) (rec record, why string, err error) {
	hl := lf.recHeaderLen()
	if sc.r.size-off < hl {
		return rec, "incomplete record header", nil
	}
	h, err := sc.r.at(off, hl)
	if err != nil {
		return rec, "", err
	}
	n, sum, why := lf.parseRecordHeader(h)
	if why != "" {
		return rec, why, nil
	}
	if sc.r.size-off-hl < n {
		return rec, fmt.Sprintf("incomplete record (%d of %d bytes)", sc.r.size-off, hl+n), nil
	}
	got, err := sc.r.checksum(lf.sumPrefix(off, n), off+hl, n)
	if err != nil {
		return rec, "", err
	}
	if got != sum {
		return rec, "checksum mismatch", nil
	}
	body, err := sc.r.at(off+hl, n)
	if err != nil {
		return rec, "", err
	}
	rec.n = hl + n
	rec.kind, rec.key, err = decodeKey(body)
	if err != nil {
		return rec, err.Error(), nil
	}
	return rec, "", nil
}

// valid reports whether a record at off checks out in format lf.
func (sc *scanner) valid(lf *logFormat, off int64) (bool, error) {
	rec, why, err := sc.recordAt(lf, off)
	return err == nil && rec.n > 0 && why == "", err
}

// next returns the offset of the first record after off that checks out
// (even if it does not decode), or the end of the log if there is none.
func (sc *scanner) next(lf *logFormat, off int64) (int64, error) {
	if lf.version == fileVersion1 {
		return sc.search(off+1, func(q int64) (bool, error) { return sc.plausible1(lf, q) })
	}
	for {
		q, err := sc.r.index(lf.marker[:], off+1)
		if err != nil || q < 0 {
			return sc.r.size, err
		}
		if rec, _, err := sc.recordAt(lf, q); err != nil || rec.n > 0 {
			return q, err
		}
		off = q
	}
}

// plausible1 reports whether a version 1 record that decodes starts at q.
// It looks at the kind and length before it computes a checksum.
func (sc *scanner) plausible1(lf *logFormat, q int64) (bool, error) {
	if sc.r.size-q < recHeaderLen1+1 {
		return false, nil
	}
	h, err := sc.r.at(q, recHeaderLen1+1)
	if err != nil {
		return false, err
	}
	n := int64(binary.LittleEndian.Uint32(h))
	switch h[recHeaderLen1] {
	case recSavePublish:
		if n < minPublishBody || n > sc.r.size-q-recHeaderLen1 {
			return false, nil
		}
	case recDeletePublish:
		if n != 1+8 {
			return false, nil
		}
	case recSaveInbound, recDeleteInbound:
		if n != 1+2 {
			return false, nil
		}
	default:
		return false, nil
	}
	sc.work += n
	return sc.valid(lf, q)
}

// findMarker looks for the first record at or after off that checks out in
// version 2 with the 8 bytes it starts with as the sync marker, and
// returns the format with that marker.
func (sc *scanner) findMarker(off int64) (lf logFormat, found bool, err error) {
	lf.version = fileVersion2
	q, err := sc.search(off, func(q int64) (bool, error) {
		if sc.r.size-q < recHeaderLen2+1 {
			return false, nil
		}
		h, err := sc.r.at(q, recHeaderLen2+1)
		if err != nil {
			return false, err
		}
		n := int64(binary.LittleEndian.Uint32(h[markerLen:]))
		if k := h[recHeaderLen2]; k < recSavePublish || k > recDeleteInbound || n > sc.r.size-q-recHeaderLen2 {
			return false, nil
		}
		lf.marker = [markerLen]byte(h)
		sc.work += n
		return sc.valid(&lf, q)
	})
	return lf, err == nil && q < sc.r.size, err
}

// search returns the first offset from off on at which at says a record
// starts, or the end of the log if there is none or the search has done
// its share of work.
func (sc *scanner) search(off int64, at func(q int64) (bool, error)) (int64, error) {
	for q := off; q < sc.r.size && sc.work <= sc.maxSearchWork(); q++ {
		if ok, err := at(q); err != nil || ok {
			return q, err
		}
	}
	return sc.r.size, nil
}

// logReader reads a log through a buffer that holds a window of it.
type logReader struct {
	f    io.ReaderAt
	size int64
	buf  []byte // the bytes of the file from off on
	off  int64
}

// readWindow is how much logReader reads at a time.
const readWindow = 64 << 10

// at returns the n bytes at off, which must lie within the log. The result
// is valid until the next call.
func (r *logReader) at(off, n int64) ([]byte, error) {
	if off >= r.off && off+n <= r.off+int64(len(r.buf)) {
		return r.buf[off-r.off:][:n], nil
	}
	m := min(max(n, readWindow), r.size-off)
	if int64(cap(r.buf)) < m || cap(r.buf) > 4*readWindow && m <= readWindow {
		r.buf = make([]byte, m)
	}
	r.buf, r.off = r.buf[:m], off
	if _, err := r.f.ReadAt(r.buf, off); err != nil {
		r.buf = r.buf[:0]
		return nil, err
	}
	return r.buf[:n], nil
}

// checksum continues the CRC-32C crc over the n bytes at off, reading them
// a window at a time.
func (r *logReader) checksum(crc uint32, off, n int64) (uint32, error) {
	for n > 0 {
		k := min(n, readWindow)
		b, err := r.at(off, k)
		if err != nil {
			return 0, err
		}
		crc = crc32.Update(crc, castagnoli, b)
		off, n = off+k, n-k
	}
	return crc, nil
}

// index returns the offset of the first occurrence of m at or after off,
// or -1 if there is none.
func (r *logReader) index(m []byte, off int64) (int64, error) {
	for r.size-off >= int64(len(m)) {
		k := min(r.size-off, readWindow)
		b, err := r.at(off, k)
		if err != nil {
			return -1, err
		}
		if i := bytes.Index(b, m); i >= 0 {
			return off + int64(i), nil
		}
		off += k - int64(len(m)) + 1
	}
	return -1, nil
}
