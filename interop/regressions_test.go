// Regression tests for client issues the interoperability suite found.
// Each uses a scripted listener that answers exactly as the named broker
// does, so it needs no broker installed.
package interop

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
)

// scriptedBroker accepts connections on a loopback port and hands each
// packet it reads to handle, which writes the answer or closes.
type scriptedBroker struct {
	ln    net.Listener
	wg    sync.WaitGroup
	conns atomic.Int64
}

// packetIn is one packet read by the scripted broker: its first byte and body.
type packetIn struct {
	header byte
	body   []byte
}

func startScripted(t *testing.T, handle func(c net.Conn, p packetIn) (keep bool)) *scriptedBroker {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sb := &scriptedBroker{ln: ln}
	sb.wg.Add(1)
	go func() {
		defer sb.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			sb.conns.Add(1)
			sb.wg.Add(1)
			go func() {
				defer sb.wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					p, err := readPacket(r)
					if err != nil || !handle(c, p) {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); sb.wg.Wait() })
	return sb
}

func (sb *scriptedBroker) url() string { return "mqtt://" + sb.ln.Addr().String() }

func readPacket(r *bufio.Reader) (packetIn, error) {
	h, err := r.ReadByte()
	if err != nil {
		return packetIn{}, err
	}
	n, mul := 0, 1
	for range 4 {
		b, err := r.ReadByte()
		if err != nil {
			return packetIn{}, err
		}
		n += int(b&0x7f) * mul
		if b&0x80 == 0 {
			break
		}
		mul *= 128
	}
	body := make([]byte, n)
	_, err = io.ReadFull(r, body)
	return packetIn{h, body}, err
}

// connectLevel returns the protocol level and Clean Session flag of a
// CONNECT body ("MQTT" name, level, flags).
func connectLevel(body []byte) (level byte, clean bool) {
	return body[6], body[7]&0x02 != 0
}

// Issue 1 (fixed: a 3.1.1 return code is named as 3.1.1 defines it). A broker that supports only MQTT 3.1.1 may answer an MQTT
// 5.0 CONNECT with the 3.1.1 CONNACK "0x01 unacceptable protocol version"
// (NATS 2.9 does, as [MQTT-3.1.2-2] of 3.1.1 asks). With Version5 pinned the
// client reports this as "granted QoS 1 (0x01)": it reads the code with the
// 5.0 table, where 0x01 is a SUBACK code and no CONNACK code at all.
func TestRegressionConnectErrorNamesProtocolVersion(t *testing.T) {
	sb := startScripted(t, func(c net.Conn, p packetIn) bool {
		c.Write([]byte{0x20, 0x02, 0x00, 0x01})
		return false
	})
	_, err := mqtt.Connect(context.Background(), mqtt.Config{Servers: []string{sb.url()}, ClientID: "x", Version: mqtt.Version5})
	ce, ok := errors.AsType[*mqtt.ConnectError](err)
	if !ok || ce.Code != 0x01 {
		t.Fatalf("Connect = %v; want a *ConnectError with code 0x01", err)
	}
	if msg := err.Error(); strings.Contains(msg, "granted QoS") || !strings.Contains(msg, "protocol version") {
		t.Errorf("error text %q; want it to say the broker refused the protocol version", msg)
	}
}

// Issue 2 (fixed: VersionAuto also falls back when the broker closes). VersionAuto falls back to 3.1.1 only when the broker
// refuses 5.0 with a CONNACK. RabbitMQ before 3.13 (3.10.8 here) instead
// closes the connection on a 5.0 CONNECT, so a client with the default
// configuration cannot connect to it at all. Falling back also when the
// connection closes before any CONNACK to a 5.0 CONNECT would cope.
func TestRegressionVersionAutoWithBrokerThatCloses(t *testing.T) {
	sb := startScripted(t, func(c net.Conn, p packetIn) bool {
		switch p.header >> 4 {
		case 1: // CONNECT
			if level, _ := connectLevel(p.body); level != 4 {
				return false // RabbitMQ 3.10: close, no CONNACK
			}
			c.Write([]byte{0x20, 0x02, 0x00, 0x00})
		case 12: // PINGREQ
			c.Write([]byte{0xd0, 0x00})
		}
		return true
	})
	c, err := mqtt.Connect(context.Background(), mqtt.Config{Servers: []string{sb.url()}, ClientID: "x"})
	if err != nil {
		t.Fatalf("Connect with VersionAuto: %v", err)
	}
	defer c.Close()
	if v := c.Connection().Version; v != mqtt.Version311 {
		t.Errorf("ProtocolVersion = %v, want 3.1.1", v)
	}
}

// Issue 3 (fixed: the backoff grows across connections that die before the
// broker sends anything, and with Reconnect.RejectAfter the publish fails
// with ErrPublishRejected). A broker that ends the connection whenever it receives a
// particular PUBLISH (NATS 2.9 for any QoS 2 PUBLISH, mosquitto 2.0 and
// mochi-mqtt 2.7 over 3.1.1 for one above their packet limit; RabbitMQ 3.10
// answers a QoS 2 PUBLISH with PUBACK, which the client treats as a
// protocol violation and also disconnects) makes a client with automatic
// reconnection (the default) loop: it reconnects, resends the in-flight
// message with DUP set, is disconnected again, and so on, about ten times a
// second for as long as the process runs, because the backoff restarts from
// MinDelay after every successful CONNACK. The Publish never returns an
// error and Client.Err stays nil, so nothing tells the application what the
// broker refused; with RabbitMQ each round also delivers the message again.
func TestRegressionReconnectLoopOnRejectedPublish(t *testing.T) {
	sb := startScripted(t, func(c net.Conn, p packetIn) bool {
		switch p.header >> 4 {
		case 1: // CONNECT: keep the session when asked to
			_, clean := connectLevel(p.body)
			present := byte(1)
			if clean {
				present = 0
			}
			c.Write([]byte{0x20, 0x02, present, 0x00})
		case 3: // PUBLISH at QoS 2: close, as NATS 2.9 does
			return p.header&0x06 != 0x04
		case 12:
			c.Write([]byte{0xd0, 0x00})
		}
		return true
	})
	c, err := mqtt.Connect(context.Background(), mqtt.Config{Servers: []string{sb.url()}, ClientID: "x", Version: mqtt.Version311,
		Reconnect: mqtt.ReconnectConfig{RejectAfter: 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err = c.Publish(ctx, mqtt.Message{Topic: "a/b", Payload: []byte("x"), QoS: mqtt.ExactlyOnce})
	t.Logf("Publish = %v; Err = %v; connections made: %d", err, c.Err(), sb.conns.Load())
	if errors.Is(err, context.DeadlineExceeded) {
		t.Error("Publish still waiting after 3 s; want an error saying the broker keeps closing the connection on this message")
	}
	if n := sb.conns.Load(); n > 5 {
		t.Errorf("%d connections in 3 s; want the backoff to grow while each connection dies on the same in-flight message", n)
	}
}
