package mqtt

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/b4e21b16/mqtt/packet"
)

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// publishHeader returns the fixed header of a QoS 0 PUBLISH announcing a
// remaining length of n, followed by the start of its body (topic "t").
func publishHeader(n int) []byte {
	b := []byte{0x30}
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			break
		}
	}
	return append(b, 0, 1, 't')
}

// TestReaderLargeAnnouncementCostsWhatArrives checks that a PUBLISH body is
// not allocated at its announced size before its bytes arrive: a broker
// announcing 200 MiB and sending 10 bytes (then hanging up) costs the
// client about the first step of the buffer, not 200 MiB.
func TestReaderLargeAnnouncementCostsWhatArrives(t *testing.T) {
	data := append(publishHeader(200<<20), make([]byte, 7)...)
	r := &reader{br: newConnReader(bytes.NewReader(data)), version: packet.V311, maxSize: 256 << 20,
		bigHandled: make(chan struct{}, 1)}
	var ev inbound
	var err error
	n := allocated(func() { err = r.next(context.Background(), &ev, new(packet.Ack)) })
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("next = %v, want io.ErrUnexpectedEOF", err)
	}
	if n > 1<<20 {
		t.Errorf("reading 10 bytes of an announced 200 MiB PUBLISH allocated %d bytes; want under 1 MiB", n)
	}
}

// TestReaderOversizedRefusedBeforeAllocation checks that a packet announcing
// more than the client's Maximum Packet Size is refused from its header,
// before anything is allocated for its body.
func TestReaderOversizedRefusedBeforeAllocation(t *testing.T) {
	data := append(publishHeader(200<<20), make([]byte, 64<<10)...)
	r := &reader{br: newConnReader(bytes.NewReader(data)), version: packet.V5, maxSize: 1 << 20,
		bigHandled: make(chan struct{}, 1)}
	var ev inbound
	var err error
	n := allocated(func() { err = r.next(context.Background(), &ev, new(packet.Ack)) })
	if !errors.Is(err, packet.ErrTooLarge) {
		t.Fatalf("next = %v, want packet.ErrTooLarge", err)
	}
	if n > 64<<10 {
		t.Errorf("refusing an oversized packet allocated %d bytes", n)
	}
}

// TestReaderLargeBodyComplete checks that a large body read in steps
// arrives whole, and that its recorded size is its allocation.
func TestReaderLargeBodyComplete(t *testing.T) {
	const size = 3<<20 + 5
	body := make([]byte, size-3)
	for i := range body {
		body[i] = byte(i)
	}
	data := append(publishHeader(size), body...)
	r := &reader{br: newConnReader(bytes.NewReader(data)), version: packet.V311, maxSize: 16 << 20,
		bigHandled: make(chan struct{}, 1)}
	var ev inbound
	if err := r.next(context.Background(), &ev, new(packet.Ack)); err != nil {
		t.Fatal(err)
	}
	if ev.pub.Topic != "t" || !bytes.Equal(ev.pub.Payload, body) {
		t.Fatalf("topic %q, %d payload bytes: the body did not arrive whole", ev.pub.Topic, len(ev.pub.Payload))
	}
	if ev.size < size || ev.size > size+size/4 {
		t.Errorf("recorded size %d for a %d-byte body", ev.size, size)
	}
}

// TestAllocSizeBoundsTheAllocation checks allocSize against what the
// allocator really takes, as append reports it in the capacity it rounds up
// to the size class.
func TestAllocSizeBoundsTheAllocation(t *testing.T) {
	for n := 1; n <= 1<<20; n += 1 + n/64 {
		if got := cap(append([]byte(nil), make([]byte, n)...)); allocSize(n) < got {
			t.Fatalf("allocSize(%d) = %d, but the allocation takes %d", n, allocSize(n), got)
		}
	}
}

// TestReaderDropsWhatCannotFit checks that with the memory budget full a
// QoS 0 PUBLISH (here over MQTT 5.0, with properties) is read through
// without being kept: no allocation for its body, counted as received
// (its payload bytes) and dropped, and the packet after it is decoded as
// usual. A QoS 1 PUBLISH is always handed to the session.
func TestReaderDropsWhatCannotFit(t *testing.T) {
	var stream []byte
	big := packet.Publish{Topic: "a/b", Payload: make([]byte, 256<<10)}
	big.Props.ContentType = "x"
	big.Props.Set(packet.PropContentType)
	stream, _ = big.Append(stream, packet.V5)
	one := packet.Publish{Topic: "q", QoS: 1, PacketID: 7, Payload: []byte("kept")}
	stream, _ = one.Append(stream, packet.V5)

	mem := newMemoryBudget(1 << 20)
	mem.in.Store(1 << 20) // full
	var k counters
	r := &reader{br: newConnReader(bytes.NewReader(stream)), version: packet.V5, maxSize: 1 << 20,
		bigHandled: make(chan struct{}, 1), dropUnfit: true, mem: mem, counters: &k}
	var ev inbound
	var err error
	n := allocated(func() { err = r.next(context.Background(), &ev, new(packet.Ack)) })
	if err != nil || ev.typ != 0 {
		t.Fatalf("next = %v with event type %v, want the PUBLISH dropped", err, ev.typ)
	}
	if n > 64<<10 {
		t.Errorf("dropping a 256 KiB PUBLISH allocated %d bytes", n)
	}
	if got, want := k.recvBytes[0].Load(), uint64(len(big.Payload)); got != want || k.dropped.Load() != 1 || k.recvMsgs[0].Load() != 1 {
		t.Errorf("counted %d messages, %d payload bytes, %d dropped; want 1, %d, 1", k.recvMsgs[0].Load(), got, k.dropped.Load(), want)
	}
	if err := r.next(context.Background(), &ev, new(packet.Ack)); err != nil || ev.typ != packet.PUBLISH || string(ev.pub.Payload) != "kept" {
		t.Fatalf("the next packet: %v, type %v, payload %q", err, ev.typ, ev.pub.Payload)
	}
}
