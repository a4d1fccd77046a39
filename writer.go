package mqtt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/b4e21b16/mqtt/packet"
)

const (
	// writerHighWater is how many encoded bytes may wait for the writer
	// before QoS 0 publishers are made to wait. Session traffic (acks,
	// QoS 1/2 publishes bounded by flow control) is never held back, so the
	// session goroutine cannot block on a slow network.
	writerHighWater = 256 << 10
	// writerKeepCap is the largest buffer the writer keeps after a burst;
	// larger ones are dropped so an idle connection holds little memory.
	writerKeepCap = 64 << 10
	// finalFlushTimeout bounds writing what is queued (a DISCONNECT) when
	// the connection is being shut down.
	finalFlushTimeout = 2 * time.Second
)

// writer owns the write side of one network connection. Packets are encoded
// straight into pending under mu by whichever goroutine sends them; the
// writer goroutine swaps pending out and writes everything queued with one
// Write, so a burst costs one system call and a lone packet goes out at once
// (the flusher pattern). Exactly one goroutine, run, writes to the net.Conn.
type writer struct {
	nc      net.Conn
	version packet.Version

	mu      sync.Mutex
	pending []byte        // encoded packets not yet handed to run; guarded by mu
	spare   []byte        // a drained buffer kept for reuse; guarded by mu
	room    chan struct{} // made by a waiting publisher, closed when pending is taken; guarded by mu
	err     error         // sticky: the first write error; guarded by mu
	sealed  bool          // the last packet (DISCONNECT) is queued; guarded by mu

	kick chan struct{} // 1-buffered: "pending is non-empty"

	// flushOnClose asks run to write what is queued before closing when the
	// connection's context ends (a graceful DISCONNECT, or a DISCONNECT
	// carrying a reason code for the broker), within the write deadline the
	// closer set.
	flushOnClose atomic.Bool
	// writeErr is the error of a failed Write; written by run's goroutine,
	// read by others once it has returned.
	writeErr error

	aliases *topicAliases // outbound topic aliases (nil: none); guarded by mu

	lastWrite atomic.Int64 // unix nanoseconds of the last completed Write
}

func newWriter(nc net.Conn, v packet.Version) *writer {
	return &writer{nc: nc, version: v, kick: make(chan struct{}, 1)}
}

// send encodes p onto the queue. It never blocks on the network.
func (w *writer) send(p packet.Packet) error { return w.enqueue(p, false) }

// sendAck encodes a publish acknowledgement without properties onto the
// queue, without the allocation a packet.Packet would cost.
func (w *writer) sendAck(t packet.Type, id uint16, code packet.ReasonCode) error {
	a := packet.Ack{PacketType: t, PacketID: id, ReasonCode: code}
	w.mu.Lock()
	if err := w.refuseLocked(); err != nil {
		w.mu.Unlock()
		return err
	}
	var err error
	w.pending, err = a.Append(w.pending, w.version)
	w.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: %w", errEncode, err)
	}
	w.signal()
	return nil
}

// sendLast queues p as the last packet: later sends fail.
func (w *writer) sendLast(p packet.Packet) error { return w.enqueue(p, true) }

func (w *writer) enqueue(p packet.Packet, last bool) error {
	w.mu.Lock()
	if err := w.refuseLocked(); err != nil {
		w.mu.Unlock()
		return err
	}
	w.sealed = last
	var err error
	w.pending, err = w.appendLocked(p)
	w.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: %w", errEncode, err)
	}
	w.signal()
	return nil
}

// errEncode is wrapped by the error of a send whose packet could not be
// encoded: nothing was queued, and the connection is unaffected. Any other
// send error means the connection is ending.
var errEncode = errors.New("mqtt: cannot encode the packet")

// sendPublish encodes a publish, waiting while more than writerHighWater
// bytes are queued, until ctx ends or the connection fails. It is the QoS 0
// path from application goroutines.
func (w *writer) sendPublish(ctx context.Context, p *packet.Publish, stop <-chan struct{}) error {
	for {
		w.mu.Lock()
		if err := w.refuseLocked(); err != nil {
			w.mu.Unlock()
			return err
		}
		if len(w.pending) < writerHighWater {
			var err error
			w.pending, err = w.appendPublishLocked(p)
			w.mu.Unlock()
			if err != nil {
				return fmt.Errorf("%w: %w", errEncode, err)
			}
			w.signal()
			return nil
		}
		if w.room == nil {
			w.room = make(chan struct{})
		}
		room := w.room
		w.mu.Unlock()
		select {
		case <-room:
		case <-stop:
			return errWriterStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

var errWriterStopped = errors.New("connection closed")

// appendLocked encodes p onto pending, giving a PUBLISH a topic alias when
// aliases are in use. The caller holds mu.
func (w *writer) appendLocked(p packet.Packet) ([]byte, error) {
	if pub, ok := p.(*packet.Publish); ok {
		return w.appendPublishLocked(pub)
	}
	return p.Append(w.pending, w.version)
}

// appendPublishLocked is appendLocked for a PUBLISH; taking the concrete
// type keeps a QoS 0 publisher's packet on its stack.
func (w *writer) appendPublishLocked(p *packet.Publish) ([]byte, error) {
	if w.aliases != nil {
		return w.aliases.appendPublish(w.pending, p, w.version)
	}
	return p.Append(w.pending, w.version)
}

// refuseLocked returns why nothing more may be queued. The caller holds mu.
func (w *writer) refuseLocked() error {
	if w.err != nil {
		return w.err
	}
	if w.sealed {
		return ErrClosed
	}
	return nil
}

func (w *writer) signal() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// run writes queued packets until ctx ends or a write fails. When ctx ends
// it writes what is still queued (such as a DISCONNECT) within
// finalFlushTimeout, then closes the connection, which also ends the reader.
func (w *writer) run(ctx context.Context) error {
	for {
		select {
		case <-w.kick:
			if err := w.flush(); err != nil {
				return err
			}
		case <-ctx.Done():
			if !w.flushOnClose.Load() {
				w.fail(context.Cause(ctx))
				return nil
			}
			err := w.flush()
			w.fail(context.Cause(ctx))
			return err
		}
	}
}

func (w *writer) flush() error {
	w.mu.Lock()
	buf := w.pending
	w.pending = w.spare[:0]
	w.spare = nil
	w.wakeLocked()
	w.mu.Unlock()
	if len(buf) == 0 {
		w.keep(buf)
		return nil
	}
	_, err := w.nc.Write(buf)
	if err != nil {
		w.writeErr = err
		w.fail(err)
		return err
	}
	w.lastWrite.Store(time.Now().UnixNano())
	w.keep(buf)
	return nil
}

// keep offers a written buffer for reuse, so that a sustained stream cycles
// two buffers and allocates nothing. Buffers are kept up to twice the high
// water mark; trim lets large ones go once the connection is quiet.
func (w *writer) keep(buf []byte) {
	if cap(buf) > 2*writerHighWater {
		return
	}
	w.mu.Lock()
	if w.spare == nil {
		w.spare = buf[:0]
	}
	w.mu.Unlock()
}

// trim drops buffers larger than writerKeepCap while nothing is queued, so
// an idle connection holds little memory. The session calls it on its
// keepalive timer.
func (w *writer) trim() {
	w.mu.Lock()
	if len(w.pending) == 0 && cap(w.pending) > writerKeepCap {
		w.pending = nil
	}
	if cap(w.spare) > writerKeepCap {
		w.spare = nil
	}
	w.mu.Unlock()
}

func (w *writer) fail(err error) {
	if err == nil {
		err = errWriterStopped
	}
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.pending = nil
	w.spare = nil
	w.wakeLocked()
	w.mu.Unlock()
}

// wakeLocked releases publishers waiting for room. The caller holds mu.
func (w *writer) wakeLocked() {
	if w.room != nil {
		close(w.room)
		w.room = nil
	}
}
