package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/b4e21b16/mqtt/packet"
)

// The raw baseline writes pre-encoded packets on a plain net.Conn and reads
// acknowledgements through a bufio.Reader: no session, no allocation per
// message. It is the limit of the machine and broker.

// encodeConnect returns a clean-start CONNECT for MQTT 3.1.1 (4) or 5.0 (5).
func encodeConnect(version byte, clientID string) []byte {
	p := packet.Connect{Version: packet.Version(version), CleanStart: true, KeepAlive: 60, ClientID: clientID}
	return mustAppend(p.Append(nil, packet.Version(version)))
}

// encodePublish returns one PUBLISH packet.
func encodePublish(version, qos byte, id uint16, topic string, payload []byte) []byte {
	p := packet.Publish{QoS: qos, PacketID: id, Topic: topic, Payload: payload}
	return mustAppend(p.Append(nil, packet.Version(version)))
}

// encodeAck returns a PUBACK, PUBREC, PUBREL or PUBCOMP.
func encodeAck(version byte, t packet.Type, id uint16) []byte {
	p := packet.Ack{PacketType: t, PacketID: id}
	return mustAppend(p.Append(nil, packet.Version(version)))
}

func mustAppend(out []byte, err error) []byte {
	if err != nil {
		panic(err) // fixed, valid input
	}
	return out
}

// readPacket reads one packet's fixed header and body into body.
func readPacket(br *bufio.Reader, body []byte) (typ, flags byte, out []byte, err error) {
	b, err := br.ReadByte()
	if err != nil {
		return 0, 0, body, err
	}
	n, shift := 0, 0
	for i := 0; i < 4; i++ {
		c, err := br.ReadByte()
		if err != nil {
			return 0, 0, body, err
		}
		n |= int(c&0x7f) << shift
		if c&0x80 == 0 {
			break
		}
		shift += 7
	}
	if cap(body) < n {
		body = make([]byte, n)
	}
	body = body[:n]
	if _, err := io.ReadFull(br, body); err != nil {
		return 0, 0, body, err
	}
	return b >> 4, b & 0x0f, body, nil
}

// rawClient is a plain TCP connection that has completed CONNECT/CONNACK.
// Writes go through wmu: a pipelined QoS 2 run writes PUBRELs from its
// reader goroutine while the main loop writes PUBLISHes.
type rawClient struct {
	nc      net.Conn
	br      *bufio.Reader
	wmu     sync.Mutex
	version byte
	topic   string
	payload []byte
	nextID  uint16
	readEnd chan struct{} // closed when a subscription's reader ends
}

const rawBatch = 256

func dialRawClient(ctx context.Context, addr string, o dialOpts) (benchClient, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	if _, err := nc.Write(encodeConnect(o.version, o.id)); err != nil {
		nc.Close()
		return nil, err
	}
	size := 64 << 10
	if o.small {
		size = 16
	}
	r := &rawClient{nc: nc, br: bufio.NewReaderSize(nc, size), version: o.version, topic: o.topic, payload: o.payload}
	typ, _, body, err := readPacket(r.br, nil)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if typ != 2 || len(body) < 2 || body[1] != 0 {
		nc.Close()
		return nil, fmt.Errorf("raw: bad CONNACK (type %d, body %x)", typ, body)
	}
	return r, nil
}

func (r *rawClient) write(b []byte) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	_, err := r.nc.Write(b)
	return err
}

func (r *rawClient) close(context.Context) error {
	r.write([]byte{0xe0, 0})
	err := r.nc.Close()
	if r.readEnd != nil {
		<-r.readEnd
	}
	return err
}

// publish writes one message and, at QoS 1/2, reads until its
// acknowledgement (answering PUBREC with PUBREL).
func (r *rawClient) publish(_ context.Context, qos byte) error {
	r.nextID = r.nextID%65535 + 1
	if err := r.write(encodePublish(r.version, qos, r.nextID, r.topic, r.payload)); err != nil {
		return err
	}
	if qos == 0 {
		return nil
	}
	var body []byte
	for {
		typ, _, b, err := readPacket(r.br, body)
		body = b
		if err != nil {
			return err
		}
		switch {
		case typ == 4 && qos == 1, typ == 7 && qos == 2:
			return nil
		case typ == 5:
			if err := r.write(encodeAck(r.version, packet.PUBREL, r.nextID)); err != nil {
				return err
			}
		}
	}
}

func (r *rawClient) pipeline(_ context.Context, n int, qos byte, window int) error {
	if qos == 0 {
		return r.pipelineQoS0(n)
	}
	return r.pipelineAcked(n, qos, window)
}

func (r *rawClient) pipelineQoS0(n int) error {
	one := encodePublish(r.version, 0, 0, r.topic, r.payload)
	block := make([]byte, 0, len(one)*rawBatch)
	for i := 0; i < rawBatch; i++ {
		block = append(block, one...)
	}
	for left := n; left > 0; {
		k := min(left, rawBatch)
		if err := r.write(block[:k*len(one)]); err != nil {
			return err
		}
		left -= k
	}
	return r.publish(context.Background(), 1)
}

// pipelineAcked keeps up to window QoS 1/2 messages in flight. A reader
// goroutine counts the PUBACKs/PUBCOMPs of one read buffer and returns
// them to the writer as one credit batch, and answers that buffer's PUBRECs
// with PUBRELs in one write. The writer sends everything its credits allow
// in one write (at most rawBatch packets), so both directions move in
// batches as large as the broker's own.
func (r *rawClient) pipelineAcked(n int, qos byte, window int) error {
	pkts := make([][]byte, window)
	rels := make([][]byte, window)
	for i := range pkts {
		pkts[i] = encodePublish(r.version, qos, uint16(i+1), r.topic, r.payload)
		rels[i] = encodeAck(r.version, packet.PUBREL, uint16(i+1))
	}
	credits := make(chan int, window+1)
	readErr := make(chan error, 1)
	go func() {
		var body, relBuf []byte
		acked := 0
		for done := 0; done < n; {
			typ, _, b, err := readPacket(r.br, body)
			body = b
			if err != nil {
				readErr <- err
				return
			}
			switch typ {
			case 4, 7:
				done++
				acked++
			case 5:
				id := int(body[0])<<8 | int(body[1])
				relBuf = append(relBuf, rels[id-1]...)
			}
			if r.br.Buffered() > 0 {
				continue
			}
			if len(relBuf) > 0 {
				if err := r.write(relBuf); err != nil {
					readErr <- err
					return
				}
				relBuf = relBuf[:0]
			}
			if acked > 0 {
				credits <- acked
				acked = 0
			}
		}
		readErr <- nil
	}()
	avail := window
	buf := make([]byte, 0, len(pkts[0])*rawBatch)
	for sent := 0; sent < n; {
		if avail == 0 {
			select {
			case k := <-credits:
				avail += k
			case err := <-readErr:
				return fmt.Errorf("raw: reader stopped early: %v", err)
			}
		}
	drain:
		for {
			select {
			case k := <-credits:
				avail += k
			default:
				break drain
			}
		}
		k := min(avail, rawBatch, n-sent)
		buf = buf[:0]
		for i := 0; i < k; i++ {
			buf = append(buf, pkts[(sent+i)%window]...)
		}
		if err := r.write(buf); err != nil {
			return err
		}
		sent += k
		avail -= k
	}
	return <-readErr
}

// subscribe sends SUBSCRIBE, waits for SUBACK, then reads in a goroutine,
// calling onMsg per PUBLISH and acknowledging QoS 1 messages in one write
// per read buffer.
func (r *rawClient) subscribe(_ context.Context, filter string, qos byte, onMsg func()) error {
	s := packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: filter, QoS: qos}}}
	if err := r.write(mustAppend(s.Append(nil, packet.Version(r.version)))); err != nil {
		return err
	}
	var body []byte
	for {
		typ, _, b, err := readPacket(r.br, body)
		body = b
		if err != nil {
			return err
		}
		if typ == 9 {
			break
		}
	}
	r.nc.SetDeadline(timeZero)
	r.readEnd = make(chan struct{})
	go func() {
		defer close(r.readEnd)
		var body, acks []byte
		for {
			typ, flags, b, err := readPacket(r.br, body)
			body = b
			if err != nil {
				return
			}
			if typ == 3 {
				onMsg()
				if flags>>1&3 == 1 {
					tl := int(body[0])<<8 | int(body[1])
					acks = append(acks, 0x40, 2, body[2+tl], body[3+tl])
				}
			}
			if len(acks) > 0 && r.br.Buffered() == 0 {
				if r.write(acks) != nil {
					return
				}
				acks = acks[:0]
			}
		}
	}()
	return nil
}

var timeZero time.Time
