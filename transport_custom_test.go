package mqtt_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/google/go-cmp/cmp"
)

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
