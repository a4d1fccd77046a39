//go:build !js

package websocket_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	_ "github.com/b4e21b16/mqtt/websocket"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// wsBroker is one mosquitto with a WebSocket listener (ws), one with TLS
// (wss, serving a certificate from pki for 127.0.0.1) and a TCP listener.
// Mosquitto 2.0.11 as Debian builds it serves WebSocket through its
// statically linked libwebsockets.
type wsBroker struct {
	*brokertest.Broker
	pki  *brokertest.PKI
	urls map[string]string // by scheme
}

func startWSBroker(t testing.TB) *wsBroker {
	t.Helper()
	pki := brokertest.NewPKI(t)
	wss := brokertest.SecureWebSocketListener(t, pki.TLS(pki.Server, false))
	b := brokertest.Start(t, brokertest.Options{WebSocket: true, Extra: wss.Lines})
	b.WaitListener(t, wss.Addr())
	return &wsBroker{Broker: b, pki: pki, urls: map[string]string{
		"ws":  b.WebSocketURL() + "/mqtt",
		"wss": "wss://" + wss.Addr() + "/mqtt",
	}}
}

// config returns a client configuration for the scheme that trusts the
// broker's certificate authority.
func (wb *wsBroker) config(scheme string) mqtt.Config {
	return mqtt.Config{
		Servers:   []string{wb.urls[scheme]},
		ClientID:  uniqueID(nil),
		TLSConfig: &tls.Config{RootCAs: wb.pki.CertPool},
	}
}

var schemes = []string{"ws", "wss"}

// TestPublishSubscribe subscribes with one client and publishes 50
// messages with another over ws and wss, with each protocol version and
// QoS, and checks that they all arrive in order and intact.
func TestPublishSubscribe(t *testing.T) {
	t.Parallel()
	wb := startWSBroker(t)
	for _, scheme := range schemes {
		for _, v := range []mqtt.ProtocolVersion{mqtt.Version311, mqtt.Version5} {
			for _, qos := range []mqtt.QoS{0, 1, 2} {
				t.Run(fmt.Sprintf("%s/v%d/qos%d", scheme, v, qos), func(t *testing.T) {
					t.Parallel()
					ctx := testContext(t)
					subCfg, pubCfg := wb.config(scheme), wb.config(scheme)
					subCfg.Version, pubCfg.Version = v, v
					sub, pub := connect(t, subCfg), connect(t, pubCfg)
					id := subCfg.ClientID
					s, err := sub.Subscribe(ctx, id+"/+/temp", qos)
					if err != nil {
						t.Fatalf("Subscribe: %v", err)
					}
					const n = 50
					want := make([]mqtt.Message, n)
					for i := range n {
						want[i] = mqtt.Message{Topic: fmt.Sprintf("%s/%d/temp", id, i), Payload: []byte(fmt.Sprint(i)), QoS: qos}
						if err := pub.Publish(ctx, want[i]); err != nil {
							t.Fatalf("Publish %d: %v", i, err)
						}
					}
					for i := range n {
						if diff := cmp.Diff(want[i], receive(t, s.Messages()), ignoreMessage...); diff != "" {
							t.Fatalf("message %d (-want +got):\n%s", i, diff)
						}
					}
					if err := pub.Disconnect(ctx); err != nil {
						t.Errorf("Disconnect: %v", err)
					}
					if err := sub.Disconnect(ctx); err != nil {
						t.Errorf("Disconnect: %v", err)
					}
				})
			}
		}
	}
}

// ignoreMessage compares received messages by their content.
var ignoreMessage = []cmp.Option{cmpopts.EquateEmpty(), cmpopts.IgnoreUnexported(mqtt.Message{}),
	cmpopts.IgnoreFields(mqtt.Message{}, "SubscriptionIDs")}

// TestLargeMessage sends a message of 70 kB, whose WebSocket frame needs
// the 64-bit length, and receives it back. Mosquitto 2.0 writes large
// WebSocket messages in 4 KiB pieces with a service-loop delay between them
// (its issue #1390), so this takes about two seconds.
func TestLargeMessage(t *testing.T) {
	t.Parallel()
	wb := startWSBroker(t)
	for _, scheme := range schemes {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			cfg := wb.config(scheme)
			c := connect(t, cfg)
			s, err := c.Subscribe(ctx, cfg.ClientID+"/large", 1)
			if err != nil {
				t.Fatalf("Subscribe: %v", err)
			}
			want := mqtt.Message{Topic: cfg.ClientID + "/large", Payload: []byte(strings.Repeat("0123456789", 7000)), QoS: 1}
			if err := c.Publish(ctx, want); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if diff := cmp.Diff(want, receive(t, s.Messages()), ignoreMessage...); diff != "" {
				t.Fatalf("message (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCrossDelivery checks that clients on ws, wss and TCP reach each other
// through the same broker.
func TestCrossDelivery(t *testing.T) {
	t.Parallel()
	wb := startWSBroker(t)
	ctx := testContext(t)
	id := uniqueID(t)
	urls := map[string]string{"tcp": wb.URL(), "ws": wb.urls["ws"], "wss": wb.urls["wss"]}
	names := []string{"tcp", "ws", "wss"}
	subs := map[string]*mqtt.Subscription{}
	clients := map[string]*mqtt.Client{}
	for _, name := range names {
		cfg := wb.config(name)
		cfg.Servers = []string{urls[name]}
		clients[name] = connect(t, cfg)
		s, err := clients[name].Subscribe(ctx, id+"/#", 1)
		if err != nil {
			t.Fatalf("%s: Subscribe: %v", name, err)
		}
		subs[name] = s
	}
	for _, from := range names {
		if err := clients[from].Publish(ctx, mqtt.Message{Topic: id + "/" + from, Payload: []byte(from), QoS: 1}); err != nil {
			t.Fatalf("%s: Publish: %v", from, err)
		}
		for _, to := range names {
			if got := receive(t, subs[to].Messages()); got.Topic != id+"/"+from || string(got.Payload) != from {
				t.Fatalf("%s from %s: got %s %q", to, from, got.Topic, got.Payload)
			}
		}
	}
}

// TestReconnect cuts the connection under a WebSocket: the client notices,
// reconnects over WebSocket and resumes.
func TestReconnect(t *testing.T) {
	t.Parallel()
	wb := startWSBroker(t)
	for _, scheme := range schemes {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			dialed := make(chan net.Conn, 2)
			cfg := wb.config(scheme)
			cfg.Reconnect = mqtt.ReconnectConfig{MinDelay: 10e6}
			cfg.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
				var d net.Dialer
				nc, err := d.DialContext(ctx, network, addr)
				if err == nil {
					dialed <- nc
				}
				return nc, err
			}
			c := connect(t, cfg)
			(<-dialed).Close()
			waitEvent(t, c, mqtt.EventConnectionLost)
			waitEvent(t, c, mqtt.EventConnected)
			if _, err := c.Ping(testContext(t)); err != nil {
				t.Fatalf("Ping after reconnecting: %v", err)
			}
		})
	}
}

// TestTLS checks wss against a certificate the client does not trust, and
// mutual TLS: with a client certificate the client is accepted, without
// one it is refused with an error that says so.
func TestTLS(t *testing.T) {
	t.Parallel()
	pki := brokertest.NewPKI(t)
	wss := brokertest.SecureWebSocketListener(t, pki.TLS(pki.Server, true))
	b := brokertest.Start(t, brokertest.Options{Extra: wss.Lines})
	b.WaitListener(t, wss.Addr())
	url := "wss://" + wss.Addr() + "/mqtt"
	t.Run("unknown authority", func(t *testing.T) {
		t.Parallel()
		c, err := mqtt.Connect(testContext(t), mqtt.Config{Servers: []string{url}, ClientID: uniqueID(t)})
		if err == nil {
			c.Close()
			t.Fatal("Connect succeeded")
		}
		if _, ok := errors.AsType[x509.UnknownAuthorityError](err); !ok {
			t.Errorf("Connect error %q (%T) does not carry an x509.UnknownAuthorityError", err, err)
		}
		for _, want := range []string{url, "TLS handshake", "certificate signed by unknown authority"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Connect error %q does not mention %q", err, want)
			}
		}
	})
	t.Run("client certificate", func(t *testing.T) {
		t.Parallel()
		c := connect(t, mqtt.Config{Servers: []string{url}, ClientID: uniqueID(t), TLSConfig: &tls.Config{
			RootCAs:      pki.CertPool,
			Certificates: []tls.Certificate{pki.Client.Certificate},
		}})
		if _, err := c.Ping(testContext(t)); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		t.Parallel()
		c, err := mqtt.Connect(testContext(t), mqtt.Config{Servers: []string{url}, ClientID: uniqueID(t),
			TLSConfig: &tls.Config{RootCAs: pki.CertPool}})
		if err == nil {
			c.Close()
			t.Fatal("Connect succeeded without a client certificate")
		}
		// TLS 1.3 ends the handshake before the server checks the
		// client's certificate: its refusal arrives on the upgrade
		// request.
		if msg := err.Error(); !strings.Contains(msg, "the server asked for a client certificate") {
			t.Errorf("Connect error %q does not say that a certificate is required", msg)
		}
	})
}

// TestDialer checks that Config.Dialer opens the connection under the
// WebSocket, with the host and port from the URL.
func TestDialer(t *testing.T) {
	t.Parallel()
	wb := startWSBroker(t)
	for _, scheme := range schemes {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			var (
				mu    sync.Mutex
				calls []string
			)
			cfg := wb.config(scheme)
			cfg.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
				mu.Lock()
				calls = append(calls, network+" "+addr)
				mu.Unlock()
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			}
			c := connect(t, cfg)
			if _, err := c.Ping(testContext(t)); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			want := "tcp " + strings.TrimSuffix(strings.TrimPrefix(wb.urls[scheme], scheme+"://"), "/mqtt")
			mu.Lock()
			defer mu.Unlock()
			if diff := cmp.Diff([]string{want}, calls); diff != "" {
				t.Errorf("dialer calls (-want +got):\n%s", diff)
			}
		})
	}
}
