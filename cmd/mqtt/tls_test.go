package main

import (
	"testing"

	"github.com/b4e21b16/mqtt/internal/brokertest"
)

// TestTLS publishes and subscribes over TLS with the test's own certificate
// authority (--cafile), with a client certificate (--cert, --key) where the
// broker requires one, and checks the message for each certificate
// problem.
func TestTLS(t *testing.T) {
	t.Parallel()
	pki := brokertest.NewPKI(t)
	plain := startBroker(t, brokertest.Options{TLS: pki.TLS(pki.Server, false)})
	mutual := startBroker(t, brokertest.Options{TLS: pki.TLS(pki.Server, true)})
	expired := startBroker(t, brokertest.Options{TLS: pki.TLS(pki.Expired, false)})
	wrongHost := startBroker(t, brokertest.Options{TLS: pki.TLS(pki.WrongHost, false)})
	ca := []string{"--cafile", pki.CAFile}
	clientCert := []string{"--cert", pki.Client.CertFile, "--key", pki.Client.KeyFile}

	t.Run("pub sub", func(t *testing.T) {
		t.Parallel()
		host, port := hostPort(t, plain.TLSAddr())
		sub := start(t, append([]string{"sub", "-h", host, "-p", port, "-t", "cli/tls", "-q", "1", "-C", "2", "-d"}, ca...)...)
		sub.stderr.waitFor(t, "subscribed to cli/tls", sub.done)
		for _, args := range [][]string{
			append([]string{"pub", "-h", host, "-p", port, "-t", "cli/tls", "-m", "over TLS", "-q", "1"}, ca...),
			append([]string{"pub", "--server", plain.TLSURL(), "-t", "cli/tls", "-m", "via --server", "-q", "2"}, ca...),
		} {
			if r := cli(t, "", args...); r.code != exitOK {
				t.Fatalf("pub: exit status %d; stderr:\n%s", r.code, r.stderr)
			}
		}
		if code := sub.wait(t); code != exitOK {
			t.Fatalf("sub: exit status %d; stderr:\n%s", code, sub.stderr)
		}
		if got, want := sub.stdout.String(), "over TLS\nvia --server\n"; got != want {
			t.Errorf("sub printed %q, want %q", got, want)
		}
	})
	t.Run("client certificate", func(t *testing.T) {
		t.Parallel()
		host, port := hostPort(t, mutual.TLSAddr())
		args := append([]string{"pub", "-h", host, "-p", port, "-t", "cli/tls", "-m", "x", "-q", "1"}, ca...)
		if r := cli(t, "", append(args, clientCert...)...); r.code != exitOK {
			t.Fatalf("pub with a client certificate: exit status %d; stderr:\n%s", r.code, r.stderr)
		}
		wantFailure(t, cli(t, "", args...), exitFailure, "the broker requires a client certificate; give one with --cert and --key")
	})
	t.Run("unknown authority", func(t *testing.T) {
		t.Parallel()
		wantFailure(t, cli(t, "", "pub", "--server", plain.TLSURL(), "-t", "a", "-m", "x"), exitFailure,
			"TLS with "+plain.TLSAddr()+" failed", "signed by an authority this machine does not trust", "--cafile")
	})
	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		wantFailure(t, cli(t, "", append([]string{"pub", "--server", expired.TLSURL(), "-t", "a", "-m", "x"}, ca...)...), exitFailure,
			"the broker's certificate is expired or not yet valid")
	})
	t.Run("wrong host", func(t *testing.T) {
		t.Parallel()
		wantFailure(t, cli(t, "", append([]string{"pub", "--server", wrongHost.TLSURL(), "-t", "a", "-m", "x"}, ca...)...), exitFailure,
			"wrong.example", "connect with a host name the certificate is valid for")
		// --insecure skips the verification.
		if r := cli(t, "", "pub", "--server", wrongHost.TLSURL(), "-t", "a", "-m", "x", "--insecure"); r.code != exitOK {
			t.Errorf("--insecure: exit status %d; stderr:\n%s", r.code, r.stderr)
		}
	})
	t.Run("not a TLS port", func(t *testing.T) {
		t.Parallel()
		host, port := hostPort(t, plain.Addr())
		wantFailure(t, cli(t, "", append([]string{"pub", "-h", host, "-p", port, "-t", "a", "-m", "x"}, ca...)...), exitFailure,
			"is this a TLS port?")
	})
}
