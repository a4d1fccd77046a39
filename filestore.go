//go:build unix

package mqtt

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
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
// Each change appends one record: a 4-byte little-endian body length, the
// CRC-32C (Castagnoli) of the body, and the body, whose first byte says
// what the record does (save or delete a publish, save or delete an inbound
// packet ID). The file starts with a 12-byte header: a magic string and a
// format version. OpenFileStore replays the log to index the live records;
// Load reads them back. Damage found on the way is handled so that the store
// always opens with what could be recovered:
//
//   - an incomplete or corrupt tail, as left by a crash in the middle of a
//     write, is truncated away, and appending resumes after the last good
//     record;
//   - a corrupt record followed by good ones is skipped (its length prefix
//     says where the next record starts), unless its length is implausible,
//     in which case the log is truncated there.
//
// Either way Load reports the damage with an error matching
// ErrStoreCorrupt. A skipped record can make a deleted record reappear or a
// saved one disappear; a truncated tail loses at most the changes whose
// writes were cut.
//
// Deleted and replaced records stay in the log as dead bytes until the
// store compacts it (see FileStoreOptions.CompactBytes). Compaction writes
// the live records to path+".tmp", syncs it, renames it over path and syncs
// the directory, so a crash at any point leaves either the old log or the
// new one.
//
// The store creates its files exclusively (O_EXCL), with mode 0600 whatever
// the umask, and never through a symbolic link: OpenFileStore refuses a
// symbolic link at path, and a leftover or planted entry at path+".tmp" is
// removed (the name, not what it may point to) before the temporary file is
// created. A log that exists already keeps its mode until the first
// compaction replaces it with a file of mode 0600. A failed compaction leaves the log as it was, does not fail the
// call that triggered it, and is retried once the log has grown by another
// CompactBytes.
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
	size int64      // length of the log; the next record is written here
	live int64      // bytes of the header and of the live records
	out  map[uint64]recordLoc
	// order holds the Seq of every publish added to out since it was last
	// tidied (sorted, without deleted and repeated entries), in the order
	// they were added. It makes Seq order cheap and independent of map
	// iteration order.
	order       []uint64
	in          inboundSet
	damage      error  // damage found when the store was opened, reported by Load
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

// Log format.
const (
	fileMagic     = "MQTTSTOR"
	fileVersion   = 1
	fileHeaderLen = len(fileMagic) + 4 // magic, little-endian uint32 version
	recHeaderLen  = 8                  // body length, CRC-32C of the body
	// maxRecordBody bounds the body of a record: the largest MQTT PUBLISH
	// (268,435,455 bytes) plus room for the record's own fields. A longer
	// length prefix is damage.
	maxRecordBody = 1<<28 + 1<<20
	// maxKeptBuf is the largest encoding buffer kept between calls.
	maxKeptBuf = 64 << 10
)

// Record kinds, the first byte of a record body.
const (
	recSavePublish   byte = 1 // seq, packet ID, flags, QoS, expiry, then the variable-length fields
	recDeletePublish byte = 2 // seq
	recSaveInbound   byte = 3 // packet ID
	recDeleteInbound byte = 4 // packet ID

	inboundRecLen = recHeaderLen + 1 + 2 // length of a saveInbound record
)

// Flags of a savePublish record.
const (
	flagReleased byte = 1 << iota
	flagRetain
	flagPayloadUTF8
	flagPayload         // Payload is not nil
	flagCorrelationData // CorrelationData is not nil
	flagsKnown          = 1<<iota - 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// OpenFileStore opens the store kept in the file at path, creating the file
// if it does not exist, and replays its log. A nil opts means the defaults.
//
// It fails if another FileStore, in this process or another one, has the
// file open (the error then matches syscall.EWOULDBLOCK), or if the file is
// not a store log. Damage that recovery could work around does not make it
// fail: the following Load reports it (see FileStore).
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

// logHeader returns the file header.
func logHeader() []byte {
	return binary.LittleEndian.AppendUint32([]byte(fileMagic), fileVersion)
}

// damage is a damaged region of the log found by replay.
type damage struct {
	off  int64  // where it starts
	n    int64  // its length
	what string // what is wrong there
}

// replay checks the header (writing it to a new file), replays the log to
// build the index and truncates a damaged tail. It sets s.damage to what
// it found. It returns an error only when the file cannot be used.
func (s *FileStore) replay() error {
	fi, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("mqtt: store: failed to open %s: %w", s.path, err)
	}
	size := fi.Size()
	hdr := logHeader()
	if size < int64(len(hdr)) {
		// A new file, or one whose creation a crash cut short.
		got := make([]byte, size)
		if _, err := s.f.ReadAt(got, 0); err != nil {
			return fmt.Errorf("mqtt: store: failed to read %s: %w", s.path, err)
		}
		if !strings.HasPrefix(string(hdr), string(got)) {
			return fmt.Errorf("mqtt: store: %s is not a store log: it starts with %q", s.path, got)
		}
		if _, err := s.f.WriteAt(hdr, 0); err != nil {
			return fmt.Errorf("mqtt: store: failed to write %s: %w", s.path, err)
		}
		s.size, s.live = int64(len(hdr)), int64(len(hdr))
		if s.opts.Sync == SyncAlways {
			if err := s.f.Sync(); err != nil {
				return fmt.Errorf("mqtt: store: failed to sync %s: %w", s.path, err)
			}
			if err := syncDir(filepath.Dir(s.path)); err != nil {
				return fmt.Errorf("mqtt: store: failed to sync the directory of %s: %w", s.path, err)
			}
		}
		return nil
	}

	r := bufio.NewReaderSize(io.NewSectionReader(s.f, 0, size), 64<<10)
	got := make([]byte, len(hdr))
	if _, err := io.ReadFull(r, got); err != nil {
		return fmt.Errorf("mqtt: store: failed to read %s: %w", s.path, err)
	}
	if string(got[:len(fileMagic)]) != fileMagic {
		return fmt.Errorf("mqtt: store: %s is not a store log: it starts with %q", s.path, got)
	}
	if v := binary.LittleEndian.Uint32(got[len(fileMagic):]); v != fileVersion {
		return fmt.Errorf("mqtt: store: %s has format version %d, this version of the library reads %d", s.path, v, fileVersion)
	}

	var (
		found   []damage
		off     = int64(len(hdr))
		goodEnd = off // end of the last good record
		rh      [recHeaderLen]byte
		body    []byte
	)
	s.live = off
	for off < size {
		if size-off < recHeaderLen {
			found = append(found, damage{off, size - off, "incomplete record header"})
			break
		}
		if _, err := io.ReadFull(r, rh[:]); err != nil {
			return fmt.Errorf("mqtt: store: failed to read %s: %w", s.path, err)
		}
		n := int64(binary.LittleEndian.Uint32(rh[:4]))
		if n == 0 || n > maxRecordBody {
			found = append(found, damage{off, size - off, fmt.Sprintf("implausible record length %d", n)})
			break
		}
		if off+recHeaderLen+n > size {
			found = append(found, damage{off, size - off, fmt.Sprintf("incomplete record (%d of %d bytes)", size-off, recHeaderLen+n)})
			break
		}
		body = slices.Grow(body[:0], int(n))[:n]
		if _, err := io.ReadFull(r, body); err != nil {
			return fmt.Errorf("mqtt: store: failed to read %s: %w", s.path, err)
		}
		loc := recordLoc{off, recHeaderLen + n}
		off += loc.n
		if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(rh[4:]) {
			found = append(found, damage{loc.off, loc.n, "checksum mismatch"})
			continue
		}
		kind, key, err := decodeKey(body)
		if err != nil {
			found = append(found, damage{loc.off, loc.n, err.Error()})
			continue
		}
		s.applyLocked(kind, key, loc)
		goodEnd = off
		if cap(body) > maxKeptBuf {
			body = nil
		}
	}
	s.size = goodEnd

	const maxShown = 5 // skipped records described one by one
	var msgs []string
	skipped := 0
	for _, d := range found {
		if d.off >= goodEnd {
			// Everything after the last good record goes, described by the
			// first problem found there.
			msgs = append(msgs, fmt.Sprintf("offset %d: %s; truncated the last %d bytes", goodEnd, d.what, size-goodEnd))
			break
		}
		skipped++
		if skipped <= maxShown {
			msgs = append(msgs, fmt.Sprintf("offset %d: %s; skipped the %d-byte record", d.off, d.what, d.n))
		}
	}
	if skipped > maxShown {
		msgs = append(msgs, fmt.Sprintf("%d damaged records skipped in all", skipped))
	}
	if len(msgs) > 0 {
		s.damage = fmt.Errorf("%w: %s: %s", ErrStoreCorrupt, s.path, strings.Join(msgs, "; "))
	}
	if goodEnd < size {
		if err := s.f.Truncate(goodEnd); err != nil {
			return fmt.Errorf("mqtt: store: failed to truncate the damaged tail of %s: %w", s.path, err)
		}
		if s.opts.Sync == SyncAlways {
			if err := s.f.Sync(); err != nil {
				return fmt.Errorf("mqtt: store: failed to sync %s: %w", s.path, err)
			}
		}
	}
	return nil
}

// decodeKey checks a record body and returns its kind and key (seq or
// packet ID).
func decodeKey(body []byte) (kind byte, key uint64, err error) {
	kind = body[0]
	switch kind {
	case recSavePublish:
		r, err := decodePublish(body)
		return kind, r.Seq, err
	case recDeletePublish:
		if len(body) != 1+8 {
			return kind, 0, fmt.Errorf("deletePublish record of %d bytes", len(body))
		}
		return kind, binary.LittleEndian.Uint64(body[1:]), nil
	case recSaveInbound, recDeleteInbound:
		if len(body) != 1+2 {
			return kind, 0, fmt.Errorf("inbound record of %d bytes", len(body))
		}
		return kind, uint64(binary.LittleEndian.Uint16(body[1:])), nil
	}
	return kind, 0, fmt.Errorf("unknown record kind %d", kind)
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
	case recSaveInbound:
		if s.in.set(uint16(key), true) {
			s.live += inboundRecLen
		}
	case recDeleteInbound:
		if s.in.set(uint16(key), false) {
			s.live -= inboundRecLen
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
// along with the recovered state.
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
			r, err = decodePublish(rec[recHeaderLen:])
		}
		if err != nil {
			bad = append(bad, fmt.Sprintf("offset %d: %v", s.out[seq].off, err))
			continue
		}
		out = append(out, r)
	}
	in = s.in.ids()
	err = s.damage
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
	body := buf[recHeaderLen:]
	if int64(binary.LittleEndian.Uint32(buf)) != int64(len(body)) || crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(buf[4:]) {
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
	return s.appendLocked(appendPublishRecord(s.buf[:0], &r), recSavePublish, r.Seq)
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
	b := startRecord(s.buf[:0], recDeletePublish)
	b = binary.LittleEndian.AppendUint64(b, seq)
	return s.appendLocked(finishRecord(b, 0), recDeletePublish, seq)
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
	b := startRecord(s.buf[:0], kind)
	b = binary.LittleEndian.AppendUint16(b, id)
	return s.appendLocked(finishRecord(b, 0), kind, uint64(id))
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

// appendLocked writes the encoded record rec at the end of the log, syncs
// it as the policy says, indexes it and compacts the log if it is due.
func (s *FileStore) appendLocked(rec []byte, kind byte, key uint64) error {
	if cap(rec) <= maxKeptBuf {
		s.buf = rec[:0]
	} else {
		s.buf = nil
	}
	off := s.size
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

// maybeCompactLocked compacts the log if it is larger than CompactBytes
// and mostly dead.
func (s *FileStore) maybeCompactLocked() {
	if s.size <= s.opts.CompactBytes || s.size <= s.nextCompact || s.size-s.live <= s.live {
		return
	}
	if err := s.compactLocked(); err != nil {
		s.nextCompact = s.size + s.opts.CompactBytes
	}
}

func (s *FileStore) tmpPath() string { return s.path + ".tmp" }

// compactLocked writes the live records to a new file, publishes first in
// Seq order, and renames it over the log. An error before the rename
// leaves the store as it was; one after it is sticky (s.err).
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
	w := bufio.NewWriterSize(f, 64<<10)
	w.Write(logHeader())
	off := int64(fileHeaderLen)
	out := make(map[uint64]recordLoc, len(s.out))
	var rec []byte
	for _, seq := range s.seqsLocked() {
		loc := s.out[seq]
		if rec, err = s.readRecordLocked(rec, loc); err != nil {
			return err
		}
		w.Write(rec)
		out[seq] = recordLoc{off, loc.n}
		off += loc.n
	}
	for _, id := range s.in.ids() {
		b := startRecord(rec[:0], recSaveInbound)
		w.Write(finishRecord(binary.LittleEndian.AppendUint16(b, id), 0))
		off += inboundRecLen
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
	s.f, s.size, s.live, s.out = f, off, off, out
	s.nextCompact = 0
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

// startRecord appends a record header placeholder and the kind byte.
func startRecord(b []byte, kind byte) []byte {
	return append(b, 0, 0, 0, 0, 0, 0, 0, 0, kind)
}

// finishRecord fills in the header of the record that starts at b[start:]
// and runs to the end of b.
func finishRecord(b []byte, start int) []byte {
	body := b[start+recHeaderLen:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(body, castagnoli))
	return b
}

// publishFieldBytes is the length of the variable-length fields of m.
func publishFieldBytes(m *Message) int {
	n := len(m.Topic) + len(m.Payload) + len(m.ContentType) + len(m.ResponseTopic) + len(m.CorrelationData)
	for _, p := range m.UserProperties {
		n += len(p.Key) + len(p.Value) + 2*binary.MaxVarintLen64
	}
	return n
}

// appendPublishRecord appends a savePublish record for r to b. The body is
// the kind, then fixed-size fields (little-endian): seq (8), packet ID (2),
// flags (1), QoS (1), expiry in nanoseconds (8); then uvarint-length-prefixed
// topic, payload, content type, response topic and correlation data; then
// the uvarint number of user properties and each key and value,
// length-prefixed, in order.
func appendPublishRecord(b []byte, r *StoredPublish) []byte {
	start := len(b)
	m := &r.Message
	var flags byte
	if r.Released {
		flags |= flagReleased
	}
	if m.Retain {
		flags |= flagRetain
	}
	if m.PayloadUTF8 {
		flags |= flagPayloadUTF8
	}
	if m.Payload != nil {
		flags |= flagPayload
	}
	if m.CorrelationData != nil {
		flags |= flagCorrelationData
	}
	b = startRecord(b, recSavePublish)
	b = binary.LittleEndian.AppendUint64(b, r.Seq)
	b = binary.LittleEndian.AppendUint16(b, r.PacketID)
	b = append(b, flags, byte(m.QoS))
	b = binary.LittleEndian.AppendUint64(b, uint64(m.Expiry))
	b = appendField(b, m.Topic)
	b = appendField(b, m.Payload)
	b = appendField(b, m.ContentType)
	b = appendField(b, m.ResponseTopic)
	b = appendField(b, m.CorrelationData)
	b = binary.AppendUvarint(b, uint64(len(m.UserProperties)))
	for _, p := range m.UserProperties {
		b = appendField(b, p.Key)
		b = appendField(b, p.Value)
	}
	return finishRecord(b, start)
}

func appendField[T string | []byte](b []byte, v T) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// errBadRecord is the error of a record body that does not decode.
var errBadRecord = errors.New("malformed record")

// decodePublish decodes a savePublish record body. The byte fields of the
// result alias body.
func decodePublish(body []byte) (StoredPublish, error) {
	d := decoder{b: body[1:]}
	var r StoredPublish
	m := &r.Message
	r.Seq = d.u64()
	r.PacketID = uint16(d.u64n(2))
	flags := d.u8()
	m.QoS = QoS(d.u8())
	m.Expiry = time.Duration(d.u64())
	m.Topic = string(d.field())
	m.Payload = d.field()
	m.ContentType = string(d.field())
	m.ResponseTopic = string(d.field())
	m.CorrelationData = d.field()
	if n := d.uvarint(); n > 0 {
		if n > uint64(len(d.b)/2) { // each property takes at least 2 bytes
			return r, fmt.Errorf("%w: %d user properties in %d bytes", errBadRecord, n, len(d.b))
		}
		m.UserProperties = make([]UserProperty, n)
		for i := range m.UserProperties {
			m.UserProperties[i] = UserProperty{Key: string(d.field()), Value: string(d.field())}
		}
	}
	switch {
	case d.bad:
		return r, fmt.Errorf("%w: savePublish record of %d bytes is cut short", errBadRecord, len(body))
	case len(d.b) > 0:
		return r, fmt.Errorf("%w: %d stray bytes after a savePublish record", errBadRecord, len(d.b))
	case flags&^flagsKnown != 0:
		return r, fmt.Errorf("%w: unknown flags %#x", errBadRecord, flags)
	}
	r.Released = flags&flagReleased != 0
	m.Retain = flags&flagRetain != 0
	m.PayloadUTF8 = flags&flagPayloadUTF8 != 0
	if flags&flagPayload == 0 {
		if len(m.Payload) > 0 {
			return r, fmt.Errorf("%w: payload without its flag", errBadRecord)
		}
		m.Payload = nil
	}
	if flags&flagCorrelationData == 0 {
		if len(m.CorrelationData) > 0 {
			return r, fmt.Errorf("%w: correlation data without its flag", errBadRecord)
		}
		m.CorrelationData = nil
	}
	return r, nil
}

// decoder reads the fields of a record body. A read past the end sets bad
// and yields zero values.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) take(n uint64) []byte {
	if d.bad || n > uint64(len(d.b)) {
		d.bad = true
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() byte {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u64() uint64 { return d.u64n(8) }

// u64n reads an n-byte little-endian integer.
func (d *decoder) u64n(n int) uint64 {
	var x uint64
	for i, c := range d.take(uint64(n)) {
		x |= uint64(c) << (8 * i)
	}
	return x
}

func (d *decoder) uvarint() uint64 {
	if d.bad {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return x
}

// field reads a uvarint-length-prefixed field. An empty field is a
// non-nil empty slice.
func (d *decoder) field() []byte {
	n := d.uvarint()
	if v := d.take(n); v != nil {
		return v
	}
	return nil
}
