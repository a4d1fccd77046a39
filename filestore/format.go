//go:build unix

package filestore

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/b4e21b16/mqtt"
)

// The log of a Store is a file header followed by records. All integers
// are little-endian.
//
// Version 2, which this version of the library writes:
//
//	header (24 bytes): "MQTTSTOR", version (uint32, 2), sync marker (8 random
//	    bytes, chosen when the file is created), CRC-32C of the 20 bytes before
//	record: sync marker (8), body length n (uint32), checksum (uint32), body (n)
//
// The checksum is the CRC-32C of the record's offset in the file (uint64),
// n (uint32) and the body, so that it covers the length, and a copy of a
// record anywhere else (inside a message payload, say) does not check out.
// The sync marker lets recovery find the next record after a damaged one
// by searching for it: a false start needs the 8 bytes of the marker, which
// message contents cannot know, and then a 32-bit checksum match.
//
// Version 1, which Open still reads (and rewrites as version 2 once it is
// free to: see Store):
//
//	header (12 bytes): "MQTTSTOR", version (uint32, 1)
//	record: body length n (uint32), CRC-32C of the body (uint32), body (n)
//
// A body starts with the record kind; see appendPublishRecord for a
// savePublish body. The other kinds hold only their key: a uint64 seq
// (deletePublish) or a uint16 packet ID (saveInbound, deleteInbound).
const (
	fileMagic     = "MQTTSTOR"
	fileVersion1  = 1
	fileVersion2  = 2
	markerLen     = 8
	headerLen1    = 8 + 4                             // magic, version
	headerLen2    = headerLen1 + markerLen + 4        // magic, version, marker, CRC-32C
	recHeaderLen1 = 8                                 // length, checksum
	recHeaderLen2 = markerLen + 8                     // marker, length, checksum
	maxRecHeader  = max(recHeaderLen1, recHeaderLen2) // the longer record header
	// maxRecordBody bounds the body of a record: the largest MQTT PUBLISH
	// (268,435,455 bytes) plus room for the record's own fields. A longer
	// length is damage.
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

	minPublishBody = 1 + 8 + 2 + 1 + 1 + 8 + 6 // kind, fixed fields, five empty fields and no properties
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

// logFormat is the framing of the records of one log file: its version and,
// for version 2, its sync marker.
type logFormat struct {
	version uint32
	marker  [markerLen]byte // version 2 only
}

// newLogFormat returns the format of a new log: version 2 with a fresh
// random sync marker.
func newLogFormat() logFormat {
	lf := logFormat{version: fileVersion2}
	rand.Read(lf.marker[:])
	return lf
}

// headerLen is the length of the file header.
func (lf *logFormat) headerLen() int64 {
	if lf.version == fileVersion1 {
		return headerLen1
	}
	return headerLen2
}

// recHeaderLen is the length of a record header.
func (lf *logFormat) recHeaderLen() int64 {
	if lf.version == fileVersion1 {
		return recHeaderLen1
	}
	return recHeaderLen2
}

// header returns the file header of a version 2 log with marker m.
func header2(m []byte) []byte {
	h := binary.LittleEndian.AppendUint32([]byte(fileMagic), fileVersion2)
	h = append(h, m...)
	return binary.LittleEndian.AppendUint32(h, crc32.Checksum(h, castagnoli))
}

// sumPrefix returns the checksum of the fields of a record header that
// precede its body: for version 2, offset off and length n.
func (lf *logFormat) sumPrefix(off int64, n int64) uint32 {
	if lf.version == fileVersion1 {
		return 0
	}
	var p [12]byte
	binary.LittleEndian.PutUint64(p[:], uint64(off))
	binary.LittleEndian.PutUint32(p[8:], uint32(n))
	return crc32.Update(0, castagnoli, p[:])
}

// startRecord appends room for a record header of hl bytes and the kind
// byte of the body.
func startRecord(b []byte, hl int64, kind byte) []byte {
	var zero [maxRecHeader]byte
	return append(append(b, zero[:hl]...), kind)
}

// finishRecord fills in the header of the record that starts at b[start:],
// runs to the end of b and is to be written at offset off of the file.
func (lf *logFormat) finishRecord(b []byte, start int, off int64) []byte {
	hl := int(lf.recHeaderLen())
	lf.putRecordHeader(b[start:start+hl], off, b[start+hl:])
	return b
}

// putRecordHeader writes to h the header of a record with body that is to
// be written at offset off of the file.
func (lf *logFormat) putRecordHeader(h []byte, off int64, body []byte) {
	n := int64(len(body))
	sum := crc32.Update(lf.sumPrefix(off, n), castagnoli, body)
	if lf.version == fileVersion1 {
		binary.LittleEndian.PutUint32(h, uint32(n))
		binary.LittleEndian.PutUint32(h[4:], sum)
		return
	}
	copy(h, lf.marker[:])
	binary.LittleEndian.PutUint32(h[markerLen:], uint32(n))
	binary.LittleEndian.PutUint32(h[markerLen+4:], sum)
}

// parseRecordHeader reads the record header h: the length of the body and
// its expected checksum, or why h is not a record header.
func (lf *logFormat) parseRecordHeader(h []byte) (n int64, sum uint32, why string) {
	if lf.version != fileVersion1 {
		if !bytes.Equal(h[:markerLen], lf.marker[:]) {
			return 0, 0, "no sync marker"
		}
		h = h[markerLen:]
	}
	n = int64(binary.LittleEndian.Uint32(h))
	if n == 0 || n > maxRecordBody {
		return 0, 0, fmt.Sprintf("implausible record length %d", n)
	}
	return n, binary.LittleEndian.Uint32(h[4:]), ""
}

// checkRecord reports whether rec, read at offset off, is a whole record
// whose checksum matches.
func (lf *logFormat) checkRecord(rec []byte, off int64) bool {
	hl := lf.recHeaderLen()
	if int64(len(rec)) <= hl {
		return false
	}
	n, sum, why := lf.parseRecordHeader(rec[:hl])
	body := rec[hl:]
	return why == "" && n == int64(len(body)) && crc32.Update(lf.sumPrefix(off, n), castagnoli, body) == sum
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
			return kind, 0, fmt.Errorf("%w: deletePublish record of %d bytes", errBadRecord, len(body))
		}
		return kind, binary.LittleEndian.Uint64(body[1:]), nil
	case recSaveInbound, recDeleteInbound:
		if len(body) != 1+2 {
			return kind, 0, fmt.Errorf("%w: inbound record of %d bytes", errBadRecord, len(body))
		}
		return kind, uint64(binary.LittleEndian.Uint16(body[1:])), nil
	}
	return kind, 0, fmt.Errorf("%w: unknown record kind %d", errBadRecord, kind)
}

// publishFieldBytes is the length of the variable-length fields of m.
func publishFieldBytes(m *mqtt.Message) int {
	n := len(m.Topic) + len(m.Payload) + len(m.ContentType) + len(m.ResponseTopic) + len(m.CorrelationData)
	for _, p := range m.UserProperties {
		n += len(p.Key) + len(p.Value) + 2*binary.MaxVarintLen64
	}
	return n
}

// appendPublishRecord appends a savePublish record for r to b, with room
// for a record header of hl bytes for finishRecord to fill in. The body is
// the kind, then fixed-size fields (little-endian): seq (8), packet ID (2),
// flags (1), QoS (1), expiry in nanoseconds (8); then uvarint-length-prefixed
// topic, payload, content type, response topic and correlation data; then
// the uvarint number of user properties and each key and value,
// length-prefixed, in order.
func appendPublishRecord(b []byte, hl int64, r *mqtt.StoredPublish) []byte {
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
	b = startRecord(b, hl, recSavePublish)
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
	return b
}

func appendField[T string | []byte](b []byte, v T) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// errBadRecord is the error of a record body that does not decode.
var errBadRecord = errors.New("malformed record")

// decodePublish decodes a savePublish record body. The byte fields of the
// result alias body.
func decodePublish(body []byte) (mqtt.StoredPublish, error) {
	d := decoder{b: body[1:]}
	var r mqtt.StoredPublish
	m := &r.Message
	r.Seq = d.u64()
	r.PacketID = uint16(d.u64n(2))
	flags := d.u8()
	m.QoS = mqtt.QoS(d.u8())
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
		m.UserProperties = make([]mqtt.UserProperty, n)
		for i := range m.UserProperties {
			m.UserProperties[i] = mqtt.UserProperty{Key: string(d.field()), Value: string(d.field())}
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
