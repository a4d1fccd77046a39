package brokertest

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const ioTimeout = 10 * time.Second

// connectPacket is an MQTT 3.1.1 CONNECT with clean session, a keep alive
// of 60 s and an empty client identifier.
var connectPacket = []byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00}

// dial connects to a broker listener with an I/O deadline.
func dial(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout(network, addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(ioTimeout))
	return conn
}

// mqttString encodes s as an MQTT UTF-8 string.
func mqttString(s string) []byte {
	return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...)
}

// packet builds an MQTT control packet from its first byte and body; bodies
// are short enough for a one byte remaining length.
func packet(first byte, body ...[]byte) []byte {
	b := bytes.Join(body, nil)
	if len(b) > 127 {
		panic("packet too long for this helper")
	}
	return append([]byte{first, byte(len(b))}, b...)
}

// connectWith builds a CONNECT packet with clean session and the given
// credentials; empty strings leave them out.
func connectWith(user, pass string) []byte {
	flags := byte(0x02)
	payload := mqttString("")
	if user != "" {
		flags |= 0x80
		payload = append(payload, mqttString(user)...)
	}
	if pass != "" {
		flags |= 0x40
		payload = append(payload, mqttString(pass)...)
	}
	return packet(0x10, mqttString("MQTT"), []byte{0x04, flags, 0x00, 0x3c}, payload)
}

// exchange writes req and reads exactly len(want) bytes, which must equal want.
func exchange(t *testing.T, rw io.ReadWriter, req, want []byte) {
	t.Helper()
	if _, err := rw.Write(req); err != nil {
		t.Fatalf("write % x: %v", req, err)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(rw, got); err != nil {
		t.Fatalf("reading reply to % x: %v", req, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("reply to % x is % x, want % x", req, got, want)
	}
}

// connack is a CONNACK without session present and the given return code.
func connack(code byte) []byte { return []byte{0x20, 0x02, 0x00, code} }

// mqttConnect sends the plain CONNECT packet and expects success.
func mqttConnect(t *testing.T, rw io.ReadWriter) {
	t.Helper()
	exchange(t, rw, connectPacket, connack(0))
}

func TestAllListeners(t *testing.T) {
	t.Parallel()
	b := Start(t, Options{WebSocket: true, Unix: true, Persistence: true})

	if !strings.HasPrefix(b.Addr(), "127.0.0.1:") {
		t.Errorf("Addr() = %q, want a 127.0.0.1 address", b.Addr())
	}
	if want := "mqtt://" + b.Addr(); b.URL() != want {
		t.Errorf("URL() = %q, want %q", b.URL(), want)
	}
	if !strings.HasPrefix(b.WebSocketURL(), "ws://127.0.0.1:") {
		t.Errorf("WebSocketURL() = %q, want a ws://127.0.0.1 URL", b.WebSocketURL())
	}
	if b.UnixPath() == "" || b.TLSAddr() != "" || b.TLSURL() != "" {
		t.Errorf("UnixPath() = %q, TLSAddr() = %q, TLSURL() = %q", b.UnixPath(), b.TLSAddr(), b.TLSURL())
	}
	if fi, err := os.Stat(b.Dir()); err != nil || !fi.IsDir() {
		t.Errorf("Dir() = %q: %v", b.Dir(), err)
	}

	t.Run("tcp", func(t *testing.T) {
		mqttConnect(t, dial(t, "tcp", b.Addr()))
	})
	t.Run("unix", func(t *testing.T) {
		mqttConnect(t, dial(t, "unix", b.UnixPath()))
	})
	t.Run("websocket", func(t *testing.T) {
		hostport := strings.TrimPrefix(b.WebSocketURL(), "ws://")
		conn := dial(t, "tcp", hostport)
		fmt.Fprintf(conn, "GET /mqtt HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
			"Sec-WebSocket-Protocol: mqtt\r\n\r\n", hostport)
		r := bufio.NewReader(conn)
		status, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading handshake response: %v", err)
		}
		if !strings.HasPrefix(status, "HTTP/1.1 101") {
			t.Fatalf("handshake response status %q, want 101", status)
		}
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading handshake headers: %v", err)
			}
			if l == "\r\n" {
				break
			}
		}
		// CONNECT in a masked binary frame; CONNACK in an unmasked one.
		mask := []byte{0x11, 0x22, 0x33, 0x44}
		frame := append([]byte{0x82, 0x80 | byte(len(connectPacket))}, mask...)
		for i, c := range connectPacket {
			frame = append(frame, c^mask[i%4])
		}
		exchange(t, struct {
			io.Reader
			io.Writer
		}{r, conn}, frame, append([]byte{0x82, 0x04}, connack(0)...))
	})

	if !strings.Contains(b.Log(), "running") {
		t.Errorf("broker log lacks the startup message:\n%s", b.Log())
	}
}

func TestKillRestart(t *testing.T) {
	t.Parallel()
	b := Start(t, Options{Unix: true})
	addr := b.Addr()
	conn := dial(t, "tcp", addr)
	mqttConnect(t, conn)

	b.Kill(t)
	if n, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a killed broker", n)
	}
	if c, err := net.DialTimeout("tcp", addr, ioTimeout); err == nil {
		c.Close()
		t.Fatalf("dial %s succeeded after Kill", addr)
	}
	b.Kill(t) // no-op when not running

	b.Restart(t)
	if b.Addr() != addr {
		t.Fatalf("Addr() after Restart = %q, want %q", b.Addr(), addr)
	}
	mqttConnect(t, dial(t, "tcp", addr))
	mqttConnect(t, dial(t, "unix", b.UnixPath()))

	// Restart of a running broker stops it first.
	b.Restart(t)
	mqttConnect(t, dial(t, "tcp", addr))
}

func TestPersistenceAcrossStop(t *testing.T) {
	t.Parallel()
	b := Start(t, Options{Persistence: true})

	conn := dial(t, "tcp", b.Addr())
	mqttConnect(t, conn)
	publish := packet(0x31, mqttString("brokertest/retained"), []byte("kept"))
	if _, err := conn.Write(publish); err != nil {
		t.Fatal(err)
	}
	// The PINGRESP shows that the broker has processed the PUBLISH.
	exchange(t, conn, []byte{0xc0, 0x00}, []byte{0xd0, 0x00})

	b.Stop(t)
	if _, err := os.Stat(filepath.Join(b.Dir(), "data", "mosquitto.db")); err != nil {
		t.Errorf("no persistence database after Stop: %v", err)
	}
	b.Restart(t)

	conn = dial(t, "tcp", b.Addr())
	mqttConnect(t, conn)
	subscribe := packet(0x82, []byte{0x00, 0x01}, mqttString("brokertest/#"), []byte{0x00})
	want := append([]byte{0x90, 0x03, 0x00, 0x01, 0x00}, publish...)
	exchange(t, conn, subscribe, want)
}

func TestParallelBrokers(t *testing.T) {
	t.Parallel()
	const n = 2
	var (
		mu    sync.Mutex
		addrs []string
		ready sync.WaitGroup
	)
	ready.Add(n)
	t.Run("group", func(t *testing.T) {
		for i := range n {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				var b *Broker
				func() {
					defer ready.Done()
					b = Start(t, Options{WebSocket: true})
				}()
				// Both brokers run at the same time from here on.
				ready.Wait()
				mqttConnect(t, dial(t, "tcp", b.Addr()))
				mu.Lock()
				addrs = append(addrs, b.Addr(), b.WebSocketURL())
				mu.Unlock()
			})
		}
	})
	seen := map[string]bool{}
	for _, a := range addrs {
		port := a[strings.LastIndex(a, ":")+1:]
		if seen[port] {
			t.Errorf("port %s used twice: %v", port, addrs)
		}
		seen[port] = true
	}
}

func TestUsers(t *testing.T) {
	t.Parallel()
	b := Start(t, Options{Users: map[string]string{"alice": "secret", "bob": "hunter2"}})
	for _, tc := range []struct {
		user, pass string
		code       byte
	}{
		{"alice", "secret", 0},
		{"bob", "hunter2", 0},
		{"alice", "hunter2", 5},
		{"carol", "secret", 5},
		{"", "", 5},
	} {
		conn := dial(t, "tcp", b.Addr())
		exchange(t, conn, connectWith(tc.user, tc.pass), connack(tc.code))
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, caKey := newCert(t, nil, nil, "brokertest CA", dir, "ca")
	newCert(t, ca, caKey, "127.0.0.1", dir, "server")
	client, _ := newCert(t, ca, caKey, "client", dir, "client")

	b := Start(t, Options{TLS: &TLS{
		CertFile:          filepath.Join(dir, "server.pem"),
		KeyFile:           filepath.Join(dir, "server.key"),
		CAFile:            filepath.Join(dir, "ca.pem"),
		RequireClientCert: true,
	}})
	if want := "mqtts://" + b.TLSAddr(); b.TLSURL() != want || b.TLSAddr() == "" {
		t.Errorf("TLSURL() = %q, TLSAddr() = %q", b.TLSURL(), b.TLSAddr())
	}

	roots := x509.NewCertPool()
	roots.AddCert(ca)
	clientCert, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	if clientCert.Leaf.Subject.CommonName != client.Subject.CommonName {
		t.Fatalf("loaded client certificate for %q", clientCert.Leaf.Subject.CommonName)
	}

	t.Run("client certificate", func(t *testing.T) {
		conn := tls.Client(dial(t, "tcp", b.TLSAddr()), &tls.Config{
			RootCAs:      roots,
			ServerName:   "127.0.0.1",
			Certificates: []tls.Certificate{clientCert},
		})
		mqttConnect(t, conn)
	})
	t.Run("no client certificate", func(t *testing.T) {
		conn := tls.Client(dial(t, "tcp", b.TLSAddr()), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
		_, err := conn.Write(connectPacket)
		if err == nil {
			_, err = conn.Read(make([]byte, 4))
		}
		if err == nil {
			t.Fatal("broker accepted a client without certificate")
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("want a TLS error, got %v", err)
		}
	})
}

// newCert creates a certificate for name signed by parent (self-signed CA
// when parent is nil) and writes it and its key to dir/base.pem and
// dir/base.key.
func newCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, name, dir, base string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		signer, signerKey = parent, parentKey
		if ip := net.ParseIP(name); ip != nil {
			tmpl.IPAddresses = []net.IP{ip}
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		} else {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(file, typ string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, file), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: data}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(base+".pem", "CERTIFICATE", der)
	write(base+".key", "EC PRIVATE KEY", keyDER)
	return cert, key
}
