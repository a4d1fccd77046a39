package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
)

// TestRedactURL checks the form in which errors, logs and events show a
// server URL: no password, query value or fragment, including from URLs
// that do not parse or that url.Parse would misread.
func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		// Nothing to hide.
		{"", ""},
		{"mqtt://broker:1883", "mqtt://broker:1883"},
		{"unix:///run/mqtt.sock", "unix:///run/mqtt.sock"},
		{"ws://broker/mqtt?", "ws://broker/mqtt?"},
		{"mqtt://alice@broker", "mqtt://alice@broker"}, // a user name is not secret

		// Parsed: password, query values and fragment hidden; names kept.
		{"mqtt://alice:SECRET@broker:1883", "mqtt://alice:xxxxx@broker:1883"},
		{"mqtt://:SECRET@broker", "mqtt://:xxxxx@broker"},
		{"MQTT://alice:SECRET@Broker", "mqtt://alice:xxxxx@Broker"},
		{"//alice:SECRET@broker:1883", "//alice:xxxxx@broker:1883"},
		{"wss://alice:SECRET@broker/mqtt?token=SECRET&x=1", "wss://alice:xxxxx@broker/mqtt?token=xxxxx&x=xxxxx"},
		{"ws://broker/mqtt?SECRET", "ws://broker/mqtt?xxxxx"},
		{"ws://broker/mqtt?a=&&b=SECRET;c=SECRET", "ws://broker/mqtt?a=xxxxx&&b=xxxxx"},
		{"ws://broker/mqtt#SECRET", "ws://broker/mqtt#xxxxx"},
		{"host:1883?token=SECRET", "host:1883?token=xxxxx"},
		{"wss://broker/mqtt?mail=a%40b.example&token=SECRET", "wss://broker/mqtt?mail=xxxxx&token=xxxxx"},
		{"ws://broker/a%40b/mqtt", "ws://broker/a%40b/mqtt"},

		// '@' in the password: url.Parse takes the last '@' of the authority.
		{"mqtt://alice:SE@CR@ET@broker:1883", "mqtt://alice:xxxxx@broker:1883"},
		{"mqtt://alice:SE%40CRET@broker:1883", "mqtt://alice:xxxxx@broker:1883"},

		// Unparseable: everything up to the last '@' (or "%40") hidden.
		{"mqtt://alice:SE@CR@ET@broker:18x3", "mqtt://xxxxx@broker:18x3"},
		{"mqtt://alice:SE%zzCRET@broker:1883", "mqtt://xxxxx@broker:1883"},
		{"mqtt://alice:SE/CRET@broker:1883", "mqtt://xxxxx@broker:1883"},
		{"mqtt://alice:SE:CRET@[::1]:x", "mqtt://xxxxx@[::1]:x"},
		{"mqtt://alice:SE%40CR%40ET@broker:x", "mqtt://xxxxx@broker:x"},
		{"mqtt://alice:SECRET%40broker:1883", "mqtt://xxxxx@broker:1883"}, // the '@' itself escaped
		{"mqtt://alice:SECRET@broker\n", "mqtt://xxxxx@broker\n"},
		{"wss://broker:x/mqtt?token=SECRET&x=1", "wss://broker:x/mqtt?token=xxxxx&x=xxxxx"},
		{"wss://broker:x/mqtt?token=SECRET#SECRET", "wss://broker:x/mqtt?token=xxxxx#xxxxx"},
		{"wss://broker:x/mqtt#SECRET", "wss://broker:x/mqtt#xxxxx"},
		{"wss://alice:SECRET@broker:x/mqtt?token=SECRET", "wss://xxxxx@broker:x/mqtt?token=xxxxx"},
		// A '?' or '#' in the password: what follows the '@' is taken for
		// the query or fragment, so the host is hidden too.
		{"mqtt://alice:SE?CRET@broker:1883", "mqtt://xxxxx@xxxxx"},
		{"mqtt://alice:SE#CRET@broker:1883", "mqtt://xxxxx@xxxxx"},
		{"wss://broker:x/mqtt?mail=a@b.example&token=SECRET", "wss://xxxxx@xxxxx&token=xxxxx"},

		// Parsed, but an '@' outside the user info: redacted as text, since
		// the URL may be a password with '/', '?' or '#' read as the end
		// of the user info ("alice:4711" would be host and port).
		{"mqtt://alice:4711/SECRET@broker:1883", "mqtt://xxxxx@broker:1883"},
		{"mqtt://alice:4711?SECRET@broker:1883", "mqtt://xxxxx@xxxxx"},
		{"mqtt://alice:4711#SECRET@broker:1883", "mqtt://xxxxx@xxxxx"},
		{"wss://broker/mqtt?mail=a@b.example&token=SECRET", "wss://xxxxx@xxxxx&token=xxxxx"},
		{"ws://broker/a@b/mqtt", "ws://xxxxx@b/mqtt"},

		// No scheme.
		{"alice:SECRET@broker:1883", "alice:xxxxx@broker:1883"},
		{"alice:SE:CR@ET@broker:1883", "alice:xxxxx@broker:1883"},
		{"alice@broker:1883", "xxxxx@broker:1883"},
		{"1alice:SECRET@broker:1883", "xxxxx@broker:1883"},
	} {
		if got := redactURL(tc.in); got != tc.want {
			t.Errorf("redactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestRedactURLAnyDelimiter builds URLs whose password and query value
// hold each pair of URL delimiters, and checks that no piece of either is
// shown, whether or not the URL parses. The one exception is inherent in
// showing parameter names: in a value "Dddd&Eeee=Ffff" (or "Dddd@Eeee=Ffff",
// whose '@' may end the user info), Eeee reads as a name.
func TestRedactURLAnyDelimiter(t *testing.T) {
	t.Parallel()
	const delims = "/?#@:%[]&= \\;+"
	for _, scheme := range []string{"mqtt://", "wss://", ""} {
		for _, lead := range []string{"Aaaa", "4711"} {
			for _, c1 := range delims {
				for _, c2 := range delims {
					pw := lead + string(c1) + "Bbbb" + string(c2) + "Cccc"
					token := "Dddd" + string(c1) + "Eeee" + string(c2) + "Ffff"
					for _, u := range []string{
						scheme + "alice:" + pw + "@broker:1883/mqtt?token=" + token + "&x=1",
						scheme + "alice:" + pw + "@broker:18x3/mqtt?token=" + token,
					} {
						got := redactURL(u)
						for _, piece := range []string{lead, "Bbbb", "Cccc", "Dddd", "Eeee", "Ffff"} {
							isName := piece == "Eeee" && c2 == '=' && (c1 == '&' || c1 == '@')
							if strings.Contains(got, piece) && !isName {
								t.Errorf("redactURL(%q) = %q shows %q", u, got, piece)
							}
						}
					}
				}
			}
		}
	}
}

// TestRedactErr checks that a url.Parse error is described without
// quoting any part of the URL.
func TestRedactErr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"mqtt://alice:SE%zzCRET@broker", "malformed %-escape"},
		{"mqtt://broker%SE", "malformed %-escape"},
		{"mqtt://alice:SE/CRET@broker", "invalid port"},
		{"mqtt://alice:4711x/SECRET@broker", "invalid port"},
		{"mqtt://SE{CRET", "invalid character in the host"},
		{"mqtt://[SECRET]:1883", "invalid IP address in the host"},
		{"mqtt://[1.2.3.4]", "invalid IP-literal"},
		{"mqtt://[::1", "missing ']' in host"},
		{":SECRET", "missing protocol scheme"},
		{"alice@SECRET:1883", "first path segment in URL cannot contain colon"},
		{"mqtt://SECRET\x7f", "invalid control character in URL"},
	} {
		_, err := url.Parse(tc.in)
		if err == nil {
			t.Fatalf("url.Parse(%q) succeeded", tc.in)
		}
		if got := redactErr(err).Error(); got != tc.want {
			t.Errorf("redactErr(url.Parse(%q)) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := redactErr(errors.New(`unforeseen "SECRET"`)).Error(); got != "malformed URL" {
		t.Errorf("redactErr of an unknown error = %q, want malformed URL", got)
	}
}

// TestRedactServerKeepsRequestTarget checks that a server served by a
// Transport keeps its URL as configured, query included, for the
// transport, also through a redirection (which keeps path and query),
// while its shown URL hides the secrets.
func TestRedactServerKeepsRequestTarget(t *testing.T) {
	t.Parallel()
	custom := map[string]Transport{"wss": nopTransport{}}
	srv, err := parseServer("wss://alice:SECRET@broker/mqtt?token=SECRET&x=1", custom)
	if err != nil {
		t.Fatal(err)
	}
	to, err := resolveReference(srv, "other:8443", custom)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		srv         server
		url, target string
	}{
		{srv, "wss://alice:xxxxx@broker/mqtt?token=xxxxx&x=xxxxx", "wss://alice:SECRET@broker/mqtt?token=SECRET&x=1"},
		{to, "wss://other:8443/mqtt?token=xxxxx&x=xxxxx", "wss://other:8443/mqtt?token=SECRET&x=1"},
	} {
		if tc.srv.url != tc.url || tc.srv.target.String() != tc.target || tc.srv.custom == nil {
			t.Errorf("server shown as %q with target %q, want %q and %q, served by the transport",
				tc.srv.url, tc.srv.target, tc.url, tc.target)
		}
	}
}

// nopTransport is a Transport that dials nothing.
type nopTransport struct{}

func (nopTransport) Dial(context.Context, *url.URL, Dialer, *tls.Config) (net.Conn, error) {
	return nil, errors.New("nopTransport dials nothing")
}
