package main

import (
	"bytes"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"github.com/b4e21b16/mqtt/internal/brokertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestTLS runs the example against mosquitto with a TLS listener whose
// certificate comes from a private CA and which requires client
// certificates from that CA.
func TestTLS(t *testing.T) {
	t.Parallel()
	pki := brokertest.NewPKI(t)
	b := brokertest.Start(t, brokertest.Options{TLS: pki.TLS(pki.Server, true)})
	if !strings.HasPrefix(b.TLSURL(), "mqtts://") {
		t.Fatalf("TLS URL %q", b.TLSURL())
	}

	t.Run("client certificate", func(t *testing.T) {
		t.Parallel()
		var out bytes.Buffer
		err := run(t.Context(), []string{"-server", b.TLSURL(), "-cafile", pki.CAFile,
			"-cert", pki.Client.CertFile, "-key", pki.Client.KeyFile, "-topic", "tls/test", "-message", "secret"}, &out)
		if err != nil {
			t.Fatalf("run: %v\n%s", err, &out)
		}
		if !strings.Contains(out.String(), "received tls/test: secret\n") {
			t.Fatalf("output lacks the received message:\n%s", &out)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		t.Parallel()
		err := run(t.Context(), []string{"-server", b.TLSURL(), "-cafile", pki.CAFile}, new(bytes.Buffer))
		if err == nil {
			t.Fatal("connected without the client certificate the broker requires")
		}
	})
	t.Run("unknown authority", func(t *testing.T) {
		t.Parallel()
		// Without -cafile the system's roots cannot verify the broker.
		err := run(t.Context(), []string{"-server", b.TLSURL(),
			"-cert", pki.Client.CertFile, "-key", pki.Client.KeyFile}, new(bytes.Buffer))
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Fatalf("error %v, want an unknown authority", err)
		}
	})
}

func TestTLSFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-cert", "client.pem"},
		{"-cafile", "/nonexistent/ca.pem"},
		{"extra"},
	} {
		if err := run(t.Context(), args, new(bytes.Buffer)); err == nil {
			t.Errorf("run %q succeeded", args)
		}
	}
}
