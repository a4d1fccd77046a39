package scram

import (
	"fmt"
	"io"
	"log/slog"
)

// String names the mechanism and the user. It never shows the password or
// anything derived from it, and neither do Format, GoString and LogValue,
// so the Authenticator may be printed or logged in any form.
func (a *authenticator) String() string {
	return fmt.Sprintf("%s authenticator for user %q", a.method, a.username)
}

// GoString is String in the form of the call that made the Authenticator.
func (a *authenticator) GoString() string {
	fn := "SHA256"
	if a.method == MethodSHA512 {
		fn = "SHA512"
	}
	return fmt.Sprintf("scram.%s(%q, /* password hidden */)", fn, a.username)
}

// Format prints String for every verb, GoString for %#v: without it, verbs
// such as %d would print the fields.
func (a *authenticator) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, a.GoString())
		return
	}
	_, _ = fmt.Fprintf(f, fmt.FormatString(f, verb), a.String())
}

// LogValue is String, for log/slog handlers that would otherwise encode the
// fields.
func (a *authenticator) LogValue() slog.Value { return slog.StringValue(a.String()) }
