// Package sink is a minimal in-process MQTT broker for benchmarks: it
// accepts CONNECT, acknowledges everything at once (PUBACK, PUBREC/PUBCOMP,
// SUBACK, UNSUBACK, PINGRESP) and does no routing, so a benchmark against it
// measures the client rather than a broker. On SUBSCRIBE it can flood the
// client with pre-encoded PUBLISH packets, never more unacknowledged than the
// client's Receive Maximum. It counts the PUBLISH packets it receives, and
// allocates nothing per packet in steady state.
//
// The root package's benchmarks and allocation tests and the bench module
// (github.com/b4e21b16/mqtt/bench) share it.
package sink

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/b4e21b16/mqtt/packet"
)

// Options configures a Server.
type Options struct {
	// FloodCount is how many PUBLISH packets the server sends to a client
	// after answering its first SUBSCRIBE (0: none).
	FloodCount int
	// FloodQoS is the QoS the flood is published at (0, 1 or 2). As from a
	// broker, each message is delivered at the lower of it and the highest
	// QoS granted to the SUBSCRIBE.
	FloodQoS byte
	// FloodTopic is the topic of every flood message (default
	// "sink/flood"). The server does not match it against the filters.
	FloodTopic string
	// FloodPayload is the payload size of each flood message.
	FloodPayload int
	// FloodWindow bounds the unacknowledged QoS 1/2 flood messages
	// (default: the client's Receive Maximum, or 256 when it announces
	// none). It never exceeds the client's Receive Maximum.
	FloodWindow int
}

// Server is a running sink broker on a loopback port.
type Server struct {
	opts     Options
	ln       net.Listener
	wg       sync.WaitGroup
	received atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// Start listens on 127.0.0.1:0 and serves until Close.
func Start(opts Options) (*Server, error) {
	if opts.FloodTopic == "" {
		opts.FloodTopic = "sink/flood"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, ln: ln, conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr returns the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL returns "mqtt://" + Addr().
func (s *Server) URL() string { return "mqtt://" + s.Addr() }

// Received returns how many PUBLISH packets the server has read, from all
// clients.
func (s *Server) Received() int64 { return s.received.Load() }

// Close stops listening, closes every connection and waits for every
// goroutine of the server.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[nc] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(nc)
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
			nc.Close()
		}()
	}
}

// conn is one client connection: the reading goroutine answers packets
// through a buffered writer; the flood goroutine writes batches straight
// to the connection. Both write under mu.
type conn struct {
	nc      net.Conn
	version packet.Version
	// receiveMax is the client's Receive Maximum, 0 when it announced
	// none.
	receiveMax int
	mu         sync.Mutex
	bw         *bufio.Writer
	window     chan struct{} // flood credits, one per unacknowledged message
	closed     chan struct{} // closed when the connection ends
}

func (s *Server) serve(nc net.Conn) {
	c := &conn{nc: nc, bw: bufio.NewWriterSize(nc, 64<<10), closed: make(chan struct{})}
	br := bufio.NewReaderSize(nc, 64<<10)
	var body []byte
	var rb [8]byte // reply buffer for the fixed-size acknowledgements
	var floodDone chan struct{}
	defer func() {
		nc.Close()
		close(c.closed)
		if floodDone != nil {
			<-floodDone
		}
	}()
	for {
		h, err := packet.ReadHeader(br, 0)
		if err != nil {
			return
		}
		if cap(body) < h.Remaining {
			body = make([]byte, h.Remaining)
		}
		body = body[:h.Remaining]
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		var reply []byte
		switch h.Type {
		case packet.CONNECT:
			p, err := packet.Decode(h, body, 0)
			if err != nil {
				return
			}
			cp := p.(*packet.Connect)
			c.version = cp.Version
			if cp.Props.Has(packet.PropReceiveMaximum) {
				c.receiveMax = int(cp.Props.ReceiveMaximum)
			}
			reply = append(rb[:0], 0x20, 2, 0, 0)
			if c.version == packet.V5 {
				reply = append(rb[:0], 0x20, 3, 0, 0, 0)
			}
		case packet.PUBLISH:
			s.received.Add(1)
			qos := h.Flags >> 1 & 3
			if qos == 0 {
				break
			}
			if len(body) < 2 {
				return
			}
			tl := int(body[0])<<8 | int(body[1])
			if len(body) < 4+tl {
				return
			}
			id := body[2+tl : 4+tl]
			t := byte(0x40) // PUBACK
			if qos == 2 {
				t = 0x50 // PUBREC
			}
			reply = append(rb[:0], t, 2, id[0], id[1])
		case packet.PUBREL:
			reply = append(rb[:0], 0x70, 2, body[0], body[1])
		case packet.PUBACK, packet.PUBCOMP:
			if c.window != nil {
				select {
				case <-c.window:
				default:
				}
			}
		case packet.PUBREC:
			reply = append(rb[:0], 0x62, 2, body[0], body[1])
		case packet.SUBSCRIBE:
			var granted byte
			var subID uint32
			reply, granted, subID = c.suback(h, body)
			if s.opts.FloodCount > 0 && floodDone == nil {
				// The SUBACK goes out before the flood starts.
				c.mu.Lock()
				_, err = c.bw.Write(reply)
				if err == nil {
					err = c.bw.Flush()
				}
				c.mu.Unlock()
				if err != nil {
					return
				}
				reply = nil
				fl, err := s.newFlood(c, min(s.opts.FloodQoS, granted), subID)
				if err != nil {
					return
				}
				floodDone = make(chan struct{})
				go func() {
					defer close(floodDone)
					fl.run()
				}()
			}
		case packet.UNSUBSCRIBE:
			reply = append(rb[:0], 0xb0, 2, body[0], body[1])
			if c.version == packet.V5 {
				reply = append(rb[:0], 0xb0, 4, body[0], body[1], 0, 0)
			}
		case packet.PINGREQ:
			reply = append(rb[:0], 0xd0, 0)
		case packet.DISCONNECT:
			c.mu.Lock()
			c.bw.Flush()
			c.mu.Unlock()
			return
		}
		if reply != nil || br.Buffered() == 0 {
			c.mu.Lock()
			_, err = c.bw.Write(reply)
			if err == nil && br.Buffered() == 0 {
				err = c.bw.Flush()
			}
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

// suback returns the SUBACK granting each filter the QoS it asked for, and
// the highest QoS granted.
func (c *conn) suback(h packet.Header, body []byte) ([]byte, byte, uint32) {
	p, err := packet.Decode(h, body, c.version)
	if err != nil {
		return nil, 0, 0
	}
	sp := p.(*packet.Subscribe)
	ack := &packet.Suback{PacketID: sp.PacketID}
	var granted byte
	for _, f := range sp.Subscriptions {
		ack.ReasonCodes = append(ack.ReasonCodes, packet.ReasonCode(f.QoS))
		granted = max(granted, f.QoS)
	}
	out, _ := ack.Append(nil, c.version)
	var subID uint32
	if ids := sp.Props.SubscriptionIDs; len(ids) > 0 {
		subID = ids[0]
	}
	return out, granted, subID
}

// floodBatch is how many bytes of flood messages the flooder gathers for
// one write; a larger message is written alone.
const floodBatch = 64 << 10

// flood sends the flood of one connection.
type flood struct {
	c      *conn
	n      int
	qos    byte
	pkt    []byte // the encoded PUBLISH, packet identifier patched per message
	idAt   int    // offset of the packet identifier in pkt
	window int    // unacknowledged QoS 1/2 messages at most
}

// newFlood prepares the flood for c at qos. Like a broker, it tags each
// message with the Subscription Identifier of the SUBSCRIBE (subID, 0 for
// none).
func (s *Server) newFlood(c *conn, qos byte, subID uint32) (*flood, error) {
	p := packet.Publish{Topic: s.opts.FloodTopic, QoS: qos, Payload: make([]byte, s.opts.FloodPayload)}
	if subID != 0 && c.version == packet.V5 {
		p.Props.SubscriptionIDs = []uint32{subID}
	}
	if qos > 0 {
		p.PacketID = 1
	}
	pkt, err := p.Append(nil, c.version)
	if err != nil {
		return nil, err
	}
	h, err := packet.ReadHeader(bytes.NewReader(pkt), 0)
	if err != nil {
		return nil, err
	}
	f := &flood{c: c, n: s.opts.FloodCount, qos: qos, pkt: pkt, idAt: len(pkt) - h.Remaining + 2 + len(p.Topic)}
	if qos > 0 {
		f.window = 256
		if c.receiveMax > 0 {
			f.window = c.receiveMax
		}
		if s.opts.FloodWindow > 0 {
			f.window = s.opts.FloodWindow
			if c.receiveMax > 0 {
				f.window = min(f.window, c.receiveMax)
			}
		}
		c.window = make(chan struct{}, f.window)
	}
	return f, nil
}

// run sends the flood, gathering messages into writes of up to floodBatch
// bytes. At QoS 1 and 2 it takes a credit from the window per message
// (the acknowledgement gives it back) and writes what it gathered before
// waiting for one. Packet identifiers run from 1 to 65535 and round
// again: a client that acknowledges in order has freed each by then.
func (f *flood) run() {
	c := f.c
	var buf []byte
	if len(f.pkt) < floodBatch {
		buf = make([]byte, 0, floodBatch)
	}
	var id uint16
	write := func(b []byte) bool {
		c.mu.Lock()
		_, err := c.nc.Write(b)
		c.mu.Unlock()
		return err == nil
	}
	for range f.n {
		if f.qos > 0 {
			select {
			case c.window <- struct{}{}:
			default:
				// The window is full: let the client see what was
				// gathered, then wait for an acknowledgement.
				if len(buf) > 0 && !write(buf) {
					return
				}
				buf = buf[:0]
				select {
				case c.window <- struct{}{}:
				case <-c.closed:
					return
				}
			}
			if id++; id == 0 {
				id = 1
			}
			f.pkt[f.idAt], f.pkt[f.idAt+1] = byte(id>>8), byte(id)
		}
		if len(buf)+len(f.pkt) > floodBatch && len(buf) > 0 {
			if !write(buf) {
				return
			}
			buf = buf[:0]
		}
		if len(f.pkt) >= floodBatch {
			if !write(f.pkt) {
				return
			}
			continue
		}
		buf = append(buf, f.pkt...)
	}
	if len(buf) > 0 {
		write(buf)
	}
}
