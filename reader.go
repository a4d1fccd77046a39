package mqtt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/b4e21b16/mqtt/packet"
)

// inbound is one decoded packet handed from a reader to the session. PUBLISH
// and the four publish acknowledgements are held in place so that the hot
// paths allocate nothing beyond the PUBLISH body; other packets travel as
// pkt.
type inbound struct {
	typ packet.Type
	pub packet.Publish // typ == PUBLISH
	ack ackInfo        // typ is PUBACK, PUBREC, PUBREL or PUBCOMP
	pkt packet.Packet  // any other type
	err error          // set instead of a packet: the broker sent something invalid
	// size is the memory a PUBLISH's body takes: its allocation, which the
	// received message's topic, payload and properties share.
	size int
}

// ackInfo is a publish acknowledgement in compact form: the rare properties
// (a Reason String, User Properties) are allocated only when present.
type ackInfo struct {
	id    uint16
	code  packet.ReasonCode
	props *packet.Properties
}

// fill sets a from a decoded acknowledgement.
func (a *ackInfo) fill(p *packet.Ack) {
	*a = ackInfo{id: p.PacketID, code: p.ReasonCode}
	if !p.Props.IsZero() {
		props := p.Props
		a.props = &props
	}
}

// packet rebuilds the acknowledgement of type t into dst.
func (a *ackInfo) packet(t packet.Type, dst *packet.Ack) {
	*dst = packet.Ack{PacketType: t, PacketID: a.id, ReasonCode: a.code}
	if a.props != nil {
		dst.Props = *a.props
	}
}

// reset clears ev for the next packet. The array behind its PUBLISH's
// Subscription Identifiers is kept for the next one to decode into: the
// session copies out the identifiers it keeps.
func (ev *inbound) reset() {
	ids := ev.pub.Props.SubscriptionIDs[:0]
	*ev = inbound{}
	ev.pub.Props.SubscriptionIDs = ids
}

const (
	// batchSlots is the most packets a reader hands to the session at once.
	batchSlots = 32
	// batchBytes bounds the PUBLISH bodies in one batch (their
	// allocations): the reader ends a batch once they reach it.
	batchBytes = 32 << 10
)

// inboundBatch is the packets a reader decoded from what it had buffered,
// handed to the session in one channel send and handled by it in one go.
// A batch for a lone packet has one slot; one for a burst has batchSlots
// and comes from a pool that all connections share. The session gives each
// batch back (recycle) for the reader's next one.
type inboundBatch struct {
	evs []inbound
	ack packet.Ack // an acknowledgement being decoded
}

func (b *inboundBatch) big() bool { return cap(b.evs) == batchSlots }

var bigBatches = sync.Pool{New: func() any { return &inboundBatch{evs: make([]inbound, 0, batchSlots)} }}

// newBatch returns the batch to decode into: the spare, unless it has one
// slot and a burst is buffered; otherwise a pooled one for a burst or a new
// one-slot batch.
func (r *reader) newBatch() *inboundBatch {
	burst := r.br.burst()
	if b := r.spare.Swap(nil); b != nil && (b.big() || !burst) {
		return b
	}
	if burst {
		return bigBatches.Get().(*inboundBatch)
	}
	return &inboundBatch{evs: make([]inbound, 0, 1)}
}

// recycle takes back a batch the session has handled as the reader's
// spare, so that a connection exchanging lone packets allocates none. Only
// the session calls it.
func (r *reader) recycle(b *inboundBatch) {
	for i := range b.evs {
		b.evs[i].reset()
	}
	b.evs = b.evs[:0]
	if old := r.spare.Swap(b); old != nil && old.big() {
		bigBatches.Put(old)
	}
}

// trim lets a spare batch for bursts go back to the pool; the session
// calls it once the connection has been quiet for a keepalive interval.
func (r *reader) trim() {
	b := r.spare.Swap(nil) // b is then the session's alone
	switch {
	case b == nil:
	case b.big():
		bigBatches.Put(b)
	default:
		r.spare.CompareAndSwap(nil, b) // unless the reader has one again
	}
}

// reader owns the read side of one network connection: it reads through a
// buffered reader, checks each packet's size against the client's maximum
// before reading its body, decodes and validates it, and hands it to the
// session. It never writes and never calls application code.
//
// It waits for the network only in run's own frame (see wait), with nothing
// decoded in hand, so that the goroutine of an idle connection keeps the
// smallest stack; packets that are buffered whole are decoded and handed
// over in a batch.
type reader struct {
	br      *connReader
	version packet.Version
	maxSize int
	out     chan<- *inboundBatch // the session's input

	packetsIn atomic.Uint64 // packets read, for keepalive liveness

	spare atomic.Pointer[inboundBatch] // a batch the session handled, for the next one

	// A large PUBLISH (body over publishStep) is read only once the session
	// has handled the previous one, so that the packets between the reader
	// and the session hold at most one large body: bigUnhandled counts
	// those handed over and not yet handled; bigWaiting is set while the
	// reader waits, and bigHandled (1-buffered) wakes it.
	bigUnhandled atomic.Int32
	bigWaiting   atomic.Bool
	bigHandled   chan struct{}

	// dropUnfit, when set, lets the reader drop a QoS 0 PUBLISH that does
	// not fit in mem without reading it into memory, counting it in
	// counters as the session would (OverflowPolicy DropNewest, and no
	// inbound topic aliases, whose definitions only the session may see).
	dropUnfit bool
	mem       *memoryBudget
	counters  *counters
}

// run reads until the connection fails or ctx ends. A packet that fails to
// decode is reported to the session as an event so that the session can tell
// the broker why (an MQTT 5.0 DISCONNECT with a reason code) before closing;
// run then waits for ctx to end.
func (r *reader) run(ctx context.Context) error {
	defer r.br.release()
	for {
		if err := r.br.wait(); err != nil {
			return readError(err)
		}
		b, err := r.batch(ctx)
		if len(b.evs) == 0 {
			r.recycle(b)
		} else {
			last := b.evs[len(b.evs)-1].err
			if !r.handOver(ctx, b) {
				return nil
			}
			if last != nil {
				<-ctx.Done()
				return last
			}
		}
		if err != nil {
			return err
		}
	}
}

// handOver gives b to the session; false if ctx ended first.
func (r *reader) handOver(ctx context.Context, b *inboundBatch) bool {
	select {
	case r.out <- b: // the common case, without a full select
		return true
	default:
	}
	select {
	case r.out <- b:
		return true
	case <-ctx.Done():
		return false
	}
}

// batch decodes the packets buffered whole into a batch from the pool: at
// least one (which it may wait for, when it is larger than a read buffer),
// at most batchSlots, and no more once their bodies reach batchBytes or
// one of them is large. A packet that is invalid ends the batch as an
// event carrying the error. err is a read error that ends the reader after
// the batch is handed over.
//
//go:noinline
func (r *reader) batch(ctx context.Context) (b *inboundBatch, err error) {
	b = r.newBatch()
	bytes := 0
	for len(b.evs) < cap(b.evs) && bytes < batchBytes {
		if len(b.evs) > 0 && !r.br.whole() {
			break
		}
		b.evs = b.evs[:len(b.evs)+1]
		ev := &b.evs[len(b.evs)-1]
		if err := r.next(ctx, ev, &b.ack); err != nil {
			if err = failed(ev, err); err != nil {
				b.evs = b.evs[:len(b.evs)-1]
				return b, err
			}
			break
		}
		if ev.typ == 0 {
			b.evs = b.evs[:len(b.evs)-1] // dropped by the reader: nothing for the session
			continue
		}
		if ev.typ == packet.PUBLISH {
			if ev.size > publishStep {
				break // a large body goes to the session at once
			}
			bytes += ev.size
		}
	}
	return b, nil
}

// failed turns a read error into ev carrying a protocol violation for the
// session, or returns the error that ends the reader. It is kept out of run
// so that run's stack frame, which every idle connection keeps, stays small.
//
//go:noinline
func failed(ev *inbound, err error) error {
	var perr *packet.Error
	if !errors.As(err, &perr) {
		return readError(err)
	}
	ev.reset()
	ev.err = fmt.Errorf("%w: %w", ErrProtocolViolation, err)
	return nil
}

func readError(err error) error {
	switch {
	case errors.Is(err, io.EOF):
		return errors.New("broker closed the connection")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("broker closed the connection in the middle of a packet")
	}
	return fmt.Errorf("read failed: %w", err)
}

// waitBigHandled waits until the session has handled every large PUBLISH
// handed over, or ctx ends (false).
func (r *reader) waitBigHandled(ctx context.Context) bool {
	for {
		// Set before checking: a session that finishes after the check
		// sees the flag and wakes the reader.
		r.bigWaiting.Store(true)
		if r.bigUnhandled.Load() == 0 {
			r.bigWaiting.Store(false)
			return true
		}
		select {
		case <-r.bigHandled:
		case <-ctx.Done():
			return false
		}
	}
}

// handled tells the reader that the session is done with ev, which then
// lets go of the packet's buffers. Only the session calls it.
func (r *reader) handled(ev *inbound) {
	if ev.typ != packet.PUBLISH {
		return
	}
	if ev.size > publishStep && r.bigUnhandled.Add(-1) == 0 && r.bigWaiting.Load() {
		select {
		case r.bigHandled <- struct{}{}:
		default:
		}
	}
	ev.reset()
}

// dropPublish reads a QoS 0 PUBLISH that does not fit in memory through to
// its end without keeping it, and counts it as received and dropped. Only
// its topic and property lengths are read, to count its payload.
func (r *reader) dropPublish(h packet.Header) error {
	malformed := &packet.Error{Type: packet.PUBLISH, Code: packet.MalformedPacket, Reason: "topic and properties longer than the packet"}
	left := h.Remaining - 2
	var n [2]byte
	if left < 0 {
		return malformed
	}
	if err := r.fill(n[:]); err != nil {
		return err
	}
	topic := int(n[0])<<8 | int(n[1])
	if topic > left {
		return malformed
	}
	if err := r.skip(topic); err != nil {
		return err
	}
	left -= topic
	if r.version == packet.V5 {
		props, width, err := r.varint()
		if err != nil {
			return err
		}
		if left -= width; props > left {
			return malformed
		}
		if err := r.skip(props); err != nil {
			return err
		}
		left -= props
	}
	if err := r.skip(left); err != nil { // the payload
		return err
	}
	r.packetsIn.Add(1)
	r.counters.received(0, left)
	r.counters.dropped.Add(1)
	return nil
}

// skip reads n bytes and discards them.
func (r *reader) skip(n int) error {
	if _, err := io.CopyN(io.Discard, r.br, int64(n)); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}

// varint reads a Variable Byte Integer and returns it with its width.
func (r *reader) varint() (v, width int, err error) {
	for shift := 0; width < 4; shift += 7 {
		b, err := r.br.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, width, err
		}
		width++
		v |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			return v, width, nil
		}
	}
	return 0, width, &packet.Error{Type: packet.PUBLISH, Code: packet.MalformedPacket, Reason: "property length longer than four bytes"}
}

// allocSize bounds from above what the allocator takes for an n-byte
// buffer: small sizes are rounded up to a size class, which wastes less
// than a quarter plus 16 bytes (4,097 bytes take 4,864), and large ones to
// whole 8 KiB pages.
func allocSize(n int) int {
	const largeObject, page = 32 << 10, 8 << 10
	if n > largeObject {
		return (n + page - 1) &^ (page - 1)
	}
	return n + n/4 + 16
}

// errReaderStopped ends the reader when its connection's context ended
// while it waited.
var errReaderStopped = errors.New("connection closed")

// next reads and decodes one packet into ev.
func (r *reader) next(ctx context.Context, ev *inbound, ack *packet.Ack) error {
	ev.reset()
	h, err := packet.ReadHeader(r.br, r.maxSize)
	if err != nil {
		return err
	}
	ev.typ = h.Type
	switch h.Type {
	case packet.CONNECT, packet.SUBSCRIBE, packet.UNSUBSCRIBE, packet.PINGREQ:
		return &packet.Error{Type: h.Type, Code: packet.ProtocolError, Reason: "a server must not send " + h.Type.String()}
	case packet.PUBLISH:
		if r.dropUnfit && h.Flags&0x06 == 0 && r.mem.full(int64(allocSize(h.Remaining))+int64(inboundOverhead)) {
			ev.typ = 0 // nothing for the session
			return r.dropPublish(h)
		}
		if h.Remaining > publishStep && !r.waitBigHandled(ctx) {
			return errReaderStopped
		}
		// The body becomes the received message: topic and payload share
		// this one allocation.
		body, err := r.publishBody(h.Remaining)
		if err != nil {
			return err
		}
		if err := packet.DecodePublish(h, body, r.version, &ev.pub); err != nil {
			return err
		}
		ev.size = allocSize(cap(body))
		if h.Remaining > publishStep {
			r.bigUnhandled.Add(1)
		}
	case packet.PUBACK, packet.PUBREC, packet.PUBREL, packet.PUBCOMP:
		body, err := r.body(h.Remaining)
		if err != nil {
			return err
		}
		err = packet.DecodeAck(h, body, r.version, ack)
		r.br.discard()
		if err != nil {
			return err
		}
		ev.ack.fill(ack)
	default:
		body, err := r.body(h.Remaining)
		if err != nil {
			return err
		}
		ev.pkt, err = packet.Decode(h, body, r.version)
		r.br.discard()
		if err != nil {
			return err
		}
	}
	r.packetsIn.Add(1)
	return nil
}

// publishStep is the largest PUBLISH body allocated at its announced size
// before its bytes arrive; larger ones grow as they are read.
const publishStep = 64 << 10

// publishBody reads the n-byte body of a PUBLISH into a buffer of its own.
// A body larger than publishStep is read into a buffer that doubles as
// bytes arrive, so that a broker announcing a large packet and sending
// little costs no more than it sent.
func (r *reader) publishBody(n int) ([]byte, error) {
	if n <= publishStep {
		b := make([]byte, n)
		return b, r.fill(b)
	}
	b := make([]byte, 0, publishStep)
	for len(b) < n {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(cap(b), n-len(b)))
		}
		m, err := r.br.Read(b[len(b):min(cap(b), n)])
		b = b[:len(b)+m]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return b, nil
}

// body returns the n-byte body of a packet other than PUBLISH: in place in
// the read buffer when it is buffered whole (the caller then gives it back
// with discard once decoded: decoders copy what they keep), otherwise read
// into a buffer of its own.
func (r *reader) body(n int) ([]byte, error) {
	if b, ok := r.br.peek(n); ok {
		return b, nil
	}
	b := make([]byte, n)
	return b, r.fill(b)
}

func (r *reader) fill(b []byte) error {
	if _, err := io.ReadFull(r.br, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}
