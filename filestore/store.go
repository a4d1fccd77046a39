//go:build unix

package filestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/b4e21b16/mqtt"
)

// SyncPolicy says how durable a Store makes each change before the call
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

// defaultCompactBytes is the default of Options.CompactBytes.
const defaultCompactBytes = 4 << 20

// Options configures Open. The zero value, like a nil pointer, gives the
// defaults.
type Options struct {
	// Sync is the durability of each change (default SyncAlways).
	Sync SyncPolicy
	// CompactBytes: when the log file grows past this size and most of it
	// is dead (deleted or replaced records), the store rewrites the live
	// records to a new file and atomically renames it over the log. Zero
	// or less means the default, 4 MiB. The file stays below about
	// max(CompactBytes, 2 × the live records) in size.
	CompactBytes int64
}

// Store is an [mqtt.Store] that keeps its state in an append-only log file,
// so that it survives a crash of the process (and, with SyncAlways, of the
// operating system). Its methods are safe for concurrent use; the client
// calls them from one goroutine at a time.
//
// Each change appends one record to the log: save or delete a publish, save
// or delete an inbound packet ID. A record starts with the log's sync
// marker (random bytes chosen when the file was created, kept in its
// header) and its length, and carries a CRC-32C checksum of its offset,
// length and contents. Open replays the log to index the live records;
// Load reads them back. Logs written by earlier releases (format version 1,
// without markers) are still read, and rewritten in the current format (see
// below).
//
// # Damage
//
// Open recovers every record that is intact, wherever the damage is: after
// a record that does not check out, it searches for the next sync marker
// that starts a record that does, and skips what lies between.
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
//     is worked around. Open fails on a file that is not a store log, or
//     too damaged to tell, and leaves it alone.
//
// Load reports damage with an error matching [mqtt.ErrStoreCorrupt] that
// gives the offset and length of each damaged region and the inbound IDs
// forgotten, along with the recovered state. Every Load of the Store
// reports it.
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
// store compacts it (see Options.CompactBytes). Compaction writes the live
// records to path+".tmp", syncs it, renames it over path and syncs the
// directory, so a crash at any point leaves either the old log or the new
// one. A failed compaction leaves the log as it was, does not fail the call
// that triggered it, and is retried once the log has grown by another
// CompactBytes.
//
// The store creates its files exclusively (O_EXCL), with mode 0600 whatever
// the umask, and never through a symbolic link: Open refuses a symbolic
// link at path, and a leftover or planted entry at path+".tmp" is removed
// (the name, not what it may point to) before the temporary file is
// created. A log that exists already keeps its mode until the first
// compaction replaces it with a file of mode 0600.
//
// A write or sync that fails leaves the store unusable when the state of the
// file cannot be known: later calls return the same error. Reopen the store
// to recover.
//
// An open Store holds an exclusive flock(2) on its file, so a second Store,
// in this process or another one, cannot use the same path.
type Store struct {
	path string
	opts Options

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

var _ mqtt.Store = (*Store)(nil)

// errClosed is returned by calls on a closed store.
var errClosed = fmt.Errorf("filestore: %w", os.ErrClosed)

// recordLoc is where a live record sits in the log.
type recordLoc struct {
	off int64 // offset of the record header
	n   int64 // length of the record including its header
}

// Open opens the store kept in the file at path, creating the file if it
// does not exist, and replays its log. A nil opts means the defaults.
//
// It fails if another Store, in this process or another one, has the file
// open (the error then matches syscall.EWOULDBLOCK), if path is a symbolic
// link or not a regular file, or if the file is not a store log. Damage
// that recovery could work around does not make it fail: the following Load
// reports it (see Store).
func Open(path string, opts *Options) (*Store, error) {
	s := &Store{path: path, out: make(map[uint64]recordLoc)}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.Sync != SyncAlways && s.opts.Sync != SyncNever {
		return nil, fmt.Errorf("filestore: unknown sync policy %v", s.opts.Sync)
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
		return nil, fmt.Errorf("filestore: failed to remove %s: %w", s.tmpPath(), err)
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

// applyLocked updates the index for a record of the given kind and key
// that sits at loc.
func (s *Store) applyLocked(kind byte, key uint64, loc recordLoc) {
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
func (s *Store) seqsLocked() []uint64 {
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
// damage; every Load reports it with an error matching
// [mqtt.ErrStoreCorrupt], along with the recovered state. Once a Load has reported damage, the
// store may remove the damaged bytes from the log (see Store).
func (s *Store) Load() (out []mqtt.StoredPublish, in []uint16, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return nil, nil, err
	}
	var bad []string
	for _, seq := range s.seqsLocked() {
		// A fresh buffer per record: the message's byte fields alias it.
		rec, err := s.readRecordLocked(nil, s.out[seq])
		if err != nil && !errors.Is(err, mqtt.ErrStoreCorrupt) {
			return nil, nil, err
		}
		var r mqtt.StoredPublish
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
		err = errors.Join(err, fmt.Errorf("%w: %s: records changed since the store was opened: %s", mqtt.ErrStoreCorrupt, s.path, strings.Join(bad, "; ")))
	}
	return out, in, err
}

// readRecordLocked reads the record at loc into buf, growing it as
// needed, and checks it. A record that does not check out gives an error
// matching mqtt.ErrStoreCorrupt.
func (s *Store) readRecordLocked(buf []byte, loc recordLoc) ([]byte, error) {
	buf = slices.Grow(buf[:0], int(loc.n))[:loc.n]
	if _, err := s.f.ReadAt(buf, loc.off); err != nil {
		return buf, fmt.Errorf("filestore: failed to read %s: %w", s.path, err)
	}
	if !s.lf.checkRecord(buf, loc.off) {
		return buf, fmt.Errorf("%w: checksum mismatch", mqtt.ErrStoreCorrupt)
	}
	return buf, nil
}

// SavePublish appends r to the log, replacing any record with the same Seq,
// and returns once it is written (SyncNever) or on stable storage
// (SyncAlways).
func (s *Store) SavePublish(r mqtt.StoredPublish) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return err
	}
	if n := publishFieldBytes(&r.Message); n > maxRecordBody-1<<16 {
		return fmt.Errorf("filestore: a message of %d bytes is too large to store", n)
	}
	return s.appendLocked(appendPublishRecord(s.buf[:0], s.lf.recHeaderLen(), &r), recSavePublish, r.Seq)
}

// DeletePublish appends a record deleting the publish with sequence number
// seq, if there is one.
func (s *Store) DeletePublish(seq uint64) error {
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
func (s *Store) SaveInbound(id uint16) error {
	return s.inbound(recSaveInbound, id)
}

// DeleteInbound appends a record deleting inbound packet ID id, if it is
// saved.
func (s *Store) DeleteInbound(id uint16) error {
	return s.inbound(recDeleteInbound, id)
}

func (s *Store) inbound(kind byte, id uint16) error {
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
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := closeLog(s.f)
	s.f, s.out, s.order, s.buf = nil, nil, nil, nil
	if err != nil {
		return fmt.Errorf("filestore: failed to close %s: %w", s.path, err)
	}
	return nil
}

// usableLocked returns why the store cannot be used, or nil.
func (s *Store) usableLocked() error {
	if s.f == nil {
		return errClosed
	}
	return s.err
}

// appendLocked fills in the header of the record rec (see startRecord),
// writes it at the end of the log, syncs it as the policy says, indexes it
// and compacts the log if it is due.
func (s *Store) appendLocked(rec []byte, kind byte, key uint64) error {
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
				return fmt.Errorf("filestore: failed to cut the damaged end off %s: %w", s.path, err)
			}
			s.size = s.tailOff
		}
		s.tailOff = 0
	}
	off := s.size
	rec = s.lf.finishRecord(rec, 0, off)
	if _, err := s.f.WriteAt(rec, off); err != nil {
		err = fmt.Errorf("filestore: failed to write %s: %w", s.path, err)
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
			s.err = fmt.Errorf("filestore: failed to sync %s: %w", s.path, err)
			return s.err
		}
	}
	s.size += int64(len(rec))
	s.applyLocked(kind, key, recordLoc{off, int64(len(rec))})
	s.maybeCompactLocked()
	return s.err
}
