package scram

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/b4e21b16/mqtt"
	xscram "github.com/xdg-go/scram"
)

// TestPrintsNoPassword checks that printing the Authenticator, alone or
// in a Config, with any verb or through log/slog, names its method and user
// but never shows the password, nor the server signature derived from it
// that it holds in the middle of an exchange.
func TestPrintsNoPassword(t *testing.T) {
	t.Parallel()
	a := rfcClient(t)
	if _, err := a.Continue(context.Background(), []byte(rfcServerFirst)); err != nil {
		t.Fatalf("Continue: %v", err)
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(rfcServerFinal, "v="))
	if err != nil {
		t.Fatal(err)
	}
	var auth mqtt.Authenticator = a
	cfg := mqtt.Config{Authenticator: auth}
	var texts []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3v", "%T"} {
		texts = append(texts, fmt.Sprintf(verb, auth), fmt.Sprintf(verb, cfg), fmt.Sprintf(verb, &cfg))
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("text", "auth", auth)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("json", "auth", auth)
	texts = append(texts, logged.String())
	secrets := []string{"pencil", hex.EncodeToString(sig), base64.StdEncoding.EncodeToString(sig),
		strings.Trim(fmt.Sprint(sig), "[]"), fmt.Sprint([]byte("pencil"))}
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
	if got, want := fmt.Sprintf("%#v", auth), `scram.SHA256("user", /* password hidden */)`; got != want {
		t.Errorf("%%#v = %s, want %s", got, want)
	}
	if got, want := fmt.Sprintf("%#v", SHA512("a,b", nil)), `scram.SHA512("a,b", /* password hidden */)`; got != want {
		t.Errorf("%%#v = %s, want %s", got, want)
	}
	if !strings.Contains(logged.String(), `auth="SCRAM-SHA-256 authenticator for user \"user\""`) ||
		!strings.Contains(logged.String(), `"auth":"SCRAM-SHA-256 authenticator for user \"user\""`) {
		t.Errorf("logged:\n%s\nwant the authenticator's String in both forms", logged.String())
	}
}

// TestErrorsOmitPassword checks the text of the errors of refused
// credentials and of every malformed server-first-message, alone and as
// the client wraps them.
func TestErrorsOmitPassword(t *testing.T) {
	t.Parallel()
	const secret = "Sup3r-Secr3t-Pa55"
	ctx := context.Background()
	var errs []error
	for _, pass := range []string{secret + "\x01", secret + "\xff", secret + "\u0627a"} {
		_, err := SHA256("user", []byte(pass)).Start(ctx)
		errs = append(errs, err)
	}
	for _, msg := range append(malformedServerFirst, rfcServerFirst+"\x00") {
		a := newAuthenticator(MethodSHA256, xscram.SHA256, "user", []byte(secret), options{nonce: fixedNonce(rfcNonce)})
		if _, err := a.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Continue(ctx, []byte(msg)); err != nil {
			errs = append(errs, err)
		} else if err := a.Finish(ctx, []byte("x=abc")); err != nil {
			errs = append(errs, err)
		}
	}
	for i, err := range errs {
		if err == nil {
			t.Errorf("case %d: no error", i)
			continue
		}
		wrapped := &mqtt.AuthError{Method: MethodSHA256, Step: "continue", Err: err}
		for _, text := range []string{err.Error(), wrapped.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			if strings.Contains(text, "Secr3t") {
				t.Errorf("case %d: error shows the password: %s", i, text)
			}
		}
	}
}
