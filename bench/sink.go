package main

import (
	"bufio"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/b4e21b16/mqtt/packet"
)

// sinkServer is a minimal in-process MQTT broker: it answers CONNECT,
// acknowledges every publish at once, answers SUBSCRIBE and PINGREQ, and
// routes nothing. With a flood configured, a SUBSCRIBE makes it publish
// flood.n messages to that connection as fast as the client takes them.
type sinkServer struct {
	ln       net.Listener
	flood    floodConfig
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	received atomic.Int64
}

// floodConfig describes what the sink publishes after a SUBSCRIBE.
type floodConfig struct {
	n       int    // messages per subscription; 0 disables the flood
	window  int    // QoS 1 messages in flight at most, further capped by the client's Receive Maximum
	topic   string // topic of every flooded message
	payload []byte
}

func startSink(flood floodConfig) (*sinkServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sinkServer{ln: ln, flood: flood, conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *sinkServer) Addr() string { return s.ln.Addr().String() }

func (s *sinkServer) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *sinkServer) accept() {
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

// sinkConn is the state of one sink connection. The serve loop and the
// flooder both write, under wmu.
type sinkConn struct {
	nc         net.Conn
	wmu        sync.Mutex
	bw         *bufio.Writer
	version    packet.Version
	receiveMax int
	credit     chan struct{} // flood window: one token per QoS 1 message in flight
	stop       chan struct{} // closed when the serve loop ends
}

func (s *sinkServer) serve(nc net.Conn) {
	br := bufio.NewReaderSize(nc, 64<<10)
	sc := &sinkConn{
		nc:         nc,
		bw:         bufio.NewWriterSize(nc, 64<<10),
		version:    packet.V311,
		receiveMax: 65535,
		stop:       make(chan struct{}),
	}
	var flooder sync.WaitGroup
	defer flooder.Wait()
	defer close(sc.stop)
	defer nc.Close()
	flooding := false
	var body []byte
	var rb [16]byte
	for {
		typ, flags, b, err := readPacket(br, body)
		body = b
		if err != nil {
			return
		}
		var reply []byte
		floodQoS := -1
		switch typ {
		case 1: // CONNECT
			p, err := packet.Decode(packet.Header{Type: packet.CONNECT, Flags: flags, Remaining: len(body)}, body, 0)
			if err != nil {
				return
			}
			c := p.(*packet.Connect)
			sc.version = c.Version
			if c.Props.ReceiveMaximum != 0 {
				sc.receiveMax = int(c.Props.ReceiveMaximum)
			}
			reply = append(rb[:0], 0x20, 2, 0, 0)
			if sc.version == packet.V5 {
				reply = append(rb[:0], 0x20, 3, 0, 0, 0)
			}
		case 3: // PUBLISH
			s.received.Add(1)
			qos := flags >> 1 & 3
			if qos == 0 {
				break
			}
			tl := int(body[0])<<8 | int(body[1])
			if len(body) < 4+tl {
				return
			}
			t := byte(0x40)
			if qos == 2 {
				t = 0x50
			}
			reply = append(rb[:0], t, 2, body[2+tl], body[3+tl])
		case 4: // PUBACK of a flooded message
			if sc.credit != nil {
				select {
				case <-sc.credit:
				default:
				}
			}
		case 6: // PUBREL
			reply = append(rb[:0], 0x70, 2, body[0], body[1])
		case 8: // SUBSCRIBE: grant the requested QoS (0 or 1) of the last filter
			granted := min(body[len(body)-1]&3, 1)
			if sc.version == packet.V5 {
				reply = append(rb[:0], 0x90, 4, body[0], body[1], 0, granted)
			} else {
				reply = append(rb[:0], 0x90, 3, body[0], body[1], granted)
			}
			if s.flood.n > 0 && !flooding {
				flooding = true
				floodQoS = int(granted)
			}
		case 12: // PINGREQ
			reply = append(rb[:0], 0xd0, 0)
		case 14: // DISCONNECT
			sc.wmu.Lock()
			sc.bw.Flush()
			sc.wmu.Unlock()
			return
		}
		if reply != nil || sc.bw.Buffered() > 0 {
			sc.wmu.Lock()
			if reply != nil {
				sc.bw.Write(reply)
			}
			var err error
			if br.Buffered() == 0 || floodQoS >= 0 {
				err = sc.bw.Flush()
			}
			sc.wmu.Unlock()
			if err != nil {
				return
			}
		}
		if floodQoS >= 0 {
			if floodQoS > 0 {
				sc.credit = make(chan struct{}, min(s.flood.window, sc.receiveMax))
			}
			flooder.Add(1)
			go func(qos byte) {
				defer flooder.Done()
				s.floodTo(sc, qos)
			}(byte(floodQoS))
		}
	}
}

// floodTo publishes s.flood.n messages to sc at qos, in batches of up to
// floodBatch packets per write. At QoS 1 it keeps at most cap(sc.credit)
// messages unacknowledged, cycling packet identifiers 1..cap(sc.credit)
// (clients acknowledge in order, so an identifier is free when reused).
func (s *sinkServer) floodTo(sc *sinkConn, qos byte) {
	const floodBatch = 256
	window := 1
	if qos > 0 {
		window = cap(sc.credit)
	}
	pkts := make([][]byte, window)
	for i := range pkts {
		p := packet.Publish{QoS: qos, Topic: s.flood.topic, Payload: s.flood.payload}
		if qos > 0 {
			p.PacketID = uint16(i + 1)
		}
		out, err := p.Append(nil, sc.version)
		if err != nil {
			return
		}
		pkts[i] = out
	}
	buf := make([]byte, 0, floodBatch*len(pkts[0]))
	for sent := 0; sent < s.flood.n; {
		buf = buf[:0]
		k := 0
	fill:
		for sent+k < s.flood.n && k < floodBatch {
			if qos > 0 {
				if k == 0 {
					select {
					case sc.credit <- struct{}{}:
					case <-sc.stop:
						return
					}
				} else {
					select {
					case sc.credit <- struct{}{}:
					default:
						break fill
					}
				}
			}
			buf = append(buf, pkts[(sent+k)%window]...)
			k++
		}
		sc.wmu.Lock()
		_, err := sc.nc.Write(buf)
		sc.wmu.Unlock()
		if err != nil {
			return
		}
		sent += k
	}
}
