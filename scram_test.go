package mqtt

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/b4e21b16/mqtt/internal/scramtest"
)

// The exchange of RFC 7677 section 3: user "user", password "pencil".
const (
	scramRFCNonce       = "rOprNGfwEbeRWgbNEkqO"
	scramRFCClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
	scramRFCServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	scramRFCClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	scramRFCServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

// fixedNonce returns a nonce source that always gives n.
func fixedNonce(n string) func() (string, error) {
	return func() (string, error) { return n, nil }
}

// scramRFCClient returns the RFC 7677 client, started.
func scramRFCClient(t testing.TB) *scramClient {
	t.Helper()
	c := newSCRAM("user", []byte("pencil"), fixedNonce(scramRFCNonce))
	first, err := c.Start(context.Background())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if string(first) != scramRFCClientFirst {
		t.Fatalf("client-first-message\n got %s\nwant %s", first, scramRFCClientFirst)
	}
	return c
}

// wantAuthError fails t unless err is an *AuthError of the SCRAM method
// wrapping ErrAuthFailed, and returns it.
func wantAuthError(t *testing.T, what string, err error) *AuthError {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	if !errors.Is(err, ErrAuthFailed) {
		t.Errorf("%s: %v does not wrap ErrAuthFailed", what, err)
	}
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("%s: %T %v is not an *AuthError", what, err, err)
	}
	if ae.Method != "SCRAM-SHA-256" {
		t.Errorf("%s: Method = %q", what, ae.Method)
	}
	return ae
}

func TestSCRAMRFC7677Vector(t *testing.T) {
	t.Parallel()
	c := scramRFCClient(t)
	ctx := context.Background()
	final, err := c.Continue(ctx, []byte(scramRFCServerFirst))
	if err != nil {
		t.Fatalf("Continue: %v", err)
	}
	if string(final) != scramRFCClientFinal {
		t.Fatalf("client-final-message\n got %s\nwant %s", final, scramRFCClientFinal)
	}
	if err := c.Finish(ctx, []byte(scramRFCServerFinal)); err != nil {
		t.Fatalf("Finish with the RFC's server signature: %v", err)
	}
}

func TestSCRAMRFC7677WrongServerSignature(t *testing.T) {
	t.Parallel()
	sig, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(scramRFCServerFinal, "v="))
	if err != nil {
		t.Fatal(err)
	}
	for i := range sig {
		wrong := append([]byte(nil), sig...)
		wrong[i] ^= 0x80
		c := scramRFCClient(t)
		if _, err := c.Continue(context.Background(), []byte(scramRFCServerFirst)); err != nil {
			t.Fatalf("Continue: %v", err)
		}
		err := c.Finish(context.Background(), []byte("v="+base64.StdEncoding.EncodeToString(wrong)))
		ae := wantAuthError(t, "Finish with a changed signature", err)
		if !strings.Contains(ae.Reason, "signature") {
			t.Errorf("byte %d: Reason = %q, want it to name the signature", i, ae.Reason)
		}
	}
}

func TestSCRAMMethod(t *testing.T) {
	t.Parallel()
	if m := NewSCRAMSHA256("u", []byte("p")).Method(); m != "SCRAM-SHA-256" {
		t.Fatalf("Method() = %q", m)
	}
}

// scramExchange runs one exchange of c against s and returns the error
// of the first step that failed, named by step.
func scramExchange(c Authenticator, s *scramtest.Server) (step string, err error) {
	ctx := context.Background()
	first, err := c.Start(ctx)
	if err != nil {
		return "client start", err
	}
	sfirst, err := s.First(first)
	if err != nil {
		return "server first", err
	}
	final, err := c.Continue(ctx, sfirst)
	if err != nil {
		return "client continue", err
	}
	sfinal, err := s.Final(final)
	if err != nil {
		return "server final", err
	}
	if err := c.Finish(ctx, sfinal); err != nil {
		return "client finish", err
	}
	return "", nil
}

func TestSCRAMRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		password string // the server's; the client's is "correct horse"
		iter     int
		setup    func(*scramtest.Server)
		wantStep string // "" for success
	}{
		{name: "Success", password: "correct horse", iter: 4096},
		{name: "MoreIterations", password: "correct horse", iter: 10000},
		{name: "WrongPassword", password: "correct horse!", iter: 4096, wantStep: "server final"},
		{name: "BadServerSignature", password: "correct horse", iter: 4096, wantStep: "client finish",
			setup: func(s *scramtest.Server) { s.BadSignature = true }},
		{name: "NoncePrefixMismatch", password: "correct horse", iter: 4096, wantStep: "client continue",
			setup: func(s *scramtest.Server) { s.WrongNonce = true }},
		{name: "LowIterations", password: "correct horse", iter: SCRAMMinIterations - 1, wantStep: "client continue"},
		{name: "TooManyIterations", password: "correct horse", iter: SCRAMMaxIterations + 1, wantStep: "client continue"},
		{name: "ZeroIterations", password: "correct horse", iter: 0, wantStep: "client continue"},
		{name: "ServerError", password: "correct horse", iter: 4096, wantStep: "client finish",
			setup: func(s *scramtest.Server) { s.FinalError = "other-error" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := scramtest.NewServer("alice", []byte(tc.password), tc.iter)
			if tc.setup != nil {
				tc.setup(s)
			}
			step, err := scramExchange(NewSCRAMSHA256("alice", []byte("correct horse")), s)
			if step != tc.wantStep {
				t.Fatalf("exchange failed at %q (%v), want %q", step, err, tc.wantStep)
			}
			if strings.HasPrefix(step, "client") {
				wantAuthError(t, step, err)
			}
		})
	}
}

func TestSCRAMServerRejectsWrongPassword(t *testing.T) {
	t.Parallel()
	s := scramtest.NewServer("alice", []byte("right"), 4096)
	c := NewSCRAMSHA256("alice", []byte("wrong"))
	ctx := context.Background()
	first, err := c.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sfirst, err := s.First(first)
	if err != nil {
		t.Fatal(err)
	}
	final, err := c.Continue(ctx, sfirst)
	if err != nil {
		t.Fatal(err)
	}
	sfinal, err := s.Final(final)
	if !errors.Is(err, scramtest.ErrInvalidProof) {
		t.Fatalf("server Final: %v, want ErrInvalidProof", err)
	}
	ae := wantAuthError(t, "Finish with the server's e=", c.Finish(ctx, sfinal))
	if ae.Server != "invalid-proof" {
		t.Errorf("Server = %q, want invalid-proof", ae.Server)
	}
	if !strings.Contains(ae.Error(), `"invalid-proof"`) {
		t.Errorf("Error() = %q does not show the server's error", ae.Error())
	}
}

func TestSCRAMServerErrorSurfaced(t *testing.T) {
	t.Parallel()
	for _, final := range []string{"e=unknown-user", "e=other-error,x=ext", "e=channel-bindings-dont-match"} {
		c := scramRFCClient(t)
		if _, err := c.Continue(context.Background(), []byte(scramRFCServerFirst)); err != nil {
			t.Fatal(err)
		}
		ae := wantAuthError(t, final, c.Finish(context.Background(), []byte(final)))
		want, _, _ := strings.Cut(strings.TrimPrefix(final, "e="), ",")
		if ae.Server != want {
			t.Errorf("%s: Server = %q, want %q", final, ae.Server, want)
		}
	}
}

func TestSCRAMStartResets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := NewSCRAMSHA256("alice", []byte("pw"))
	s := scramtest.NewServer("alice", []byte("pw"), 4096)

	first1, err := c.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sfirst1, err := s.First(first1)
	if err != nil {
		t.Fatal(err)
	}
	first2, err := c.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(first1) == string(first2) {
		t.Fatalf("two Starts sent the same nonce: %s", first1)
	}
	// The answer to the abandoned exchange carries the old nonce.
	_, err = c.Continue(ctx, sfirst1)
	wantAuthError(t, "Continue with the abandoned exchange's challenge", err)

	// The failure ended the exchange; the next ones, as on reconnects,
	// succeed from a fresh Start.
	for i := range 3 {
		if step, err := scramExchange(c, s); err != nil {
			t.Fatalf("exchange %d failed at %s: %v", i, step, err)
		}
	}
	// A failed exchange does not spoil the next.
	s.BadSignature = true
	if step, _ := scramExchange(c, s); step != "client finish" {
		t.Fatalf("bad signature exchange failed at %q, want client finish", step)
	}
	s.BadSignature = false
	if step, err := scramExchange(c, s); err != nil {
		t.Fatalf("exchange after a failure failed at %s: %v", step, err)
	}
}

func TestSCRAMOverlappingExchanges(t *testing.T) {
	t.Parallel()
	c := NewSCRAMSHA256("alice", []byte("pw"))
	const workers, rounds = 2, 5
	errs := make(chan error, workers*rounds)
	var wg sync.WaitGroup
	for range workers {
		s := scramtest.NewServer("alice", []byte("pw"), 4096)
		wg.Go(func() {
			for range rounds {
				step, err := scramExchange(c, s)
				if err != nil && strings.HasPrefix(step, "server") {
					err = errors.Join(errors.New("server refused an overlapping exchange"), err)
				}
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, ErrAuthFailed) {
			t.Errorf("overlapping exchange: %v", err)
		}
	}
	// Once alone again, the exchange succeeds.
	if step, err := scramExchange(c, scramtest.NewServer("alice", []byte("pw"), 4096)); err != nil {
		t.Fatalf("exchange after the overlap failed at %s: %v", step, err)
	}
}

func TestSCRAMOutOfOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	c := newSCRAM("user", []byte("pencil"), fixedNonce(scramRFCNonce))
	_, err := c.Continue(ctx, []byte(scramRFCServerFirst))
	wantAuthError(t, "Continue before Start", err)
	wantAuthError(t, "Finish before Start", c.Finish(ctx, []byte(scramRFCServerFinal)))

	c = scramRFCClient(t)
	wantAuthError(t, "Finish before Continue", c.Finish(ctx, []byte(scramRFCServerFinal)))
	// The failed Finish ended the exchange.
	_, err = c.Continue(ctx, []byte(scramRFCServerFirst))
	wantAuthError(t, "Continue after the exchange ended", err)

	c = scramRFCClient(t)
	if _, err := c.Continue(ctx, []byte(scramRFCServerFirst)); err != nil {
		t.Fatal(err)
	}
	_, err = c.Continue(ctx, []byte(scramRFCServerFirst))
	wantAuthError(t, "second Continue", err)

	c = scramRFCClient(t)
	if _, err := c.Continue(ctx, []byte(scramRFCServerFirst)); err != nil {
		t.Fatal(err)
	}
	wantAuthError(t, "Finish(nil)", c.Finish(ctx, nil))
	wantAuthError(t, "Finish after Finish(nil)", c.Finish(ctx, []byte(scramRFCServerFinal)))

	c = scramRFCClient(t)
	if _, err := c.Continue(ctx, []byte(scramRFCServerFirst)); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(ctx, []byte(scramRFCServerFinal)); err != nil {
		t.Fatal(err)
	}
	wantAuthError(t, "second Finish", c.Finish(ctx, []byte(scramRFCServerFinal)))
}

func TestSCRAMContextDone(t *testing.T) {
	t.Parallel()
	done, cancel := context.WithCancel(context.Background())
	cancel()

	c := newSCRAM("user", []byte("pencil"), fixedNonce(scramRFCNonce))
	_, err := c.Start(done)
	wantAuthError(t, "Start", err)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Start: %v does not wrap context.Canceled", err)
	}

	c = scramRFCClient(t)
	_, err = c.Continue(done, []byte(scramRFCServerFirst))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Continue: %v does not wrap context.Canceled", err)
	}

	c = scramRFCClient(t)
	if _, err := c.Continue(context.Background(), []byte(scramRFCServerFirst)); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(done, []byte(scramRFCServerFinal)); !errors.Is(err, context.Canceled) {
		t.Errorf("Finish: %v does not wrap context.Canceled", err)
	}
}

// scramMalformedServerFirst are server-first-messages the RFC 7677 client
// must refuse.
var scramMalformedServerFirst = []string{
	"",
	",",
	"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
	"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==",
	"s=W22ZaJ0SNY7soEsUEjb6gQ==,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,i=4096",
	"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,i=4096,s=W22ZaJ0SNY7soEsUEjb6gQ==",
	"m=mandatory,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",                               // no server part
	"r=rOprNGfwEbeRWgbNEkq,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",                                // shorter
	"r=XOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", // other prefix
	"r=rOprNGfwEbeRWgbNEkqO%hv YD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	"r=rOprNGfwEbeRWgbNEkqO%hv\x00YD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	"r=rOprNGfwEbeRWgbNEkqO%hv\xffYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=,i=4096",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ,i=4096",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ=!,i=4096",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=abc",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-4096",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=+4096",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=04096",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999999999999",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,noequals",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,1=digit",
	"e=other-error",
}

func TestSCRAMMalformedServerFirst(t *testing.T) {
	t.Parallel()
	for _, msg := range scramMalformedServerFirst {
		c := scramRFCClient(t)
		final, err := c.Continue(context.Background(), []byte(msg))
		if err == nil {
			t.Errorf("Continue(%q) = %q, want an error", msg, final)
			continue
		}
		wantAuthError(t, "Continue", err)
		if strings.HasPrefix(msg, "m=") && !strings.Contains(err.Error(), "mandatory extension") {
			t.Errorf("Continue(%q): %v, want it to name the mandatory extension", msg, err)
		}
	}
}

func TestSCRAMServerFirstExtensionIgnored(t *testing.T) {
	t.Parallel()
	c := scramRFCClient(t)
	final, err := c.Continue(context.Background(), []byte(scramRFCServerFirst+",x=optional"))
	if err != nil {
		t.Fatalf("Continue with an optional extension: %v", err)
	}
	// The extension is part of the AuthMessage, so the proof differs.
	if !strings.HasPrefix(string(final), "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=") ||
		string(final) == scramRFCClientFinal {
		t.Fatalf("client-final-message = %s", final)
	}
}

func TestSCRAMMalformedServerFinal(t *testing.T) {
	t.Parallel()
	for _, msg := range []string{
		"",
		"v=",
		"v",
		"x=abc",
		"V=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,noequals",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4==",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=AAAA",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95",
		" v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	} {
		c := scramRFCClient(t)
		if _, err := c.Continue(context.Background(), []byte(scramRFCServerFirst)); err != nil {
			t.Fatal(err)
		}
		if err := c.Finish(context.Background(), []byte(msg)); err == nil {
			t.Errorf("Finish(%q) accepted", msg)
		} else {
			wantAuthError(t, "Finish", err)
		}
	}
	// An optional extension after the verifier is ignored.
	c := scramRFCClient(t)
	if _, err := c.Continue(context.Background(), []byte(scramRFCServerFirst)); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(context.Background(), []byte(scramRFCServerFinal+",x=ext")); err != nil {
		t.Errorf("Finish with an extension: %v", err)
	}
}

func TestSCRAMUsernameEscaping(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ user, sent string }{
		{"a,b=c", "n=a=2Cb=3Dc"},
		{"==", "n==3D=3D"},
		{",", "n==2C"},
		{"=2C", "n==3D2C"},
		{"plain", "n=plain"},
	} {
		c := newSCRAM(tc.user, []byte("pw"), fixedNonce("nonce"))
		first, err := c.Start(context.Background())
		if err != nil {
			t.Fatalf("Start(%q): %v", tc.user, err)
		}
		if want := "n,," + tc.sent + ",r=nonce"; string(first) != want {
			t.Errorf("user %q: client-first-message %q, want %q", tc.user, first, want)
		}
		s := scramtest.NewServer(tc.user, []byte("pw"), 4096)
		if step, err := scramExchange(NewSCRAMSHA256(tc.user, []byte("pw")), s); err != nil {
			t.Errorf("user %q: exchange failed at %s: %v", tc.user, step, err)
		}
	}
}

func TestSCRAMSASLprep(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"pencil", "pencil", true},
		{"", "", true},
		{"a b~!", "a b~!", true},
		{"I\u00adX", "IX", true},           // soft hyphen maps to nothing
		{"a\u00a0b", "a b", true},          // no-break space maps to space
		{"a\u3000b\u2002c", "a b c", true}, // ideographic and en spaces
		{"a\u200db\ufe0fc\ufeff", "abc", true},
		{"a\u200bb", "a b", true},
		{"a\x07b", "", false},    // control character
		{"a\x7fb", "", false},    // DEL
		{"a\tb", "", false},      // tab is a control character
		{"caf\u00e9", "", false}, // needs normalization tables
		{"\u2168", "", false},    // ROMAN NUMERAL NINE: NFKC gives "IX"
		{"a\xffb", "", false},    // not UTF-8
	} {
		got, err := saslPrep(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("saslPrep(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}

	// A mapped password derives the same key as its mapped form.
	s := scramtest.NewServer("user", []byte("pen cil"), 4096)
	if step, err := scramExchange(NewSCRAMSHA256("user", []byte("pen\u00a0ci\u00adl")), s); err != nil {
		t.Fatalf("exchange with a mapped password failed at %s: %v", step, err)
	}
	// A refused username or password fails Start before anything is sent.
	for _, tc := range []struct{ user, pass string }{
		{"", "pw"},
		{"\u00ad", "pw"},
		{"us\x00er", "pw"},
		{"us\u00e9r", "pw"},
		{"user", "p\u00e9"},
		{"user", "p\nw"},
	} {
		first, err := NewSCRAMSHA256(tc.user, []byte(tc.pass)).Start(context.Background())
		if first != nil {
			t.Errorf("Start(%q, %q) sent %q", tc.user, tc.pass, first)
		}
		wantAuthError(t, "Start with refused credentials", err)
	}
}

func TestSCRAMRandomNonce(t *testing.T) {
	t.Parallel()
	c := NewSCRAMSHA256("user", []byte("pw"))
	seen := make(map[string]bool)
	for range 8 {
		first, err := c.Start(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		nonce, ok := strings.CutPrefix(string(first), "n,,n=user,r=")
		if !ok {
			t.Fatalf("client-first-message %q", first)
		}
		raw, err := base64.StdEncoding.Strict().DecodeString(nonce)
		if err != nil || len(raw) != 24 {
			t.Errorf("nonce %q: %d bytes, %v; want 24 bytes of base64", nonce, len(raw), err)
		}
		if strings.ContainsAny(nonce, ",=") {
			t.Errorf("nonce %q contains ',' or '='", nonce)
		}
		if seen[nonce] {
			t.Errorf("nonce %q repeated", nonce)
		}
		seen[nonce] = true
	}
}

func TestSCRAMNonceSourceFailure(t *testing.T) {
	t.Parallel()
	boom := errors.New("no entropy")
	for _, src := range []func() (string, error){
		func() (string, error) { return "", boom },
		fixedNonce(""),
		fixedNonce("a,b"),
		fixedNonce("a b"),
	} {
		_, err := newSCRAM("user", []byte("pw"), src).Start(context.Background())
		wantAuthError(t, "Start with a failing nonce source", err)
	}
}

func TestSCRAMErrorsOmitPassword(t *testing.T) {
	t.Parallel()
	const secret = "Sup3r-Secr3t-Pa55"
	ctx := context.Background()
	var errs []error
	for _, pass := range []string{secret + "\u00e9", secret + "\x01"} {
		_, err := NewSCRAMSHA256("user", []byte(pass)).Start(ctx)
		errs = append(errs, err)
	}
	for _, setup := range []func(*scramtest.Server){
		func(s *scramtest.Server) { s.BadSignature = true },
		func(s *scramtest.Server) { s.WrongNonce = true },
		func(s *scramtest.Server) { s.FinalError = "invalid-proof" },
		func(s *scramtest.Server) { s.Iterations = 1 },
	} {
		s := scramtest.NewServer("user", []byte(secret), 4096)
		setup(s)
		_, err := scramExchange(NewSCRAMSHA256("user", []byte(secret)), s)
		errs = append(errs, err)
	}
	for _, msg := range scramMalformedServerFirst {
		c := newSCRAM("user", []byte(secret), fixedNonce(scramRFCNonce))
		if _, err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		_, err := c.Continue(ctx, []byte(msg))
		errs = append(errs, err)
	}
	for i, err := range errs {
		if err == nil {
			t.Errorf("case %d: no error", i)
			continue
		}
		wrapped := &AuthError{Method: SCRAMMethod, Step: "continue", Err: err}
		for _, text := range []string{err.Error(), wrapped.Error()} {
			if strings.Contains(text, "Secr3t") {
				t.Errorf("case %d: error shows the password: %s", i, text)
			}
		}
	}
}

// TestSCRAMPrintsNoPassword checks that printing the authenticator, with
// any verb or through log/slog, names its method and user but never shows
// the password, nor the server signature derived from it that it holds in
// the middle of an exchange.
func TestSCRAMPrintsNoPassword(t *testing.T) {
	t.Parallel()
	c := scramRFCClient(t)
	if _, err := c.Continue(context.Background(), []byte(scramRFCServerFirst)); err != nil {
		t.Fatalf("Continue: %v", err)
	}
	sig := c.serverSig
	if len(sig) == 0 {
		t.Fatal("no server signature held during the exchange")
	}
	var auth Authenticator = c
	var texts []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3v", "%T"} {
		texts = append(texts, fmt.Sprintf(verb, auth))
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("text", "auth", auth)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("json", "auth", auth)
	texts = append(texts, logged.String())
	secrets := []string{"pencil", hex.EncodeToString(sig), base64.StdEncoding.EncodeToString(sig),
		strings.Trim(fmt.Sprint(sig), "[]")}
	for _, text := range texts {
		for _, secret := range secrets {
			if strings.Contains(strings.ToLower(text), strings.ToLower(secret)) {
				t.Errorf("printed authenticator shows %q: %s", secret, text)
			}
		}
	}
	if got, want := fmt.Sprint(auth), `SCRAM-SHA-256 authenticator for user "user"`; got != want {
		t.Errorf("Sprint = %s, want %s", got, want)
	}
	if got, want := fmt.Sprintf("%#v", auth), `mqtt.NewSCRAMSHA256("user", /* password hidden */)`; got != want {
		t.Errorf("%%#v = %s, want %s", got, want)
	}
}

func TestSCRAMAuthErrorText(t *testing.T) {
	t.Parallel()
	inner := &AuthError{Method: SCRAMMethod, Reason: "server signature does not verify"}
	outer := &AuthError{Method: SCRAMMethod, Step: "finish", Err: inner}
	want := "mqtt: SCRAM-SHA-256 authentication failed in finish: server signature does not verify"
	if got := outer.Error(); got != want {
		t.Errorf("Error() = %q\nwant %q", got, want)
	}
	var ae *AuthError
	if !errors.As(outer, &ae) || ae != outer || !errors.Is(outer, ErrAuthFailed) {
		t.Errorf("errors.As/Is on %v", outer)
	}
	cause := &AuthError{Method: "OTHER", Step: "start", Err: context.DeadlineExceeded}
	if !errors.Is(cause, context.DeadlineExceeded) {
		t.Errorf("%v does not wrap its cause", cause)
	}
	if got, want := cause.Error(), "mqtt: OTHER authentication failed in start: context deadline exceeded"; got != want {
		t.Errorf("Error() = %q\nwant %q", got, want)
	}
}

// fuzzSCRAMMaxIter bounds the iteration count FuzzSCRAMContinue accepts,
// and fuzzSCRAMMaxLen the length of the challenges it tries. Both keep
// the minimization of an interesting input short: the fuzzer tries every
// way of deleting a run of bytes from it, about len²/2 runs of the
// target, keeping the coverage. With the RFC's 4096 iterations and more,
// every candidate that still parsed ran PBKDF2 for milliseconds in the
// instrumented binary, and a candidate of a few hundred bytes or more
// meant hundreds of thousands of runs: either way both workers spent
// their time minimizing, fuzzing stalled, and the run failed with
// "context deadline exceeded" when -fuzztime ran out. Nothing in the
// parser depends on the iteration count beyond its bounds (checked by
// TestSCRAMMalformedServerFirst) nor on lengths beyond 256 bytes (a real
// server-first-message is about 100).
const (
	fuzzSCRAMMaxIter = 8
	fuzzSCRAMMaxLen  = 256
)

// FuzzSCRAMContinue feeds arbitrary server-first-messages to the RFC 7677
// client: it must never panic, must fail with an *AuthError or answer with
// a client-final-message for the server's nonce, and Finish must not
// accept the RFC's server signature for any other challenge, and must for
// the RFC's own. Iteration counts from 1 to fuzzSCRAMMaxIter are accepted,
// except in the RFC's challenge, which keeps its 4096.
func FuzzSCRAMContinue(f *testing.F) {
	f.Add([]byte(scramRFCServerFirst))
	f.Add([]byte(scramRFCServerFirst + ",x=ext"))
	rfcFirstCheap := strings.TrimSuffix(scramRFCServerFirst, "4096")
	for _, i := range []string{"1", "8", "9"} {
		f.Add([]byte(rfcFirstCheap + i))
	}
	for _, msg := range scramMalformedServerFirst {
		f.Add([]byte(msg))
	}
	f.Fuzz(func(t *testing.T, challenge []byte) {
		if len(challenge) > fuzzSCRAMMaxLen {
			return
		}
		rfc := string(challenge) == scramRFCServerFirst
		c := newSCRAM("user", []byte("pencil"), fixedNonce(scramRFCNonce))
		c.minIter, c.maxIter = 1, fuzzSCRAMMaxIter
		if rfc {
			c.minIter, c.maxIter = SCRAMMinIterations, SCRAMMinIterations
		}
		ctx := context.Background()
		if _, err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		final, err := c.Continue(ctx, challenge)
		if err != nil {
			var ae *AuthError
			if !errors.As(err, &ae) || !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("Continue(%q): %T %v", challenge, err, err)
			}
			if rfc {
				t.Fatalf("Continue(RFC 7677 challenge): %v", err)
			}
			if c.Finish(ctx, []byte(scramRFCServerFinal)) == nil {
				t.Fatal("Finish succeeded after a failed Continue")
			}
			return
		}
		nonce, _, _ := strings.Cut(strings.TrimPrefix(string(challenge), "r="), ",")
		if !strings.HasPrefix(string(final), "c=biws,r="+nonce+",p=") {
			t.Fatalf("Continue(%q) = %q", challenge, final)
		}
		err = c.Finish(ctx, []byte(scramRFCServerFinal))
		if err == nil && !rfc {
			t.Fatalf("Finish accepted the RFC signature for challenge %q", challenge)
		}
		if err != nil && rfc {
			t.Fatalf("Finish refused the RFC signature for the RFC challenge: %v", err)
		}
	})
}
