package brokertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a certificate authority made up at run time, with certificates it
// signed for brokers and clients. Every certificate and key is written as a
// PEM file into Dir for mosquitto, and loaded for Go clients.
type PKI struct {
	// Dir holds the PEM files; it is removed when the test ends.
	Dir string
	// CA is the authority's certificate; CAFile holds it in PEM, and
	// CertPool holds it for tls.Config.RootCAs and ClientCAs.
	CA       *x509.Certificate
	CAFile   string
	CertPool *x509.CertPool

	// Server is valid for 127.0.0.1, ::1 and localhost.
	Server KeyPair
	// Expired is like Server but stopped being valid an hour ago.
	Expired KeyPair
	// WrongHost is valid, but only for the host name wrong.example.
	WrongHost KeyPair
	// Client is a client certificate (extended key usage client auth).
	Client KeyPair

	caKey *ecdsa.PrivateKey
}

// KeyPair is a certificate with its private key.
type KeyPair struct {
	// CertFile and KeyFile are the PEM files of the certificate and key.
	CertFile, KeyFile string
	// Certificate is the pair loaded for tls.Config.Certificates.
	Certificate tls.Certificate
}

// NewPKI creates a certificate authority and the certificates of PKI in a
// temporary directory of tb. Failures are fatal to the test.
func NewPKI(tb testing.TB) *PKI {
	tb.Helper()
	p := &PKI{Dir: tb.TempDir()}
	now := time.Now()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("brokertest: %v", err)
	}
	ca := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: "brokertest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	p.caKey = key
	p.CA = p.write(tb, "ca", ca, ca, key).Certificate.Leaf
	p.CAFile = filepath.Join(p.Dir, "ca.pem")
	p.CertPool = x509.NewCertPool()
	p.CertPool.AddCert(p.CA)

	server := func(cn string, notAfter time.Time, dns []string, ips []net.IP) *x509.Certificate {
		return &x509.Certificate{
			Subject:     pkix.Name{CommonName: cn},
			NotBefore:   now.Add(-2 * time.Hour),
			NotAfter:    notAfter,
			DNSNames:    dns,
			IPAddresses: ips,
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
	}
	loopback := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	p.Server = p.Issue(tb, "server", server("localhost", now.Add(24*time.Hour), []string{"localhost"}, loopback))
	p.Expired = p.Issue(tb, "expired", server("localhost", now.Add(-time.Hour), []string{"localhost"}, loopback))
	p.WrongHost = p.Issue(tb, "wronghost", server("wrong.example", now.Add(24*time.Hour), []string{"wrong.example"}, nil))
	p.Client = p.Issue(tb, "client", &x509.Certificate{
		Subject:     pkix.Name{CommonName: "brokertest client"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return p
}

// Issue signs a certificate made from tmpl with a new key and writes it to
// Dir as base.pem and base.key. A zero serial number is replaced by a
// random one.
func (p *PKI) Issue(tb testing.TB, base string, tmpl *x509.Certificate) KeyPair {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("brokertest: %v", err)
	}
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = serial(tb)
	}
	return p.write(tb, base, tmpl, p.CA, key)
}

// TLS returns broker options for a TLS listener that serves kp and, with
// requireClientCert, accepts only clients with a certificate from this CA.
func (p *PKI) TLS(kp KeyPair, requireClientCert bool) *TLS {
	return &TLS{CertFile: kp.CertFile, KeyFile: kp.KeyFile, CAFile: p.CAFile, RequireClientCert: requireClientCert}
}

func (p *PKI) write(tb testing.TB, base string, tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey) KeyPair {
	tb.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, p.caKey)
	if err != nil {
		tb.Fatalf("brokertest: creating certificate %s: %v", base, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatalf("brokertest: %v", err)
	}
	kp := KeyPair{CertFile: filepath.Join(p.Dir, base+".pem"), KeyFile: filepath.Join(p.Dir, base+".key")}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(kp.CertFile, certPEM, 0o644); err != nil {
		tb.Fatalf("brokertest: %v", err)
	}
	if err := os.WriteFile(kp.KeyFile, keyPEM, 0o600); err != nil {
		tb.Fatalf("brokertest: %v", err)
	}
	if kp.Certificate, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		tb.Fatalf("brokertest: loading %s: %v", base, err)
	}
	return kp
}

func serial(tb testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		tb.Fatalf("brokertest: %v", err)
	}
	return n
}
