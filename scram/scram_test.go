package scram

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/scramtest"
	xscram "github.com/xdg-go/scram"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The exchange of RFC 7677 section 3: user "user", password "pencil".
const (
	rfcNonce       = "rOprNGfwEbeRWgbNEkqO"
	rfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
	rfcServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	rfcClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	rfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

// The SHA-512 example of github.com/xdg-go/scram's test data
// (testdata/good/sha-512-ascii.json): user "user", password "pencil",
// 10000 iterations.
const (
	sha512Nonce       = "/uAp+YhRXyuq+1zS3YWsUsZHpxLfGkcQ"
	sha512ClientFirst = "n,,n=user,r=/uAp+YhRXyuq+1zS3YWsUsZHpxLfGkcQ"
	sha512ServerFirst = "r=/uAp+YhRXyuq+1zS3YWsUsZHpxLfGkcQ4FHzBxBhPzykjGStpoxdfs4Nyp1mtC9B,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=10000"
	sha512ClientFinal = "c=biws,r=/uAp+YhRXyuq+1zS3YWsUsZHpxLfGkcQ4FHzBxBhPzykjGStpoxdfs4Nyp1mtC9B,p=E2tqtuwJz5ShFuck1/KeqZKCmGZe/Lxjyr6fTZio21wZtlpgyeYLNxxQXrLuK/FfMSCanyDRmI1q5KL1Tj54nQ=="
	sha512ServerFinal = "v=qKOkLNGdt0VrlVkoL3kXjhWmI4SjEfqw8ogXgikzbPOMh6gloo8Mrboq/q3cz0/7hIvcQ1N9VL4m7iiSTTyolQ=="
)

// fixedNonce returns a nonce source that always gives n.
func fixedNonce(n string) xscram.NonceGeneratorFcn { return func() string { return n } }

// rfcClient returns the RFC 7677 client, started.
func rfcClient(t testing.TB) *authenticator {
	t.Helper()
	return startedClient(t, newAuthenticator(MethodSHA256, xscram.SHA256, "user", []byte("pencil"), options{nonce: fixedNonce(rfcNonce)}), rfcClientFirst)
}

// startedClient starts a and checks its client-first-message.
func startedClient(t testing.TB, a *authenticator, wantFirst string) *authenticator {
	t.Helper()
	first, err := a.Start(context.Background())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if string(first) != wantFirst {
		t.Fatalf("client-first-message\n got %s\nwant %s", first, wantFirst)
	}
	return a
}

// wantAuthError fails t unless err is an *mqtt.AuthError of method
// wrapping mqtt.ErrAuthFailed, and returns it.
func wantAuthError(t *testing.T, method, what string, err error) *mqtt.AuthError {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	if !errors.Is(err, mqtt.ErrAuthFailed) {
		t.Errorf("%s: %v does not wrap ErrAuthFailed", what, err)
	}
	ae, ok := errors.AsType[*mqtt.AuthError](err)
	if !ok {
		t.Fatalf("%s: %T %v is not an *mqtt.AuthError", what, err, err)
	}
	if ae.Method != method {
		t.Errorf("%s: Method = %q, want %q", what, ae.Method, method)
	}
	return ae
}

func TestVectors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, method                          string
		hash                                  xscram.HashGeneratorFcn
		nonce, cfirst, sfirst, cfinal, sfinal string
	}{
		{"RFC7677", MethodSHA256, xscram.SHA256, rfcNonce, rfcClientFirst, rfcServerFirst, rfcClientFinal, rfcServerFinal},
		{"SHA512", MethodSHA512, xscram.SHA512, sha512Nonce, sha512ClientFirst, sha512ServerFirst, sha512ClientFinal, sha512ServerFinal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := startedClient(t, newAuthenticator(tc.method, tc.hash, "user", []byte("pencil"), options{nonce: fixedNonce(tc.nonce)}), tc.cfirst)
			ctx := context.Background()
			final, err := a.Continue(ctx, []byte(tc.sfirst))
			if err != nil {
				t.Fatalf("Continue: %v", err)
			}
			if string(final) != tc.cfinal {
				t.Fatalf("client-final-message\n got %s\nwant %s", final, tc.cfinal)
			}
			if err := a.Finish(ctx, []byte(tc.sfinal)); err != nil {
				t.Fatalf("Finish with the server signature: %v", err)
			}
		})
	}
}

func TestWrongServerSignature(t *testing.T) {
	t.Parallel()
	sig, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(rfcServerFinal, "v="))
	if err != nil {
		t.Fatal(err)
	}
	for i := range sig {
		wrong := append([]byte(nil), sig...)
		wrong[i] ^= 0x80
		a := rfcClient(t)
		if _, err := a.Continue(context.Background(), []byte(rfcServerFirst)); err != nil {
			t.Fatalf("Continue: %v", err)
		}
		err := a.Finish(context.Background(), []byte("v="+base64.StdEncoding.EncodeToString(wrong)))
		ae := wantAuthError(t, MethodSHA256, "Finish with a changed signature", err)
		if !strings.Contains(ae.Reason, "did not prove") {
			t.Errorf("byte %d: Reason = %q, want it to say the server did not prove itself", i, ae.Reason)
		}
	}
}

func TestMethod(t *testing.T) {
	t.Parallel()
	if m := SHA256("u", []byte("p")).Method(); m != "SCRAM-SHA-256" {
		t.Errorf("SHA256: Method() = %q", m)
	}
	if m := SHA512("u", []byte("p")).Method(); m != "SCRAM-SHA-512" {
		t.Errorf("SHA512: Method() = %q", m)
	}
}

// mechanisms are the constructors with the test servers of their method.
var mechanisms = []struct {
	method    string
	new       func(string, []byte) mqtt.Authenticator
	newServer func(string, []byte, int) *scramtest.Server
}{
	{MethodSHA256, SHA256, scramtest.NewServer},
	{MethodSHA512, SHA512, scramtest.NewServerSHA512},
}

// exchange runs one exchange of a against s and returns the error of the
// first step that failed, named by step.
func exchange(a mqtt.Authenticator, s *scramtest.Server) (step string, err error) {
	ctx := context.Background()
	first, err := a.Start(ctx)
	if err != nil {
		return "client start", err
	}
	sfirst, err := s.First(first)
	if err != nil {
		return "server first", err
	}
	final, err := a.Continue(ctx, sfirst)
	if err != nil {
		return "client continue", err
	}
	sfinal, err := s.Final(final)
	if err != nil {
		return "server final", err
	}
	if err := a.Finish(ctx, sfinal); err != nil {
		return "client finish", err
	}
	return "", nil
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, m := range mechanisms {
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
			{name: "LowIterations", password: "correct horse", iter: MinIterations - 1, wantStep: "client continue"},
			{name: "TooManyIterations", password: "correct horse", iter: MaxIterations + 1, wantStep: "client continue"},
			{name: "ZeroIterations", password: "correct horse", iter: 0, wantStep: "client continue"},
			{name: "ServerError", password: "correct horse", iter: 4096, wantStep: "client finish",
				setup: func(s *scramtest.Server) { s.FinalError = "other-error" }},
		} {
			t.Run(m.method+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				s := m.newServer("alice", []byte(tc.password), tc.iter)
				if tc.setup != nil {
					tc.setup(s)
				}
				step, err := exchange(m.new("alice", []byte("correct horse")), s)
				if step != tc.wantStep {
					t.Fatalf("exchange failed at %q (%v), want %q", step, err, tc.wantStep)
				}
				if strings.HasPrefix(step, "client") {
					wantAuthError(t, m.method, step, err)
				}
			})
		}
	}
}

// TestHostileIterationCount checks that a count above MaxIterations fails
// Continue before any key is derived: at 2^28 iterations a derivation
// would take minutes.
func TestHostileIterationCount(t *testing.T) {
	t.Parallel()
	a := rfcClient(t)
	_, err := a.Continue(context.Background(), []byte(strings.TrimSuffix(rfcServerFirst, "4096")+"268435456"))
	ae := wantAuthError(t, MethodSHA256, "Continue", err)
	if want := "server iteration count 268435456 outside [4096, 1048576]"; ae.Reason != want {
		t.Errorf("Reason = %q, want %q", ae.Reason, want)
	}
}

func TestServerRejectsWrongPassword(t *testing.T) {
	t.Parallel()
	s := scramtest.NewServer("alice", []byte("right"), 4096)
	a := SHA256("alice", []byte("wrong"))
	ctx := context.Background()
	first, err := a.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sfirst, err := s.First(first)
	if err != nil {
		t.Fatal(err)
	}
	final, err := a.Continue(ctx, sfirst)
	if err != nil {
		t.Fatal(err)
	}
	sfinal, err := s.Final(final)
	if !errors.Is(err, scramtest.ErrInvalidProof) {
		t.Fatalf("server Final: %v, want ErrInvalidProof", err)
	}
	ae := wantAuthError(t, MethodSHA256, "Finish with the server's e=", a.Finish(ctx, sfinal))
	if ae.Server != "invalid-proof" {
		t.Errorf("Server = %q, want invalid-proof", ae.Server)
	}
	if !strings.Contains(ae.Error(), `"invalid-proof"`) {
		t.Errorf("Error() = %q does not show the server's error", ae.Error())
	}
}

func TestServerErrorSurfaced(t *testing.T) {
	t.Parallel()
	for _, final := range []string{"e=unknown-user", "e=other-error,x=ext", "e=channel-bindings-dont-match", "e=bad\xffutf8"} {
		a := rfcClient(t)
		if _, err := a.Continue(context.Background(), []byte(rfcServerFirst)); err != nil {
			t.Fatal(err)
		}
		ae := wantAuthError(t, MethodSHA256, final, a.Finish(context.Background(), []byte(final)))
		want, _, _ := strings.Cut(strings.TrimPrefix(final, "e="), ",")
		if ae.Server != strings.ToValidUTF8(want, "\uFFFD") {
			t.Errorf("%q: Server = %q, want %q", final, ae.Server, want)
		}
	}
}

func TestStartResets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := SHA256("alice", []byte("pw"))
	s := scramtest.NewServer("alice", []byte("pw"), 4096)

	first1, err := a.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sfirst1, err := s.First(first1)
	if err != nil {
		t.Fatal(err)
	}
	first2, err := a.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(first1) == string(first2) {
		t.Fatalf("two Starts sent the same nonce: %s", first1)
	}
	// The answer to the abandoned exchange carries the old nonce.
	_, err = a.Continue(ctx, sfirst1)
	wantAuthError(t, MethodSHA256, "Continue with the abandoned exchange's challenge", err)

	// The failure ended the exchange; the next ones, as on reconnects,
	// succeed from a fresh Start.
	for i := range 3 {
		if step, err := exchange(a, s); err != nil {
			t.Fatalf("exchange %d failed at %s: %v", i, step, err)
		}
	}
	// A failed exchange does not spoil the next.
	s.BadSignature = true
	if step, _ := exchange(a, s); step != "client finish" {
		t.Fatalf("bad signature exchange failed at %q, want client finish", step)
	}
	s.BadSignature = false
	if step, err := exchange(a, s); err != nil {
		t.Fatalf("exchange after a failure failed at %s: %v", step, err)
	}
}

// TestKeyCacheFollowsServer checks exchanges with servers that change the
// salt or the iteration count between exchanges (a password changed, or a
// hostile server): each succeeds, and the client whose cache holds the
// keys for earlier factors is dropped, so the cache cannot grow with them.
func TestKeyCacheFollowsServer(t *testing.T) {
	t.Parallel()
	a := SHA256("alice", []byte("pw")).(*authenticator)
	s := scramtest.NewServer("alice", []byte("pw"), 4096)
	for i := range 2 {
		if step, err := exchange(a, s); err != nil {
			t.Fatalf("exchange %d failed at %s: %v", i, step, err)
		}
	}
	kept := a.client
	s.Iterations = 4097
	if step, err := exchange(a, s); err != nil {
		t.Fatalf("exchange with a new count failed at %s: %v", step, err)
	}
	if a.client == kept {
		t.Error("the client was kept after the iteration count changed")
	}
	kept = a.client
	s2 := scramtest.NewServer("alice", []byte("pw"), 4097) // another salt
	for i, srv := range []*scramtest.Server{s2, s2, s} {
		if step, err := exchange(a, srv); err != nil {
			t.Fatalf("exchange %d after the change failed at %s: %v", i, step, err)
		}
	}
	if a.client == kept {
		t.Error("the client was kept after the salt changed")
	}
}

func TestOverlappingExchanges(t *testing.T) {
	t.Parallel()
	a := SHA256("alice", []byte("pw"))
	const workers, rounds = 2, 5
	errs := make(chan error, workers*rounds)
	var wg sync.WaitGroup
	for range workers {
		s := scramtest.NewServer("alice", []byte("pw"), 4096)
		wg.Go(func() {
			for range rounds {
				step, err := exchange(a, s)
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
		if err != nil && !errors.Is(err, mqtt.ErrAuthFailed) {
			t.Errorf("overlapping exchange: %v", err)
		}
	}
	// Once alone again, the exchange succeeds.
	if step, err := exchange(a, scramtest.NewServer("alice", []byte("pw"), 4096)); err != nil {
		t.Fatalf("exchange after the overlap failed at %s: %v", step, err)
	}
}

func TestOutOfOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	a := newAuthenticator(MethodSHA256, xscram.SHA256, "user", []byte("pencil"), options{nonce: fixedNonce(rfcNonce)})
	_, err := a.Continue(ctx, []byte(rfcServerFirst))
	wantAuthError(t, MethodSHA256, "Continue before Start", err)
	wantAuthError(t, MethodSHA256, "Finish before Start", a.Finish(ctx, []byte(rfcServerFinal)))

	a = rfcClient(t)
	wantAuthError(t, MethodSHA256, "Finish before Continue", a.Finish(ctx, []byte(rfcServerFinal)))
	// The failed Finish ended the exchange.
	_, err = a.Continue(ctx, []byte(rfcServerFirst))
	wantAuthError(t, MethodSHA256, "Continue after the exchange ended", err)

	a = rfcClient(t)
	if _, err := a.Continue(ctx, []byte(rfcServerFirst)); err != nil {
		t.Fatal(err)
	}
	_, err = a.Continue(ctx, []byte(rfcServerFirst))
	wantAuthError(t, MethodSHA256, "second Continue", err)

	a = rfcClient(t)
	if _, err := a.Continue(ctx, []byte(rfcServerFirst)); err != nil {
		t.Fatal(err)
	}
	wantAuthError(t, MethodSHA256, "Finish(nil)", a.Finish(ctx, nil))
	wantAuthError(t, MethodSHA256, "Finish after Finish(nil)", a.Finish(ctx, []byte(rfcServerFinal)))

	a = rfcClient(t)
	if _, err := a.Continue(ctx, []byte(rfcServerFirst)); err != nil {
		t.Fatal(err)
	}
	if err := a.Finish(ctx, []byte(rfcServerFinal)); err != nil {
		t.Fatal(err)
	}
	wantAuthError(t, MethodSHA256, "second Finish", a.Finish(ctx, []byte(rfcServerFinal)))

	// A failed Continue ends the exchange: Finish cannot succeed after it,
	// not even with an empty verifier.
	a = rfcClient(t)
	_, err = a.Continue(ctx, []byte("r=x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))
	wantAuthError(t, MethodSHA256, "Continue with a foreign nonce", err)
	wantAuthError(t, MethodSHA256, "Finish after a failed Continue", a.Finish(ctx, []byte("v=")))
}

func TestContextDone(t *testing.T) {
	t.Parallel()
	done, cancel := context.WithCancel(context.Background())
	cancel()

	a := newAuthenticator(MethodSHA256, xscram.SHA256, "user", []byte("pencil"), options{nonce: fixedNonce(rfcNonce)})
	_, err := a.Start(done)
	wantAuthError(t, MethodSHA256, "Start", err)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Start: %v does not wrap context.Canceled", err)
	}

	a = rfcClient(t)
	if _, err = a.Continue(done, []byte(rfcServerFirst)); !errors.Is(err, context.Canceled) {
		t.Errorf("Continue: %v does not wrap context.Canceled", err)
	}

	a = rfcClient(t)
	if _, err := a.Continue(context.Background(), []byte(rfcServerFirst)); err != nil {
		t.Fatal(err)
	}
	if err := a.Finish(done, []byte(rfcServerFinal)); !errors.Is(err, context.Canceled) {
		t.Errorf("Finish: %v does not wrap context.Canceled", err)
	}
}

// malformedServerFirst are server-first-messages the RFC 7677 client
// must refuse.
var malformedServerFirst = []string{
	"",
	",",
	"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
	"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==",
	"s=W22ZaJ0SNY7soEsUEjb6gQ==,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,i=4096",
	"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,i=4096,s=W22ZaJ0SNY7soEsUEjb6gQ==",
	"m=mandatory,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	"r=rOprNGfwEbeRWgbNEkq,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",                                // shorter
	"r=XOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", // other prefix
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ,i=4096",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ=!,i=4096",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=abc",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-4096",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=+4096",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=04096",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095",
	"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999999999999",
	"e=other-error",
}

func TestMalformedServerFirst(t *testing.T) {
	t.Parallel()
	for _, msg := range malformedServerFirst {
		a := rfcClient(t)
		final, err := a.Continue(context.Background(), []byte(msg))
		if err == nil {
			t.Errorf("Continue(%q) = %q, want an error", msg, final)
			continue
		}
		wantAuthError(t, MethodSHA256, "Continue", err)
		if strings.HasPrefix(msg, "m=") && !strings.Contains(err.Error(), "mandatory extension") {
			t.Errorf("Continue(%q): %v, want it to name the mandatory extension", msg, err)
		}
	}
}

func TestServerFirstExtensionIgnored(t *testing.T) {
	t.Parallel()
	a := rfcClient(t)
	final, err := a.Continue(context.Background(), []byte(rfcServerFirst+",x=optional"))
	if err != nil {
		t.Fatalf("Continue with an optional extension: %v", err)
	}
	// The extension is part of the AuthMessage, so the proof differs.
	if !strings.HasPrefix(string(final), "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=") ||
		string(final) == rfcClientFinal {
		t.Fatalf("client-final-message = %s", final)
	}
}

func TestMalformedServerFinal(t *testing.T) {
	t.Parallel()
	for _, msg := range []string{
		"",
		"v=",
		"v",
		"x=abc",
		"V=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4==",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=AAAA",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95",
		" v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	} {
		a := rfcClient(t)
		if _, err := a.Continue(context.Background(), []byte(rfcServerFirst)); err != nil {
			t.Fatal(err)
		}
		if err := a.Finish(context.Background(), []byte(msg)); err == nil {
			t.Errorf("Finish(%q) accepted", msg)
		} else {
			wantAuthError(t, MethodSHA256, "Finish", err)
		}
	}
	// An optional extension after the verifier is ignored.
	a := rfcClient(t)
	if _, err := a.Continue(context.Background(), []byte(rfcServerFirst)); err != nil {
		t.Fatal(err)
	}
	if err := a.Finish(context.Background(), []byte(rfcServerFinal+",x=ext")); err != nil {
		t.Errorf("Finish with an extension: %v", err)
	}
}

func TestUsernameEscaping(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ user, sent string }{
		{"a,b=c", "n=a=2Cb=3Dc"},
		{"==", "n==3D=3D"},
		{",", "n==2C"},
		{"=2C", "n==3D2C"},
		{"plain", "n=plain"},
	} {
		a := newAuthenticator(MethodSHA256, xscram.SHA256, tc.user, []byte("pw"), options{nonce: fixedNonce("nonce")})
		startedClient(t, a, "n,,"+tc.sent+",r=nonce")
		s := scramtest.NewServer(tc.user, []byte("pw"), 4096)
		if step, err := exchange(SHA256(tc.user, []byte("pw")), s); err != nil {
			t.Errorf("user %q: exchange failed at %s: %v", tc.user, step, err)
		}
	}
}

// TestSASLprep checks that the credentials go through SASLprep (RFC
// 4013): mapped and normalized forms derive the same key as the form the
// server stores, and what SASLprep prohibits fails Start before anything is
// sent, with an error that names no character of the credentials.
func TestSASLprep(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ client, server string }{
		{"pen\u00a0ci\u00adl", "pen cil"}, // no-break space to space, soft hyphen to nothing
		{"\u2168", "IX"},                  // ROMAN NUMERAL NINE, by NFKC
		{"cafe\u0301", "caf\u00e9"},       // composed by NFKC
		{"a\u200db\ufe0fc", "abc"},        // zero-width joiner, variation selector
	} {
		s := scramtest.NewServer("user", []byte(tc.server), 4096)
		if step, err := exchange(SHA256("user", []byte(tc.client)), s); err != nil {
			t.Errorf("password %q against %q: exchange failed at %s: %v", tc.client, tc.server, step, err)
		}
	}
	s := scramtest.NewServer("IX", []byte("pw"), 4096)
	if step, err := exchange(SHA256("\u2168", []byte("pw")), s); err != nil {
		t.Errorf("username by NFKC: exchange failed at %s: %v", step, err)
	}

	for _, tc := range []struct{ user, pass string }{
		{"", "pw"},
		{"\u00ad", "pw"},
		{"us\x00er", "pw"},
		{"us\xffer", "pw"},
		{"user", "p\u0007w"},
		{"user", "p\nw"},
		{"user", "p\x7fw"},
		{"user", "p\xffw"},
		{"user", "p\ufffdw"},
	} {
		first, err := SHA256(tc.user, []byte(tc.pass)).Start(context.Background())
		if first != nil {
			t.Errorf("Start(%q, %q) sent %q", tc.user, tc.pass, first)
		}
		ae := wantAuthError(t, MethodSHA256, "Start with refused credentials", err)
		text := ae.Error()
		if strings.Contains(text, `\u`) || strings.Contains(text, "rune") {
			t.Errorf("Start(%q, %q): error %q names a character", tc.user, tc.pass, text)
		}
		for _, r := range tc.user + tc.pass {
			if (r < 0x20 || r > 0x7e) && strings.ContainsRune(text, r) {
				t.Errorf("Start(%q, %q): error %q shows %q", tc.user, tc.pass, text, r)
			}
		}
	}
}

func TestRandomNonce(t *testing.T) {
	t.Parallel()
	a := SHA256("user", []byte("pw"))
	seen := make(map[string]bool)
	for range 8 {
		first, err := a.Start(context.Background())
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
		if seen[nonce] {
			t.Errorf("nonce %q repeated", nonce)
		}
		seen[nonce] = true
	}
}

// fuzzMaxIter bounds the iteration count FuzzContinue accepts, and
// fuzzMaxLen the length of the challenges it tries. Both keep the
// minimization of an interesting input short: the fuzzer tries every way of
// deleting a run of bytes from it, about len²/2 runs of the target. With
// the RFC's 4096 iterations, every candidate that still parsed would run
// PBKDF2 for milliseconds in the instrumented binary, and a candidate of a
// few hundred bytes would mean hundreds of thousands of runs: either way
// fuzzing would stall in minimization until -fuzztime ran out. Nothing in
// the checks depends on the iteration count beyond its bounds (see
// TestMalformedServerFirst) nor on lengths beyond 256 bytes (a real
// server-first-message is about 100).
const (
	fuzzMaxIter = 8
	fuzzMaxLen  = 256
)

// FuzzContinue feeds arbitrary server-first-messages to the RFC 7677
// client: it must never panic, must fail with an *mqtt.AuthError or answer
// with a client-final-message for the server's nonce, and Finish must not
// accept the RFC's server signature for any other challenge, and must for
// the RFC's own. Iteration counts from 1 to fuzzMaxIter are accepted,
// except in the RFC's challenge, which keeps its 4096.
func FuzzContinue(f *testing.F) {
	f.Add([]byte(rfcServerFirst))
	f.Add([]byte(rfcServerFirst + ",x=ext"))
	cheap := strings.TrimSuffix(rfcServerFirst, "4096")
	for _, i := range []string{"1", "8", "9"} {
		f.Add([]byte(cheap + i))
	}
	for _, msg := range malformedServerFirst {
		f.Add([]byte(msg))
	}
	f.Fuzz(func(t *testing.T, challenge []byte) {
		if len(challenge) > fuzzMaxLen {
			return
		}
		rfc := string(challenge) == rfcServerFirst
		opts := options{nonce: fixedNonce(rfcNonce), minIter: 1, maxIter: fuzzMaxIter}
		if rfc {
			opts.minIter, opts.maxIter = MinIterations, MinIterations
		}
		a := newAuthenticator(MethodSHA256, xscram.SHA256, "user", []byte("pencil"), opts)
		ctx := context.Background()
		if _, err := a.Start(ctx); err != nil {
			t.Fatal(err)
		}
		final, err := a.Continue(ctx, challenge)
		if err != nil {
			if _, ok := errors.AsType[*mqtt.AuthError](err); !ok || !errors.Is(err, mqtt.ErrAuthFailed) {
				t.Fatalf("Continue(%q): %T %v", challenge, err, err)
			}
			if rfc {
				t.Fatalf("Continue(RFC 7677 challenge): %v", err)
			}
			if a.Finish(ctx, []byte(rfcServerFinal)) == nil {
				t.Fatal("Finish succeeded after a failed Continue")
			}
			return
		}
		nonce, _, _ := strings.Cut(strings.TrimPrefix(string(challenge), "r="), ",")
		if !strings.HasPrefix(string(final), "c=biws,r="+nonce+",p=") {
			t.Fatalf("Continue(%q) = %q", challenge, final)
		}
		err = a.Finish(ctx, []byte(rfcServerFinal))
		if err == nil && !rfc {
			t.Fatalf("Finish accepted the RFC signature for challenge %q", challenge)
		}
		if err != nil && rfc {
			t.Fatalf("Finish refused the RFC signature for the RFC challenge: %v", err)
		}
	})
}
