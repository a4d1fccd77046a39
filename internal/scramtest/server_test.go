package scramtest

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The exchange of RFC 7677 section 3: user "user", password "pencil".
const (
	rfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
	rfcServerPart  = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	rfcSalt        = "W22ZaJ0SNY7soEsUEjb6gQ=="
	rfcServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	rfcClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	rfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

// rfcServer returns a server set up to replay the RFC 7677 exchange.
func rfcServer(t *testing.T, password string) *Server {
	t.Helper()
	salt, err := base64.StdEncoding.DecodeString(rfcSalt)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer("user", []byte(password), 4096)
	s.Salt = salt
	s.NonceSuffix = rfcServerPart
	return s
}

func TestSCRAMServerRFC7677Exchange(t *testing.T) {
	t.Parallel()
	s := rfcServer(t, "pencil")
	if s.Method() != "SCRAM-SHA-256" {
		t.Errorf("Method() = %q", s.Method())
	}
	first, err := s.First([]byte(rfcClientFirst))
	if err != nil {
		t.Fatalf("First: %v", err)
	}
	if string(first) != rfcServerFirst {
		t.Errorf("server-first-message\n got %s\nwant %s", first, rfcServerFirst)
	}
	final, err := s.Final([]byte(rfcClientFinal))
	if err != nil {
		t.Fatalf("Final: %v", err)
	}
	if string(final) != rfcServerFinal {
		t.Errorf("server-final-message\n got %s\nwant %s", final, rfcServerFinal)
	}
}

// The SHA-512 example of github.com/xdg-go/scram's test data
// (testdata/good/sha-512-ascii.json): user "user", password "pencil",
// 10000 iterations.
const (
	sha512ClientFirst = "n,,n=user,r=/uAp+YhRXyuq+1zS3YWsUsZHpxLfGkcQ"
	sha512ServerPart  = "4FHzBxBhPzykjGStpoxdfs4Nyp1mtC9B"
	sha512ServerFirst = "r=/uAp+YhRXyuq+1zS3YWsUsZHpxLfGkcQ4FHzBxBhPzykjGStpoxdfs4Nyp1mtC9B,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=10000"
	sha512ClientFinal = "c=biws,r=/uAp+YhRXyuq+1zS3YWsUsZHpxLfGkcQ4FHzBxBhPzykjGStpoxdfs4Nyp1mtC9B,p=E2tqtuwJz5ShFuck1/KeqZKCmGZe/Lxjyr6fTZio21wZtlpgyeYLNxxQXrLuK/FfMSCanyDRmI1q5KL1Tj54nQ=="
	sha512ServerFinal = "v=qKOkLNGdt0VrlVkoL3kXjhWmI4SjEfqw8ogXgikzbPOMh6gloo8Mrboq/q3cz0/7hIvcQ1N9VL4m7iiSTTyolQ=="
)

func TestSCRAMServerSHA512Exchange(t *testing.T) {
	t.Parallel()
	salt, err := base64.StdEncoding.DecodeString(rfcSalt)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		password, want string
		err            error
	}{{"pencil", sha512ServerFinal, nil}, {"pencils", "e=invalid-proof", ErrInvalidProof}} {
		s := NewServerSHA512("user", []byte(tc.password), 10000)
		s.Salt = salt
		s.NonceSuffix = sha512ServerPart
		if s.Method() != "SCRAM-SHA-512" {
			t.Errorf("Method() = %q", s.Method())
		}
		first, err := s.First([]byte(sha512ClientFirst))
		if err != nil {
			t.Fatalf("First: %v", err)
		}
		if string(first) != sha512ServerFirst {
			t.Errorf("server-first-message\n got %s\nwant %s", first, sha512ServerFirst)
		}
		final, err := s.Final([]byte(sha512ClientFinal))
		if !errors.Is(err, tc.err) || string(final) != tc.want {
			t.Errorf("password %q: Final = %q, %v; want %q, %v", tc.password, final, err, tc.want, tc.err)
		}
	}
}

func TestSCRAMServerWrongPasswordRejected(t *testing.T) {
	t.Parallel()
	s := rfcServer(t, "pencils")
	if _, err := s.First([]byte(rfcClientFirst)); err != nil {
		t.Fatalf("First: %v", err)
	}
	final, err := s.Final([]byte(rfcClientFinal))
	if !errors.Is(err, ErrInvalidProof) {
		t.Fatalf("Final error = %v, want ErrInvalidProof", err)
	}
	if string(final) != "e=invalid-proof" {
		t.Errorf("Final = %q, want e=invalid-proof", final)
	}
}

func TestSCRAMServerTamperedProofRejected(t *testing.T) {
	t.Parallel()
	s := rfcServer(t, "pencil")
	if _, err := s.First([]byte(rfcClientFirst)); err != nil {
		t.Fatalf("First: %v", err)
	}
	tampered := strings.Replace(rfcClientFinal, "p=d", "p=e", 1)
	if _, err := s.Final([]byte(tampered)); !errors.Is(err, ErrInvalidProof) {
		t.Fatalf("Final error = %v, want ErrInvalidProof", err)
	}
}

func TestSCRAMServerKnobs(t *testing.T) {
	t.Parallel()

	t.Run("BadSignature", func(t *testing.T) {
		t.Parallel()
		s := rfcServer(t, "pencil")
		s.BadSignature = true
		if _, err := s.First([]byte(rfcClientFirst)); err != nil {
			t.Fatal(err)
		}
		final, err := s.Final([]byte(rfcClientFinal))
		if err != nil {
			t.Fatal(err)
		}
		if string(final) == rfcServerFinal || !strings.HasPrefix(string(final), "v=") {
			t.Errorf("Final = %q, want a different v=", final)
		}
	})
	t.Run("WrongNonce", func(t *testing.T) {
		t.Parallel()
		s := rfcServer(t, "pencil")
		s.WrongNonce = true
		first, err := s.First([]byte(rfcClientFirst))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(string(first), "r=rOprNGfwEbeRWgbNEkqO") {
			t.Errorf("First = %q, want a nonce not starting with the client's", first)
		}
	})
	t.Run("FinalError", func(t *testing.T) {
		t.Parallel()
		s := rfcServer(t, "pencil")
		s.FinalError = "other-error"
		if _, err := s.First([]byte(rfcClientFirst)); err != nil {
			t.Fatal(err)
		}
		final, err := s.Final([]byte(rfcClientFinal))
		if err != nil || string(final) != "e=other-error" {
			t.Errorf("Final = %q, %v; want e=other-error", final, err)
		}
	})
	t.Run("Iterations", func(t *testing.T) {
		t.Parallel()
		s := NewServer("user", []byte("pencil"), 1000)
		first, err := s.First([]byte(rfcClientFirst))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(string(first), ",i=1000") {
			t.Errorf("First = %q, want i=1000", first)
		}
	})
	t.Run("RandomNonceAndSalt", func(t *testing.T) {
		t.Parallel()
		a := NewServer("user", nil, 4096)
		b := NewServer("user", nil, 4096)
		fa, err := a.First([]byte(rfcClientFirst))
		if err != nil {
			t.Fatal(err)
		}
		fb, err := b.First([]byte(rfcClientFirst))
		if err != nil {
			t.Fatal(err)
		}
		if string(fa) == string(fb) {
			t.Errorf("two servers answered alike: %q", fa)
		}
	})
}

func TestSCRAMServerFinalNeedsFirst(t *testing.T) {
	t.Parallel()
	s := rfcServer(t, "pencil")
	if _, err := s.Final([]byte(rfcClientFinal)); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("Final before First: %v, want ErrOutOfOrder", err)
	}
	if _, err := s.First([]byte(rfcClientFirst)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Final([]byte(rfcClientFinal)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Final([]byte(rfcClientFinal)); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("second Final: %v, want ErrOutOfOrder", err)
	}
}

func TestSCRAMServerEscapedUsername(t *testing.T) {
	t.Parallel()
	s := NewServer("a,b=c", []byte("pw"), 4096)
	if _, err := s.First([]byte("n,,n=a=2Cb=3Dc,r=abc")); err != nil {
		t.Fatalf("escaped name refused: %v", err)
	}
	if _, err := s.First([]byte("n,,n=a,b=c,r=abc")); err == nil {
		t.Fatal("unescaped name accepted")
	}
	if _, err := s.First([]byte("n,,n=a=2Cb=3Xc,r=abc")); err == nil {
		t.Fatal("bad escape accepted")
	}
}

func TestSCRAMServerMalformedClientMessages(t *testing.T) {
	t.Parallel()
	for _, msg := range []string{
		"",
		"n",
		"n,",
		"x,,n=user,r=abc",
		"p=tls-unique,,n=user,r=abc",
		"n,b,n=user,r=abc",
		"n,,m=ext,n=user,r=abc",
		"n,,n=user",
		"n,,r=abc,n=user",
		"n,,n=user,r=",
		"n,,n=user,r=a\x01b",
		"n,,n=other,r=abc",
	} {
		s := rfcServer(t, "pencil")
		if first, err := s.First([]byte(msg)); err == nil {
			t.Errorf("First(%q) = %q, want an error", msg, first)
		}
	}
	for _, msg := range []string{
		"",
		"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
		"c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=!!!!,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=***",
		"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzb",
	} {
		s := rfcServer(t, "pencil")
		if _, err := s.First([]byte(rfcClientFirst)); err != nil {
			t.Fatal(err)
		}
		if final, err := s.Final([]byte(msg)); err == nil {
			t.Errorf("Final(%q) = %q, want an error", msg, final)
		}
	}
}
