// Package sink is a minimal in-process MQTT broker for benchmarks: it
// accepts CONNECT, acknowledges everything at once (PUBACK, PUBREC/PUBCOMP,
// SUBACK, UNSUBACK, PINGRESP) and does no routing, so a benchmark against it
// measures the client rather than a broker. On SUBSCRIBE it can flood the
// client with pre-encoded PUBLISH packets. It allocates nothing per packet
// in steady state.
package sink

import (
	"bufio"
	"io"
	"net"
	"sync"

	"github.com/b4e21b16/mqtt/packet"
)

// Options configures a Server.
type Options struct {
	// FloodCount is how many PUBLISH packets the server sends to a client
	// after answering its SUBSCRIBE (0: none).
	FloodCount int
	// FloodQoS is the QoS of the flood (0, 1 or 2).
	FloodQoS byte
	// FloodPayload is the payload size of each flood message.
	FloodPayload int
	// FloodWindow bounds the unacknowledged QoS 1/2 flood messages
	// (default: the client's Receive Maximum, or 256 for 3.1.1).
	FloodWindow int
}

// Server is a running sink broker on a loopback port.
type Server struct {
	opts Options
	ln   net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// Start listens on 127.0.0.1:0 and serves until Close.
func Start(opts Options) (*Server, error) {
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
// through a buffered writer shared (under mu) with the flood goroutine.
type conn struct {
	nc      net.Conn
	version packet.Version
	mu      sync.Mutex
	bw      *bufio.Writer
	window  chan struct{} // flood credits, one per unacknowledged message
	closed  chan struct{} // closed when the connection ends
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
			window := 256
			if cp.Props.Has(packet.PropReceiveMaximum) {
				window = int(cp.Props.ReceiveMaximum)
			}
			if s.opts.FloodWindow > 0 {
				window = s.opts.FloodWindow
			}
			c.window = make(chan struct{}, window)
			reply = append(rb[:0], 0x20, 2, 0, 0)
			if c.version == packet.V5 {
				reply = append(rb[:0], 0x20, 3, 0, 0, 0)
			}
		case packet.PUBLISH:
			qos := h.Flags >> 1 & 3
			if qos == 0 {
				break
			}
			tl := int(body[0])<<8 | int(body[1])
			id := body[2+tl : 4+tl]
			t := byte(0x40) // PUBACK
			if qos == 2 {
				t = 0x50 // PUBREC
			}
			reply = append(rb[:0], t, 2, id[0], id[1])
		case packet.PUBREL:
			reply = append(rb[:0], 0x70, 2, body[0], body[1])
		case packet.PUBACK, packet.PUBCOMP:
			select {
			case <-c.window:
			default:
			}
		case packet.PUBREC:
			reply = append(rb[:0], 0x62, 2, body[0], body[1])
		case packet.SUBSCRIBE:
			reply = c.suback(h, body)
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
				floodDone = make(chan struct{})
				go func() {
					defer close(floodDone)
					c.flood(s.opts)
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

func (c *conn) suback(h packet.Header, body []byte) []byte {
	p, err := packet.Decode(h, body, c.version)
	if err != nil {
		return nil
	}
	sp := p.(*packet.Subscribe)
	ack := &packet.Suback{PacketID: sp.PacketID}
	for _, f := range sp.Subscriptions {
		ack.ReasonCodes = append(ack.ReasonCodes, packet.ReasonCode(f.QoS))
	}
	out, _ := ack.Append(nil, c.version)
	return out
}

// flood sends opts.FloodCount messages, keeping at most the window of QoS
// 1/2 messages unacknowledged.
func (c *conn) flood(opts Options) {
	pub := packet.Publish{Topic: "sink/flood", QoS: opts.FloodQoS, Payload: make([]byte, opts.FloodPayload)}
	var buf []byte
	var id uint16
	for i := 0; i < opts.FloodCount; i++ {
		if pub.QoS > 0 {
			select {
			case c.window <- struct{}{}:
			default:
				// The window is full: let the client see what is buffered,
				// then wait for an acknowledgement.
				c.mu.Lock()
				err := c.bw.Flush()
				c.mu.Unlock()
				if err != nil {
					return
				}
				select {
				case c.window <- struct{}{}:
				case <-c.closed:
					return
				}
			}
			id++
			if id == 0 {
				id = 1
			}
			pub.PacketID = id
		}
		buf, _ = pub.Append(buf[:0], c.version)
		c.mu.Lock()
		_, err := c.bw.Write(buf)
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
	c.mu.Lock()
	c.bw.Flush()
	c.mu.Unlock()
}
