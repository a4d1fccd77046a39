package main

import (
	"bufio"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// sinkServer is a minimal in-process MQTT broker: it answers CONNECT,
// acknowledges every publish at once, answers SUBSCRIBE and PINGREQ, and
// routes nothing.
type sinkServer struct {
	ln       net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	received atomic.Int64
}

func startSink() (*sinkServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sinkServer{ln: ln, conns: make(map[net.Conn]struct{})}
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

func (s *sinkServer) serve(nc net.Conn) {
	br := bufio.NewReaderSize(nc, 64<<10)
	bw := bufio.NewWriterSize(nc, 64<<10)
	var body []byte
	var rb [16]byte
	v5 := false
	for {
		typ, flags, b, err := readPacket(br, body)
		body = b
		if err != nil {
			return
		}
		var reply []byte
		switch typ {
		case 1: // CONNECT
			if len(body) < 7 {
				return
			}
			v5 = body[6] == 5
			reply = append(rb[:0], 0x20, 2, 0, 0)
			if v5 {
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
		case 6: // PUBREL
			reply = append(rb[:0], 0x70, 2, body[0], body[1])
		case 8: // SUBSCRIBE: grant QoS 0 to one filter
			if v5 {
				reply = append(rb[:0], 0x90, 4, body[0], body[1], 0, 0)
			} else {
				reply = append(rb[:0], 0x90, 3, body[0], body[1], 0)
			}
		case 12: // PINGREQ
			reply = append(rb[:0], 0xd0, 0)
		case 14: // DISCONNECT
			bw.Flush()
			return
		}
		if reply != nil {
			if _, err := bw.Write(reply); err != nil {
				return
			}
		}
		if br.Buffered() == 0 && bw.Buffered() > 0 {
			if err := bw.Flush(); err != nil {
				return
			}
		}
	}
}
