//go:build unix

package filestore

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// maybeCompactLocked compacts the log if it must be rewritten, or is larger
// than CompactBytes and mostly dead; but never while it holds damage that
// no Load has reported yet.
func (s *Store) maybeCompactLocked() {
	if s.damage != nil && !s.reported || s.size <= s.nextCompact {
		return
	}
	if !s.rewrite && (s.size <= s.opts.CompactBytes || s.size-s.live <= s.live) {
		return
	}
	if err := s.compactLocked(); err != nil {
		s.nextCompact = s.size + s.opts.CompactBytes
	}
}

func (s *Store) tmpPath() string { return s.path + ".tmp" }

// compactLocked writes the live records to a new file in the current
// format, publishes first in Seq order, and renames it over the log. An
// error before the rename leaves the store as it was; one after it is
// sticky (s.err).
func (s *Store) compactLocked() error {
	tmp := s.tmpPath()
	f, err := createTemp(tmp)
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// Lock the new file before it takes the place of the old one, so that
	// another process opening path finds it locked at every moment.
	if err := flock(f); err != nil {
		return err
	}
	lf := s.lf
	if lf.version != fileVersion2 {
		lf = newLogFormat()
	}
	size, out, err := s.writeLiveLocked(f, lf)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return err
	}
	renamed = true
	s.f.Close() // releases the lock on the old file, which is gone
	s.f, s.lf, s.size, s.live, s.out = f, lf, size, size, out
	s.nextCompact, s.tailOff, s.rewrite = 0, 0, false
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		s.err = fmt.Errorf("filestore: failed to sync the directory of %s after compaction: %w", s.path, err)
		return s.err
	}
	return nil
}

// createTemp creates the temporary file of a compaction at tmp (see
// createExclusive).
func createTemp(tmp string) (*os.File, error) {
	f, err := createExclusive(tmp)
	if errors.Is(err, fs.ErrExist) {
		// Open removed any leftover, and no other Store compacts this
		// log while we hold its lock: something else put this here (a
		// symbolic link, say). Remove the name, never what it may point
		// to, and try once more.
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		f, err = createExclusive(tmp)
	}
	return f, err
}

// writeLiveLocked writes to f, a new empty file, a log in format lf that
// holds the live records: the publishes in Seq order, then the inbound
// IDs. It returns the length of the new log and the index of its
// publishes.
func (s *Store) writeLiveLocked(f *os.File, lf logFormat) (size int64, out map[uint64]recordLoc, err error) {
	hl := lf.recHeaderLen()
	w := bufio.NewWriterSize(f, 64<<10)
	w.Write(header2(lf.marker[:]))
	off := int64(headerLen2)
	out = make(map[uint64]recordLoc, len(s.out))
	var rec []byte
	hdr := make([]byte, hl)
	for _, seq := range s.seqsLocked() {
		if rec, err = s.readRecordLocked(rec, s.out[seq]); err != nil {
			return 0, nil, err
		}
		body := rec[s.lf.recHeaderLen():]
		lf.putRecordHeader(hdr, off, body)
		w.Write(hdr)
		w.Write(body)
		n := hl + int64(len(body))
		out[seq] = recordLoc{off, n}
		off += n
	}
	for _, id := range s.in.ids() {
		b := startRecord(rec[:0], hl, recSaveInbound)
		b = lf.finishRecord(binary.LittleEndian.AppendUint16(b, id), 0, off)
		w.Write(b)
		off += int64(len(b))
	}
	if err := w.Flush(); err != nil {
		return 0, nil, err
	}
	return off, out, nil
}
