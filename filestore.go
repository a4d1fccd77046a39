//go:build unix

package mqtt

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// SyncPolicy says how durable a FileStore makes each change before the call
// that made it returns.
type SyncPolicy int

// Sync policies. The zero value is SyncAlways.
const (
	// SyncAlways calls fsync after every write: a change survives a power
	// loss or an operating system crash once the call returns.
	SyncAlways SyncPolicy = iota
	// SyncNever only writes (write(2)): a change survives a crash of the
	// process (kill -9), since the operating system keeps written data,
	// but not a crash of the operating system, which may lose the most
	// recent changes. The store stays consistent either way: Load drops a
	// torn tail and reports it.
	SyncNever
)

// String returns "SyncAlways" or "SyncNever".
func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "SyncAlways"
	case SyncNever:
		return "SyncNever"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// defaultCompactBytes is the default of FileStoreOptions.CompactBytes.
const defaultCompactBytes = 4 << 20

// FileStoreOptions configures OpenFileStore. The zero value, like a nil
// pointer, gives the defaults.
type FileStoreOptions struct {
	// Sync is the durability of each change (default SyncAlways).
	Sync SyncPolicy
	// CompactBytes: when the log file grows past this size and most of it
	// is dead (deleted or replaced records), the store rewrites the live
	// records to a new file and atomically renames it over the log. Zero
	// or less means the default, 4 MiB. The file stays below about
	// max(CompactBytes, 2 × the live records) in size.
	CompactBytes int64
}

// FileStore is a Store that keeps its state in an append-only log file, so
// that it survives a crash of the process (and, with SyncAlways, of the
// operating system). Its methods are safe for concurrent use; the client
// calls them from one goroutine at a time.
//
// Each change appends one record to the log: save or delete a publish, save
// or delete an inbound packet ID. A record starts with the log's sync
// marker (random bytes chosen when the file was created, kept in its
// header) and its length, and carries a CRC-32C checksum of its offset,
// length and contents. OpenFileStore replays the log to index the live
// records; Load reads them back. Logs written by earlier releases (format
// version 1, without markers) are still read, and rewritten in the current
// format (see below).
//
// # Damage
//
// OpenFileStore recovers every record that is intact, wherever the damage
// is: after a record that does not check out, it searches for the next
// sync marker that starts a record that does, and skips what lies between.
// (A version 1 log has no markers: there it tries every offset, within a
// bound on the work.) The records recovered are replayed in order, which
// means:
//
//   - A damaged region at the end of the log is taken for a write that a
//     crash cut short: the change never happened, as if the crash had come
//     just before it. The client records each change before it sends the
//     packet that follows from it, so that is a state it recovers from.
//   - A damaged region anywhere else lost changes that did happen, and
//     replaying the records around it errs towards delivering a message
//     twice rather than not at all. A publish whose deletion was lost comes
//     back, to be sent again; a publish whose newer version was lost comes
//     back in its previous version (for QoS 2, if the lost version was the
//     first with a packet ID, it is sent again as a new message, which may
//     deliver it twice); a publish whose only record was lost is gone. An
//     inbound QoS 2 packet ID that came back because its deletion was lost
//     would be worse: the client would take the next message the server
//     sends with that ID for a repeat of the old one and drop it. So the
//     store forgets every inbound ID saved before such a region and not
//     saved again after it; the worst that comes of forgetting one is a
//     message delivered twice, if the server sends its PUBLISH again.
//   - A header that is damaged, but still shows the file is a store log,
//     is worked around. OpenFileStore fails on a file that is not a store
//     log, or too damaged to tell, and leaves it alone.
//
// Load reports damage with an error matching ErrStoreCorrupt that gives the
// offset and length of each damaged region and the inbound IDs forgotten,
// along with the recovered state. Every Load of the FileStore reports it.
//
// Damaged bytes are not removed before a Load has reported them: until then
// the store does not compact the log, and a write goes after a damaged end
// of the log rather than over it (which makes it a damaged region in the
// middle when the log is next opened). Once reported, a damaged end of the
// log is cut off by the next write, and damaged regions elsewhere are dead
// bytes that the next compaction drops; a log with a damaged header or in
// the old format is compacted at the next write. Until it is, opening the
// log again reports the same damage again.
//
// # Compaction
//
// Deleted and replaced records stay in the log as dead bytes until the
// store compacts it (see FileStoreOptions.CompactBytes). Compaction writes
// the live records to path+".tmp", syncs it, renames it over path and syncs
// the directory, so a crash at any point leaves either the old log or the
// new one. A failed compaction leaves the log as it was, does not fail the
// call that triggered it, and is retried once the log has grown by another
// CompactBytes.
//
// The store creates its files exclusively (O_EXCL), with mode 0600 whatever
// the umask, and never through a symbolic link: OpenFileStore refuses a
// symbolic link at path, and a leftover or planted entry at path+".tmp" is
// removed (the name, not what it may point to) before the temporary file is
// created. A log that exists already keeps its mode until the first
// compaction replaces it with a file of mode 0600.
//
// A write or sync that fails leaves the store unusable when the state of the
// file cannot be known: later calls return the same error. Reopen the store
// to recover.
//
// An open FileStore holds an exclusive flock(2) on its file, so a second
// FileStore, in this process or another one, cannot use the same path.
type FileStore struct {
	path string
	opts FileStoreOptions

	mu   sync.Mutex // guards all fields below
	f    *os.File   // the log; nil once closed
	lf   logFormat  // the framing of the log's records
	size int64      // length of the log; the next record is written here
	live int64      // bytes of the header and of the live records
	out  map[uint64]recordLoc
	// order holds the Seq of every publish added to out since it was last
	// tidied (sorted, without deleted and repeated entries), in the order
	// they were added. It makes Seq order cheap and independent of map
	// iteration order.
	order []uint64
	in    inboundSet

	damage   error // damage found when the store was opened, reported by Load
	reported bool  // a Load has returned damage: it may be removed now
	// tailOff is the offset of the damaged end of the log (0 if none),
	// to be cut off by the first write after it was reported.
	tailOff int64
	// rewrite: the log must be compacted as soon as damage allows (its
	// header is damaged, or it is in an old format).
	rewrite     bool
	err         error  // sticky: a failure after which the file state is unknown
	nextCompact int64  // after a failed compaction: do not retry before size exceeds this
	buf         []byte // encoding buffer, reused while small
}

// inboundSet is a set of packet IDs, a bit each.
type inboundSet struct {
	bits [1 << 16 / 64]uint64
	n    int
}

func (b *inboundSet) has(id uint16) bool { return b.bits[id/64]&(1<<(id%64)) != 0 }

// set adds (on true) or removes id and reports whether that changed the set.
func (b *inboundSet) set(id uint16, on bool) bool {
	if b.has(id) == on {
		return false
	}
	b.bits[id/64] ^= 1 << (id % 64)
	if on {
		b.n++
	} else {
		b.n--
	}
	return true
}

// add adds the IDs in o to the set.
func (b *inboundSet) add(o *inboundSet) {
	b.n = 0
	for i, w := range o.bits {
		b.bits[i] |= w
		b.n += bits.OnesCount64(b.bits[i])
	}
}

// ids returns the IDs in the set in ascending order.
func (b *inboundSet) ids() []uint16 {
	if b.n == 0 {
		return nil
	}
	ids := make([]uint16, 0, b.n)
	for i, w := range b.bits {
		for ; w != 0; w &= w - 1 {
			ids = append(ids, uint16(i*64+bits.TrailingZeros64(w)))
		}
	}
	return ids
}

var _ Store = (*FileStore)(nil)

// recordLoc is where a live record sits in the log.
type recordLoc struct {
	off int64 // offset of the record header
	n   int64 // length of the record including its header
}

// OpenFileStore opens the store kept in the file at path, creating the file
// if it does not exist, and replays its log. A nil opts means the defaults.
//
// It fails if another FileStore, in this process or another one, has the
// file open (the error then matches syscall.EWOULDBLOCK), if path is a
// symbolic link or not a regular file, or if the file is not a store log.
// Damage that recovery could work around does not make it fail: the
// following Load reports it (see FileStore).
func OpenFileStore(path string, opts *FileStoreOptions) (*FileStore, error) {
	s := &FileStore{path: path, out: make(map[uint64]recordLoc)}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.Sync != SyncAlways && s.opts.Sync != SyncNever {
		return nil, fmt.Errorf("mqtt: store: unknown sync policy %v", s.opts.Sync)
	}
	if s.opts.CompactBytes <= 0 {
		s.opts.CompactBytes = defaultCompactBytes
	}
	f, err := openLocked(path)
	if err != nil {
		return nil, err
	}
	s.f = f
	if err := s.replay(); err != nil {
		closeLog(f)
		return nil, err
	}
	// A compaction cut short by a crash leaves its temporary file behind.
	if err := os.Remove(s.tmpPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		closeLog(f)
		return nil, fmt.Errorf("mqtt: store: failed to remove %s: %w", s.tmpPath(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maybeCompactLocked()
	if s.err != nil {
		closeLog(s.f)
		return nil, s.err
	}
	return s, nil
}

// openLocked opens (or creates) the file at path and takes an exclusive
// flock on it.
func openLocked(path string) (*os.File, error) {
	for attempt := 0; ; attempt++ {
		f, err := openLog(path)
		if errors.Is(err, fs.ErrNotExist) && attempt < 100 {
			continue // removed between our two attempts to open it
		}
		if err != nil {
			return nil, err
		}
		if err := flock(f); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("mqtt: store: %s is in use by another FileStore (in this or another process): %w", path, err)
			}
			return nil, fmt.Errorf("mqtt: store: failed to lock %s: %w", path, err)
		}
		// The previous holder may have compacted, renaming a new file over
		// path, between our open and our lock: then we hold the lock of a
		// file that is no longer the store. Try again with the new one.
		fi, err1 := f.Stat()
		pi, err2 := os.Stat(path)
		if err := errors.Join(err1, err2); err != nil {
			closeLog(f)
			return nil, fmt.Errorf("mqtt: store: failed to open %s: %w", path, err)
		}
		if os.SameFile(fi, pi) {
			return f, nil
		}
		closeLog(f)
		if attempt == 100 {
			return nil, fmt.Errorf("mqtt: store: failed to open %s: it keeps being replaced", path)
		}
	}
}

// openLog opens the regular file at path for reading and writing, or
// creates it (exclusively, mode 0600 whatever the umask) if there is none.
// It does not follow a symbolic link at path: the log must be a file of its
// own, since compaction replaces whatever is at path with a new file. An
// error matching fs.ErrNotExist means the file disappeared between the
// attempt to create it and the attempt to open it.
func openLog(path string) (*os.File, error) {
	f, err := createExclusive(path)
	if errors.Is(err, fs.ErrExist) {
		f, err = os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	}
	if err != nil {
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("mqtt: store: %s is a symbolic link; the store needs a regular file of its own: %w", path, err)
		}
		return nil, fmt.Errorf("mqtt: store: failed to open %s: %w", path, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("mqtt: store: %s is not a regular file (%v)", path, fi.Mode().Type())
		} else {
			err = fmt.Errorf("mqtt: store: failed to open %s: %w", path, err)
		}
		return nil, err
	}
	return f, nil
}

// createExclusive creates a new file at path for reading and writing, with
// mode 0600 whatever the umask. It fails (matching fs.ErrExist) if anything
// is at path already, a symbolic link included: it never follows one.
func createExclusive(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	// The umask may have taken more than group and other access away; a
	// log its owner cannot write could not be opened again.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return f, nil
}

// flock takes an exclusive lock on f without waiting.
func flock(f *os.File) error { return flockOp(f, syscall.LOCK_EX|syscall.LOCK_NB) }

// closeLog releases the lock on f and closes it. The lock belongs to the
// open file description, which a child process forked at that moment
// shares until it calls exec: closing f alone would leave the lock held
// until then, and reopening the store at once could fail as if another
// FileStore had it.
func closeLog(f *os.File) error {
	flockOp(f, syscall.LOCK_UN) // on failure, closing releases it anyway
	return f.Close()
}

// flockOp applies flock(2) operation op to f.
func flockOp(f *os.File, op int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), op)
			if ferr != syscall.EINTR {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return ferr
}

// applyLocked updates the index for a record of the given kind and key
// that sits at loc.
func (s *FileStore) applyLocked(kind byte, key uint64, loc recordLoc) {
	switch kind {
	case recSavePublish:
		old, existed := s.out[key]
		if existed {
			s.live -= old.n
		}
		// Index the record before tidying the order, which keeps only
		// indexed Seqs: otherwise the new record would drop out of it.
		s.out[key] = loc
		s.live += loc.n
		if !existed {
			s.order = append(s.order, key)
			if len(s.order) > 2*len(s.out)+1024 {
				s.seqsLocked() // keep order in proportion to the live set
			}
		}
	case recDeletePublish:
		if old, ok := s.out[key]; ok {
			s.live -= old.n
			delete(s.out, key)
		}
	// The records saving and deleting an inbound ID have the same length.
	case recSaveInbound:
		if s.in.set(uint16(key), true) {
			s.live += loc.n
		}
	case recDeleteInbound:
		if s.in.set(uint16(key), false) {
			s.live -= loc.n
		}
	}
}

// seqsLocked tidies s.order and returns it: the Seqs of the live publishes
// in ascending order. The result is valid until the next change.
func (s *FileStore) seqsLocked() []uint64 {
	o := s.order[:0]
	for _, seq := range s.order {
		if _, ok := s.out[seq]; ok {
			o = append(o, seq)
		}
	}
	slices.Sort(o)
	s.order = slices.Compact(o)
	return s.order
}

// Load returns the stored publishes in Seq order and the inbound packet IDs
// in ascending order. When the store was opened, recovery may have found
// damage; every Load reports it with an error matching ErrStoreCorrupt,
// along with the recovered state. Once a Load has reported damage, the
// store may remove the damaged bytes from the log (see FileStore).
func (s *FileStore) Load() (out []StoredPublish, in []uint16, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return nil, nil, err
	}
	var bad []string
	for _, seq := range s.seqsLocked() {
		// A fresh buffer per record: the message's byte fields alias it.
		rec, err := s.readRecordLocked(nil, s.out[seq])
		if err != nil && !errors.Is(err, ErrStoreCorrupt) {
			return nil, nil, err
		}
		var r StoredPublish
		if err == nil {
			r, err = decodePublish(rec[s.lf.recHeaderLen():])
		}
		if err != nil {
			bad = append(bad, fmt.Sprintf("offset %d: %v", s.out[seq].off, err))
			continue
		}
		out = append(out, r)
	}
	in = s.in.ids()
	err = s.damage
	s.reported = s.damage != nil
	if len(bad) > 0 {
		err = errors.Join(err, fmt.Errorf("%w: %s: records changed since the store was opened: %s", ErrStoreCorrupt, s.path, strings.Join(bad, "; ")))
	}
	return out, in, err
}

// readRecordLocked reads the record at loc into buf, growing it as
// needed, and checks it. A record that does not check out gives an error
// matching ErrStoreCorrupt.
func (s *FileStore) readRecordLocked(buf []byte, loc recordLoc) ([]byte, error) {
	buf = slices.Grow(buf[:0], int(loc.n))[:loc.n]
	if _, err := s.f.ReadAt(buf, loc.off); err != nil {
		return buf, fmt.Errorf("mqtt: store: failed to read %s: %w", s.path, err)
	}
	if !s.lf.checkRecord(buf, loc.off) {
		return buf, fmt.Errorf("%w: checksum mismatch", ErrStoreCorrupt)
	}
	return buf, nil
}

// SavePublish appends r to the log, replacing any record with the same Seq,
// and returns once it is written (SyncNever) or on stable storage
// (SyncAlways).
func (s *FileStore) SavePublish(r StoredPublish) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return err
	}
	if n := publishFieldBytes(&r.Message); n > maxRecordBody-1<<16 {
		return fmt.Errorf("mqtt: store: a message of %d bytes is too large to store", n)
	}
	return s.appendLocked(appendPublishRecord(s.buf[:0], s.lf.recHeaderLen(), &r), recSavePublish, r.Seq)
}

// DeletePublish appends a record deleting the publish with sequence number
// seq, if there is one.
func (s *FileStore) DeletePublish(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return err
	}
	if _, ok := s.out[seq]; !ok {
		return nil
	}
	b := startRecord(s.buf[:0], s.lf.recHeaderLen(), recDeletePublish)
	return s.appendLocked(binary.LittleEndian.AppendUint64(b, seq), recDeletePublish, seq)
}

// SaveInbound appends a record saving inbound packet ID id, unless it is
// already saved.
func (s *FileStore) SaveInbound(id uint16) error {
	return s.inbound(recSaveInbound, id)
}

// DeleteInbound appends a record deleting inbound packet ID id, if it is
// saved.
func (s *FileStore) DeleteInbound(id uint16) error {
	return s.inbound(recDeleteInbound, id)
}

func (s *FileStore) inbound(kind byte, id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return err
	}
	if s.in.has(id) == (kind == recSaveInbound) {
		return nil // nothing changes
	}
	b := startRecord(s.buf[:0], s.lf.recHeaderLen(), kind)
	return s.appendLocked(binary.LittleEndian.AppendUint16(b, id), kind, uint64(id))
}

// Close closes the log, releasing its lock. Under SyncNever it does not
// sync either: what was written survives a crash of the process, as before.
func (s *FileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := closeLog(s.f)
	s.f, s.out, s.order, s.buf = nil, nil, nil, nil
	if err != nil {
		return fmt.Errorf("mqtt: store: failed to close %s: %w", s.path, err)
	}
	return nil
}

// usableLocked returns why the store cannot be used, or nil.
func (s *FileStore) usableLocked() error {
	if s.f == nil {
		return errStoreClosed
	}
	return s.err
}

// appendLocked fills in the header of the record rec (see startRecord),
// writes it at the end of the log, syncs it as the policy says, indexes it
// and compacts the log if it is due.
func (s *FileStore) appendLocked(rec []byte, kind byte, key uint64) error {
	if cap(rec) <= maxKeptBuf {
		s.buf = rec[:0]
	} else {
		s.buf = nil
	}
	if s.tailOff > 0 {
		// A damaged end of the log: cut it off if it was reported, or
		// else keep it, behind the records that follow.
		if s.reported {
			if err := s.f.Truncate(s.tailOff); err != nil {
				return fmt.Errorf("mqtt: store: failed to cut the damaged end off %s: %w", s.path, err)
			}
			s.size = s.tailOff
		}
		s.tailOff = 0
	}
	off := s.size
	rec = s.lf.finishRecord(rec, 0, off)
	if _, err := s.f.WriteAt(rec, off); err != nil {
		err = fmt.Errorf("mqtt: store: failed to write %s: %w", s.path, err)
		// Cut off what part of the record was written, so that the next
		// record follows the last good one.
		if terr := s.f.Truncate(off); terr != nil {
			s.err = err
		}
		return err
	}
	if s.opts.Sync == SyncAlways {
		if err := s.f.Sync(); err != nil {
			// After a failed fsync the kernel may have dropped the data:
			// nothing about the file can be trusted any more.
			s.err = fmt.Errorf("mqtt: store: failed to sync %s: %w", s.path, err)
			return s.err
		}
	}
	s.size += int64(len(rec))
	s.applyLocked(kind, key, recordLoc{off, int64(len(rec))})
	s.maybeCompactLocked()
	return s.err
}

// maybeCompactLocked compacts the log if it must be rewritten, or is larger
// than CompactBytes and mostly dead; but never while it holds damage that
// no Load has reported yet.
func (s *FileStore) maybeCompactLocked() {
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

func (s *FileStore) tmpPath() string { return s.path + ".tmp" }

// compactLocked writes the live records to a new file in the current
// format, publishes first in Seq order, and renames it over the log. An
// error before the rename leaves the store as it was; one after it is
// sticky (s.err).
func (s *FileStore) compactLocked() error {
	tmp := s.tmpPath()
	f, err := createExclusive(tmp)
	if errors.Is(err, fs.ErrExist) {
		// OpenFileStore removed any leftover, and no other FileStore
		// compacts this log while we hold its lock: something else put
		// this here (a symbolic link, say). Remove the name, never what
		// it may point to, and try once more.
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		f, err = createExclusive(tmp)
	}
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
	hl := lf.recHeaderLen()
	w := bufio.NewWriterSize(f, 64<<10)
	w.Write(header2(lf.marker[:]))
	off := int64(headerLen2)
	out := make(map[uint64]recordLoc, len(s.out))
	var rec []byte
	hdr := make([]byte, hl)
	for _, seq := range s.seqsLocked() {
		if rec, err = s.readRecordLocked(rec, s.out[seq]); err != nil {
			return err
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
	s.f, s.lf, s.size, s.live, s.out = f, lf, off, off, out
	s.nextCompact, s.tailOff, s.rewrite = 0, 0, false
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		s.err = fmt.Errorf("mqtt: store: failed to sync the directory of %s after compaction: %w", s.path, err)
		return s.err
	}
	return nil
}

// syncDir makes the directory entries in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
