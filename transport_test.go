package mqtt_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// transportBroker is one mosquitto with a listener for every transport the
// client handles itself; the TLS one serves a certificate from pki for
// 127.0.0.1.
type transportBroker struct {
	*brokertest.Broker
	pki   *brokertest.PKI
	urls  map[string]string // by transport name
	dials map[string]string // by transport name: what Config.Dialer is asked for
}

func startTransportBroker(t testing.TB) *transportBroker {
	t.Helper()
	pki := brokertest.NewPKI(t)
	b := brokertest.Start(t, brokertest.Options{
		Unix: true,
		TLS:  pki.TLS(pki.Server, false),
	})
	return &transportBroker{Broker: b, pki: pki,
		urls: map[string]string{
			"tcp":  b.URL(),
			"tls":  b.TLSURL(),
			"unix": "unix://" + b.UnixPath(),
		},
		dials: map[string]string{
			"tcp":  "tcp " + b.Addr(),
			"tls":  "tcp " + b.TLSAddr(),
			"unix": "unix " + b.UnixPath(),
		},
	}
}

// config returns a client configuration for the named transport that trusts
// the broker's certificate authority.
func (tb *transportBroker) config(transport string) mqtt.Config {
	return mqtt.Config{
		Servers:   []string{tb.urls[transport]},
		TLSConfig: &tls.Config{RootCAs: tb.pki.CertPool},
	}
}

// transports are the transports the client handles itself; package
// websocket tests ws and wss.
var transports = []string{"tcp", "tls", "unix"}

// TestTransportPublishSubscribe runs the publish/subscribe suite of TCP
// (TestMosquittoPublishSubscribeEachQoS) over every transport.
func TestTransportPublishSubscribe(t *testing.T) {
	t.Parallel()
	tb := startTransportBroker(t)
	for _, tr := range transports {
		for _, ver := range versions {
			for _, qos := range []mqtt.QoS{0, 1, 2} {
				t.Run(fmt.Sprintf("%s/%s/qos%d", tr, ver.name, qos), func(t *testing.T) {
					t.Parallel()
					cfg := tb.config(tr)
					cfg.Version = ver.v
					pubSubSuite(t, cfg, qos)
				})
			}
		}
	}
}

// pubSubSuite subscribes with one client and publishes 50 messages with
// another, both configured from cfg, and checks that they all arrive in
// order and intact.
func pubSubSuite(t *testing.T, cfg mqtt.Config, qos mqtt.QoS) {
	t.Helper()
	ctx := testContext(t)
	id := uniqueID(t)
	subCfg, pubCfg := cfg, cfg
	subCfg.ClientID, pubCfg.ClientID = id+"-sub", id+"-pub"
	sub := connect(t, subCfg)
	pub := connect(t, pubCfg)
	if got := sub.Connection().Version; got != cfg.Version {
		t.Fatalf("ProtocolVersion = %v, want %v", got, cfg.Version)
	}
	s, err := sub.Subscribe(ctx, id+"/+/temp", qos)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if diff := cmp.Diff([]mqtt.FilterResult{{Filter: id + "/+/temp", Code: mqtt.ReasonCode(qos)}}, s.Granted()); diff != "" {
		t.Errorf("Granted (-want +got):\n%s", diff)
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
		got := receive(t, s.Messages())
		if diff := cmp.Diff(want[i], got, cmpopts.EquateEmpty(), cmpopts.IgnoreUnexported(mqtt.Message{}), cmpopts.IgnoreFields(mqtt.Message{}, "SubscriptionIDs")); diff != "" {
			t.Fatalf("message %d (-want +got):\n%s", i, diff)
		}
	}
	if err := pub.Disconnect(ctx); err != nil {
		t.Errorf("Disconnect: %v", err)
	}
	if err := sub.Disconnect(ctx); err != nil {
		t.Errorf("Disconnect: %v", err)
	}
}

// TestTransportLargeMessage sends a message of 70 kB and receives it back.
func TestTransportLargeMessage(t *testing.T) {
	t.Parallel()
	tb := startTransportBroker(t)
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			cfg := tb.config(tr)
			cfg.ClientID = uniqueID(t)
			c := connect(t, cfg)
			s, err := c.Subscribe(ctx, cfg.ClientID+"/large", 1)
			if err != nil {
				t.Fatalf("Subscribe: %v", err)
			}
			want := mqtt.Message{Topic: cfg.ClientID + "/large", Payload: []byte(strings.Repeat("0123456789", 7000)), QoS: 1}
			if err := c.Publish(ctx, want); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if diff := cmp.Diff(want, receive(t, s.Messages()), cmpopts.EquateEmpty(), cmpopts.IgnoreUnexported(mqtt.Message{}),
				cmpopts.IgnoreFields(mqtt.Message{}, "SubscriptionIDs")); diff != "" {
				t.Fatalf("message (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTransportCrossDelivery checks that clients on different transports
// reach each other through the same broker.
func TestTransportCrossDelivery(t *testing.T) {
	t.Parallel()
	tb := startTransportBroker(t)
	ctx := testContext(t)
	id := uniqueID(t)
	subs := map[string]*mqtt.Subscription{}
	clients := map[string]*mqtt.Client{}
	for _, tr := range transports {
		cfg := tb.config(tr)
		cfg.ClientID = id + "-" + tr
		clients[tr] = connect(t, cfg)
		s, err := clients[tr].Subscribe(ctx, id+"/#", 1)
		if err != nil {
			t.Fatalf("%s: Subscribe: %v", tr, err)
		}
		subs[tr] = s
	}
	for _, from := range transports {
		if err := clients[from].Publish(ctx, mqtt.Message{Topic: id + "/" + from, Payload: []byte(from), QoS: 1}); err != nil {
			t.Fatalf("%s: Publish: %v", from, err)
		}
		for _, to := range transports {
			if got := receive(t, subs[to].Messages()); got.Topic != id+"/"+from || string(got.Payload) != from {
				t.Fatalf("%s from %s: got %s %q", to, from, got.Topic, got.Payload)
			}
		}
	}
}

// TestTransportTLSVerification connects to TLS listeners whose certificates
// are good, from an unknown authority, for another host or expired. Each
// failure is an error that says what is wrong with the certificate and
// carries the x509 error for errors.As.
func TestTransportTLSVerification(t *testing.T) {
	t.Parallel()
	pki := brokertest.NewPKI(t)
	good := brokertest.Start(t, brokertest.Options{TLS: pki.TLS(pki.Server, false)})
	wrongHost := brokertest.Start(t, brokertest.Options{TLS: pki.TLS(pki.WrongHost, false)})
	expired := brokertest.Start(t, brokertest.Options{TLS: pki.TLS(pki.Expired, false)})
	trusted := &tls.Config{RootCAs: pki.CertPool}

	for _, tc := range []struct {
		name   string
		url    string
		config *tls.Config
	}{
		{"verified", good.TLSURL(), trusted},
		{"server name from the URL", "mqtts://localhost:" + port(good.TLSAddr()), trusted},
		{"ssl scheme", "ssl://" + good.TLSAddr(), trusted},
		{"tls scheme", "tls://" + good.TLSAddr(), trusted},
		{"server name set by the caller", wrongHost.TLSURL(), &tls.Config{RootCAs: pki.CertPool, ServerName: "wrong.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := connect(t, mqtt.Config{Servers: []string{tc.url}, ClientID: uniqueID(t), TLSConfig: tc.config})
			if _, err := c.Ping(testContext(t)); err != nil {
				t.Fatalf("Ping: %v", err)
			}
		})
	}
	if trusted.ServerName != "" {
		t.Errorf("the caller's tls.Config was modified: ServerName %q", trusted.ServerName)
	}

	for _, tc := range []struct {
		name   string
		url    string
		config *tls.Config
		check  func(error) bool
		text   string
	}{
		{"unknown authority", good.TLSURL(), &tls.Config{RootCAs: x509.NewCertPool()},
			isErr[x509.UnknownAuthorityError], "certificate signed by unknown authority"},
		{"system roots", good.TLSURL(), nil,
			isErr[x509.UnknownAuthorityError], "certificate signed by unknown authority"},
		{"wrong host name", "mqtts://localhost:" + port(wrongHost.TLSAddr()), trusted,
			isErr[x509.HostnameError], "certificate is valid for wrong.example, not localhost"},
		{"wrong host address", wrongHost.TLSURL(), trusted,
			isErr[x509.HostnameError], "cannot validate certificate for 127.0.0.1"},
		{"expired", expired.TLSURL(), trusted,
			func(err error) bool {
				e, ok := errors.AsType[x509.CertificateInvalidError](err)
				return ok && e.Reason == x509.Expired
			}, "certificate has expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := mqtt.Connect(testContext(t), mqtt.Config{Servers: []string{tc.url}, ClientID: uniqueID(t), TLSConfig: tc.config})
			if err == nil {
				c.Close()
				t.Fatal("Connect succeeded")
			}
			if !tc.check(err) {
				t.Errorf("Connect error %q (%T) does not carry the expected x509 error", err, err)
			}
			msg := err.Error()
			for _, want := range []string{tc.url, "TLS handshake", "failed to verify certificate", tc.text} {
				if !strings.Contains(msg, want) {
					t.Errorf("Connect error %q does not mention %q", msg, want)
				}
			}
		})
	}
}

func isErr[E error](err error) bool {
	_, ok := errors.AsType[E](err)
	return ok
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// TestTransportMutualTLS connects to a listener that requires a client
// certificate from the broker's authority: with one the client is
// accepted, without one it is refused.
func TestTransportMutualTLS(t *testing.T) {
	t.Parallel()
	pki := brokertest.NewPKI(t)
	b := brokertest.Start(t, brokertest.Options{TLS: pki.TLS(pki.Server, true)})
	t.Run("client certificate", func(t *testing.T) {
		t.Parallel()
		c := connect(t, mqtt.Config{Servers: []string{b.TLSURL()}, ClientID: uniqueID(t), TLSConfig: &tls.Config{
			RootCAs:      pki.CertPool,
			Certificates: []tls.Certificate{pki.Client.Certificate},
		}})
		if _, err := c.Ping(testContext(t)); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		t.Parallel()
		c, err := mqtt.Connect(testContext(t), mqtt.Config{Servers: []string{b.TLSURL()}, ClientID: uniqueID(t),
			TLSConfig: &tls.Config{RootCAs: pki.CertPool}})
		if err == nil {
			c.Close()
			t.Fatal("Connect succeeded without a client certificate")
		}
		// TLS 1.3 ends the handshake before the server checks the
		// client's certificate: its refusal arrives as an alert or a
		// reset on the first read or write.
		if msg := err.Error(); !strings.Contains(msg, "the server asked for a client certificate") {
			t.Errorf("Connect error %q does not say that a certificate is required", msg)
		}
	})
}

// TestTransportDialer checks that Config.Dialer opens the socket of every
// transport, with the network and address from the URL.
func TestTransportDialer(t *testing.T) {
	t.Parallel()
	tb := startTransportBroker(t)
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			var (
				mu    sync.Mutex
				calls []string
			)
			cfg := tb.config(tr)
			cfg.ClientID = uniqueID(t)
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
			mu.Lock()
			defer mu.Unlock()
			if diff := cmp.Diff([]string{tb.dials[tr]}, calls); diff != "" {
				t.Errorf("dialer calls (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTransportURLs checks the network, address and default port of each
// URL scheme the client handles itself through a dialer that records what
// it is asked for.
func TestTransportURLs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, network, addr string }{
		{"mqtt://broker.example", "tcp", "broker.example:1883"},
		{"tcp://broker.example:1884", "tcp", "broker.example:1884"},
		{"MQTT://broker.example", "tcp", "broker.example:1883"},
		{"mqtts://broker.example", "tcp", "broker.example:8883"},
		{"ssl://broker.example", "tcp", "broker.example:8883"},
		{"tls://[::1]:9000", "tcp", "[::1]:9000"},
		{"unix:///run/mosquitto/mqtt.sock", "unix", "/run/mosquitto/mqtt.sock"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			errRecorded := errors.New("recorded")
			type call struct{ Network, Addr string }
			var got call
			cfg := mqtt.Config{Servers: []string{tc.url}, ConnectTimeout: testTimeout}
			cfg.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
				got = call{network, addr}
				return nil, errRecorded
			}
			c, err := mqtt.Connect(testContext(t), cfg)
			if err == nil {
				c.Close()
				t.Fatal("Connect succeeded")
			}
			if diff := cmp.Diff(call{tc.network, tc.addr}, got); diff != "" {
				t.Errorf("dialer call (-want +got):\n%s", diff)
			}
			if !errors.Is(err, errRecorded) {
				t.Errorf("Connect error = %v, want the dialer's", err)
			}
		})
	}
}

// TestTransportBadURL checks that a malformed URL or an unknown scheme
// fails Connect with an *ArgumentError saying why, before anything is
// dialed, and without revealing a password in the URL.
func TestTransportBadURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, why string }{
		{"broker.example:1883", "no scheme"},
		{"http://broker.example", `unsupported scheme "http"`},
		{"quic://broker.example", `unsupported scheme "quic"`},
		{"mqtt://", "no host"},
		{"mqtt://:1883", "no host"},
		{"mqtts:broker.example", "no host"},
		{"mqtt://broker.example:port", "cannot parse"},
		{"mqtt://user:hunter2@broker.example:x", "cannot parse"},
		{"ws://user:hunter2@broker.example/mqtt", `no transport for scheme "ws": import github.com/b4e21b16/mqtt/websocket (or register a Transport)`},
		{"WSS://user:hunter2@broker.example/mqtt?token=hunter2", `no transport for scheme "wss": import github.com/b4e21b16/mqtt/websocket`},
		{"unix://relative/path", "want unix:///path/to/socket"},
		{"unix://", "want unix:///path/to/socket"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			c, err := mqtt.Connect(testContext(t), mqtt.Config{Servers: []string{tc.url},
				Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
					t.Errorf("dialed %s %s", network, addr)
					return nil, errors.New("must not dial")
				}})
			if err == nil {
				c.Close()
				t.Fatal("Connect succeeded")
			}
			ae, ok := errors.AsType[*mqtt.ArgumentError](err)
			if !ok || ae.What != "server URL" {
				t.Fatalf("Connect error %v (%T), want an *ArgumentError for the server URL", err, err)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.why) || strings.Contains(msg, "hunter2") {
				t.Errorf("Connect error %q: want it to say %q and hide the password", msg, tc.why)
			}
		})
	}
}

// TestTransportConnectTimeout checks that ConnectTimeout bounds the TLS
// handshake and the CONNECT/CONNACK exchange with a server that accepts the
// connection and never answers.
func TestTransportConnectTimeout(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // held open, never answered
		}
	})
	for _, scheme := range []string{"mqtt", "mqtts"} {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			const timeout = 300 * time.Millisecond
			start := time.Now()
			c, err := mqtt.Connect(testContext(t), mqtt.Config{Servers: []string{scheme + "://" + ln.Addr().String()},
				ConnectTimeout: timeout, Version: mqtt.Version311})
			if err == nil {
				c.Close()
				t.Fatal("Connect succeeded")
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Connect error %v, want one wrapping context.DeadlineExceeded", err)
			}
			if d := time.Since(start); d < timeout || d > timeout+5*time.Second {
				t.Errorf("Connect returned after %v, want about %v", d, timeout)
			}
		})
	}
}

// tcpTransport is a Transport that connects every URL to one TCP address
// through the client's dialer, and records what it was given.
type tcpTransport struct {
	addr string

	mu    sync.Mutex
	calls []transportCall
}

// transportCall is what one Dial of a Transport was given.
type transportCall struct {
	URL        string
	ServerName string
	RootCAs    bool // the config carries the caller's root certificates
}

func (tt *tcpTransport) Dial(ctx context.Context, server *url.URL, dial mqtt.Dialer, tlsConfig *tls.Config) (net.Conn, error) {
	tt.mu.Lock()
	tt.calls = append(tt.calls, transportCall{URL: server.String(), ServerName: tlsConfig.ServerName, RootCAs: tlsConfig.RootCAs != nil})
	tt.mu.Unlock()
	// The URL is the caller's copy.
	server.Host, server.RawQuery = "changed.example", "changed"
	return dial(ctx, "tcp", tt.addr)
}

func (tt *tcpTransport) recorded() []transportCall {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return append([]transportCall(nil), tt.calls...)
}

// TestTransportCustom connects through a Transport set in Config.Transports
// and checks what it is given: the URL as configured (user info, path,
// query, fragment), the client's dialer, and a TLS configuration for the
// URL's host that leaves the caller's unmodified.
func TestTransportCustom(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	const server = "custom://alice:pw@broker.example:4711/mqtt?token=t&x=1#f"
	for _, tc := range []struct {
		name   string
		config *tls.Config
		want   transportCall
	}{
		{"no TLS config", nil, transportCall{URL: server, ServerName: "broker.example"}},
		{"caller's TLS config", &tls.Config{RootCAs: x509.NewCertPool()},
			transportCall{URL: server, ServerName: "broker.example", RootCAs: true}},
		{"caller's server name", &tls.Config{ServerName: "other.example"},
			transportCall{URL: server, ServerName: "other.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tt := &tcpTransport{addr: b.Addr()}
			var (
				mu    sync.Mutex
				dials []string
			)
			var serverName string
			if tc.config != nil {
				serverName = tc.config.ServerName
			}
			c := connect(t, mqtt.Config{
				Servers:    []string{server},
				ClientID:   uniqueID(t),
				TLSConfig:  tc.config,
				Transports: map[string]mqtt.Transport{"custom": tt},
				Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
					mu.Lock()
					dials = append(dials, network+" "+addr)
					mu.Unlock()
					var d net.Dialer
					return d.DialContext(ctx, network, addr)
				},
			})
			if _, err := c.Ping(testContext(t)); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			if diff := cmp.Diff([]transportCall{tc.want}, tt.recorded()); diff != "" {
				t.Errorf("Transport.Dial calls (-want +got):\n%s", diff)
			}
			mu.Lock()
			defer mu.Unlock()
			if diff := cmp.Diff([]string{"tcp " + b.Addr()}, dials); diff != "" {
				t.Errorf("dialer calls (-want +got):\n%s", diff)
			}
			if tc.config != nil && tc.config.ServerName != serverName {
				t.Errorf("the caller's tls.Config was modified: ServerName %q", tc.config.ServerName)
			}
		})
	}
}

// TestTransportRegistered checks that RegisterTransport serves its scheme
// in every client, that a later registration replaces an earlier one, and
// that Config.Transports wins over the registration.
func TestTransportRegistered(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	const scheme = "test-registered"
	first, second, own := &tcpTransport{addr: b.Addr()}, &tcpTransport{addr: b.Addr()}, &tcpTransport{addr: b.Addr()}
	mqtt.RegisterTransport(scheme, first)
	mqtt.RegisterTransport("Test-Registered", second)
	c := connect(t, mqtt.Config{Servers: []string{scheme + "://broker.example"}, ClientID: uniqueID(t)})
	c.Close()
	c = connect(t, mqtt.Config{Servers: []string{scheme + "://broker.example"}, ClientID: uniqueID(t),
		Transports: map[string]mqtt.Transport{scheme: own}})
	c.Close()
	for _, tc := range []struct {
		name  string
		tt    *tcpTransport
		calls int
	}{{"replaced registration", first, 0}, {"registration", second, 1}, {"Config.Transports", own, 1}} {
		if n := len(tc.tt.recorded()); n != tc.calls {
			t.Errorf("%s: dialed %d times, want %d", tc.name, n, tc.calls)
		}
	}
}

// TestRegisterTransportRefuses checks that RegisterTransport panics for the
// schemes the client handles itself, for what is not a URL scheme and for
// a nil Transport, and that Config.Transports refuses the same with an
// *ArgumentError.
func TestRegisterTransportRefuses(t *testing.T) {
	t.Parallel()
	tt := &tcpTransport{}
	for _, tc := range []struct {
		scheme string
		t      mqtt.Transport
		why    string
	}{
		{"mqtt", tt, `the client handles scheme "mqtt" itself`},
		{"tls", tt, `the client handles scheme "tls" itself`},
		{"unix", tt, `the client handles scheme "unix" itself`},
		{"1ws", tt, `"1ws" is not a lowercase URL scheme`},
		{"", tt, `"" is not a lowercase URL scheme`},
		{"w s", tt, `"w s" is not a lowercase URL scheme`},
		{"test-nil", nil, "nil Transport"},
	} {
		t.Run("RegisterTransport "+tc.scheme, func(t *testing.T) {
			t.Parallel()
			defer func() {
				r := recover()
				if r == nil {
					t.Fatal("RegisterTransport did not panic")
				}
				if msg := fmtPanic(r); !strings.Contains(msg, tc.why) {
					t.Errorf("panic %q does not say %q", msg, tc.why)
				}
			}()
			mqtt.RegisterTransport(tc.scheme, tc.t)
		})
	}
	for _, tc := range []struct {
		scheme string
		t      mqtt.Transport
		why    string
	}{
		{"mqtts", tt, `the client handles scheme "mqtts" itself`},
		{"WS", tt, `"WS" is not a lowercase URL scheme`},
		{"ws", nil, "nil Transport"},
	} {
		t.Run("Config.Transports "+tc.scheme, func(t *testing.T) {
			t.Parallel()
			_, err := mqtt.Connect(testContext(t), mqtt.Config{Servers: []string{"mqtt://127.0.0.1:1"},
				Transports: map[string]mqtt.Transport{tc.scheme: tc.t}})
			ae, ok := errors.AsType[*mqtt.ArgumentError](err)
			if !ok || ae.What != "Transports scheme" || !strings.Contains(err.Error(), tc.why) {
				t.Errorf("Connect error %v, want an *ArgumentError for the Transports scheme saying %q", err, tc.why)
			}
		})
	}
}

func fmtPanic(r any) string {
	if err, ok := r.(error); ok {
		return err.Error()
	}
	s, _ := r.(string)
	return s
}

// failingTransport is a Transport whose Dial fails with err, or waits for
// its context to end when err is nil.
type failingTransport struct{ err error }

func (ft failingTransport) Dial(ctx context.Context, _ *url.URL, _ mqtt.Dialer, _ *tls.Config) (net.Conn, error) {
	if ft.err != nil {
		return nil, ft.err
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestTransportDialFails checks that a Transport's error reaches the caller
// wrapped, naming the server without its secrets, and that ConnectTimeout
// bounds a Transport that does not return.
func TestTransportDialFails(t *testing.T) {
	t.Parallel()
	t.Run("error", func(t *testing.T) {
		t.Parallel()
		errRefused := errors.New("refused by the transport")
		_, err := mqtt.Connect(testContext(t), mqtt.Config{
			Servers:    []string{"custom://alice:hunter2@broker.example/mqtt?token=hunter2"},
			Transports: map[string]mqtt.Transport{"custom": failingTransport{errRefused}},
		})
		if !errors.Is(err, errRefused) {
			t.Fatalf("Connect error %v, want the transport's", err)
		}
		want := "mqtt: dial custom://alice:xxxxx@broker.example/mqtt?token=xxxxx: refused by the transport"
		if err.Error() != want {
			t.Errorf("Connect error %q, want %q", err, want)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		const timeout = 100 * time.Millisecond
		start := time.Now()
		_, err := mqtt.Connect(testContext(t), mqtt.Config{
			Servers:        []string{"custom://broker.example"},
			Transports:     map[string]mqtt.Transport{"custom": failingTransport{}},
			ConnectTimeout: timeout,
		})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Connect error %v, want one wrapping context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d < timeout || d > timeout+5*time.Second {
			t.Errorf("Connect returned after %v, want about %v", d, timeout)
		}
	})
}
