package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/b4e21b16/mqtt/packet"
)

// encodeConnect returns a clean-start CONNECT for MQTT 3.1.1 (4) or 5.0 (5).
func encodeConnect(version byte, clientID string) []byte {
	p := packet.Connect{Version: packet.Version(version), CleanStart: true, KeepAlive: 60, ClientID: clientID}
	out, err := p.Append(nil, packet.Version(version))
	if err != nil {
		panic(err) // fixed, valid input
	}
	return out
}

// encodePublish returns one PUBLISH packet.
func encodePublish(version, qos byte, id uint16, topic string, payload []byte) []byte {
	p := packet.Publish{QoS: qos, PacketID: id, Topic: topic, Payload: payload}
	out, err := p.Append(nil, packet.Version(version))
	if err != nil {
		panic(err) // fixed, valid input
	}
	return out
}

// rawConn is a plain TCP connection that has completed CONNECT/CONNACK.
type rawConn struct {
	nc      net.Conn
	br      *bufio.Reader
	version byte
}

func dialRaw(ctx context.Context, addr string, version byte) (*rawConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	if _, err := nc.Write(encodeConnect(version, "bench-raw")); err != nil {
		nc.Close()
		return nil, err
	}
	r := &rawConn{nc: nc, br: bufio.NewReaderSize(nc, 64<<10), version: version}
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

func (r *rawConn) Close() error {
	r.nc.Write([]byte{0xe0, 0})
	return r.nc.Close()
}

// waitPuback reads packets until count PUBACKs have been seen.
func (r *rawConn) waitPubacks(count int) error {
	var body []byte
	for seen := 0; seen < count; {
		typ, _, b, err := readPacket(r.br, body)
		body = b
		if err != nil {
			return err
		}
		if typ == 4 {
			seen++
		}
	}
	return nil
}

const rawBatch = 256

func runRaw(ctx context.Context, addr string, cfg runConfig) (time.Duration, error) {
	r, err := dialRaw(ctx, addr, cfg.version)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	switch cfg.qos {
	case 0:
		return rawQoS0(r, cfg)
	default:
		return rawQoS1(r, cfg)
	}
}

func rawQoS0(r *rawConn, cfg runConfig) (time.Duration, error) {
	one := encodePublish(r.version, 0, 0, cfg.topic, cfg.payload)
	block := make([]byte, 0, len(one)*rawBatch)
	for i := 0; i < rawBatch; i++ {
		block = append(block, one...)
	}
	fence := encodePublish(r.version, 1, 1, cfg.topic, cfg.payload)
	start := time.Now()
	left := cfg.n
	for left > 0 {
		k := min(left, rawBatch)
		if _, err := r.nc.Write(block[:k*len(one)]); err != nil {
			return 0, err
		}
		left -= k
	}
	if _, err := r.nc.Write(fence); err != nil {
		return 0, err
	}
	if err := r.waitPubacks(1); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func rawQoS1(r *rawConn, cfg runConfig) (time.Duration, error) {
	pkts := make([][]byte, cfg.window)
	for i := range pkts {
		pkts[i] = encodePublish(r.version, 1, uint16(i+1), cfg.topic, cfg.payload)
	}
	sem := make(chan struct{}, cfg.window)
	readErr := make(chan error, 1)
	start := time.Now()
	go func() {
		var body []byte
		for seen := 0; seen < cfg.n; {
			typ, _, b, err := readPacket(r.br, body)
			body = b
			if err != nil {
				readErr <- err
				return
			}
			if typ == 4 {
				seen++
				<-sem
			}
		}
		readErr <- nil
	}()
	buf := make([]byte, 0, len(pkts[0])*rawBatch)
	for sent := 0; sent < cfg.n; {
		buf = buf[:0]
		select {
		case sem <- struct{}{}:
		case err := <-readErr:
			return 0, fmt.Errorf("raw: reader stopped early: %v", err)
		}
		buf = append(buf, pkts[sent%cfg.window]...)
		sent++
	fill:
		for sent < cfg.n && len(buf)/len(pkts[0]) < rawBatch {
			select {
			case sem <- struct{}{}:
				buf = append(buf, pkts[sent%cfg.window]...)
				sent++
			default:
				break fill
			}
		}
		if _, err := r.nc.Write(buf); err != nil {
			return 0, err
		}
	}
	if err := <-readErr; err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
