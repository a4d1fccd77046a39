package mqtt

import (
	"errors"
	"net/url"
	"strings"
)

// What the client shows (errors, log records, events) names a server by a
// redacted form of its URL, never by the URL as configured: the user info
// may hold a password, and the query of a WebSocket URL often holds an
// access token. The URL as configured is used only to connect.

// redacted replaces each hidden part of a URL.
const redacted = "xxxxx"

// redactURL returns the server URL s as errors, logs and events show it:
// the password in the user info, every query value and the fragment are
// replaced by "xxxxx"; the scheme, user name, host, port, path and query
// parameter names stay. For example
//
//	wss://user:pw@host/mqtt?token=t&x=1  →  wss://user:xxxxx@host/mqtt?token=xxxxx&x=xxxxx
//
// A URL that url.Parse refuses is redacted as text by redactRawURL. So is
// one with an '@' outside its user info: that may be a password holding a
// '/', '?' or '#' that should have been percent-encoded, which url.Parse
// reads as the end of the user info ("mqtt://user:4711/pw@host" parses as
// host "user", port 4711 and path "/pw@host"). An '@' in a path or query
// written as "%40" is not taken for one.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || strings.Contains(u.Opaque, "@") || strings.Contains(u.EscapedPath(), "@") ||
		strings.Contains(u.RawQuery, "@") || strings.Contains(u.EscapedFragment(), "@") {
		return redactRawURL(s)
	}
	u.RawQuery = redactQuery(u.RawQuery)
	if u.Fragment != "" {
		u.Fragment, u.RawFragment = redacted, ""
	}
	return u.Redacted()
}

// redactRawURL redacts the URL s as text, hiding more than needed rather
// than less. The user info is taken to run from the start of the authority
// (after "scheme://", "scheme:" or "//") to the last '@', or "%40", in s,
// since a password may hold any character; all of it is hidden. When the
// hidden part holds a '?' or a '#', what follows its '@' is taken to be
// inside the query or the fragment.
func redactRawURL(s string) string {
	start := authorityStart(s)
	rest := s[start:]
	at, n := strings.LastIndexByte(rest, '@'), 1
	if i := strings.LastIndex(rest, "%40"); i > at {
		at, n = i, 3
	}
	if at < 0 {
		return s[:start] + redactTail(rest, 0)
	}
	var in byte
	switch hidden := rest[:at]; {
	case strings.Contains(hidden, "#"):
		in = '#'
	case strings.Contains(hidden, "?"):
		in = '?'
	}
	return s[:start] + redacted + "@" + redactTail(rest[at+n:], in)
}

// redactTail redacts the part s of a URL that follows the user info: the
// host and path stay, query values are hidden as by redactQuery, and the
// fragment is hidden. in is '?' or '#' when s begins inside the query or
// the fragment, 0 when it begins with the host.
func redactTail(s string, in byte) string {
	var head string
	if in == 0 {
		i := strings.IndexAny(s, "?#")
		if i < 0 {
			return s
		}
		head, in, s = s[:i+1], s[i], s[i+1:]
	}
	if in == '?' {
		q, fragment, ok := strings.Cut(s, "#")
		if !ok {
			return head + redactQuery(q)
		}
		head, s = head+redactQuery(q)+"#", fragment
	}
	if s == "" {
		return head
	}
	return head + redacted
}

// authorityStart returns where the authority of the URL s begins: after
// "scheme://", after "scheme:" (as in "user:password@host", whose "user"
// looks like a scheme), or after a leading "//"; 0 when s has none of them.
func authorityStart(s string) int {
	if strings.HasPrefix(s, "//") {
		return 2
	}
	i := strings.IndexByte(s, ':')
	if i <= 0 || !isScheme(s[:i]) {
		return 0
	}
	if strings.HasPrefix(s[i+1:], "//") {
		return i + 3
	}
	return i + 1
}

// isScheme reports whether s has the syntax of a URL scheme (RFC 3986,
// section 3.1): a letter, then letters, digits, '+', '-' and '.'.
func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// redactQuery replaces every value in the URL query q by "xxxxx" and keeps
// the parameter names. An element without '=' may be a bare token, so it is
// replaced whole; empty elements stay empty.
func redactQuery(q string) string {
	if q == "" {
		return q
	}
	elems := strings.Split(q, "&")
	for i, e := range elems {
		if name, _, ok := strings.Cut(e, "="); ok {
			elems[i] = name + "=" + redacted
		} else if e != "" {
			elems[i] = redacted
		}
	}
	return strings.Join(elems, "&")
}

// redactErr says why url.Parse refused a URL without quoting any of it.
// The *url.Error quotes the whole URL, and its cause the part that failed:
// a %-escape, a host character or a port, which may be a piece of a
// password. Causes that quote nothing keep their text; the others are
// named by a fixed text.
func redactErr(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	if _, ok := errors.AsType[url.EscapeError](err); ok {
		return errors.New("malformed %-escape")
	}
	if _, ok := errors.AsType[url.InvalidHostError](err); ok {
		return errors.New("invalid character in the host")
	}
	msg := strings.TrimPrefix(err.Error(), "net/url: ")
	switch {
	case strings.HasPrefix(msg, "invalid port"):
		return errors.New("invalid port")
	case strings.HasPrefix(msg, "invalid host"):
		return errors.New("invalid IP address in the host")
	}
	switch msg {
	case "missing protocol scheme", "first path segment in URL cannot contain colon",
		"invalid control character in URL", "invalid userinfo", "invalid IP-literal",
		"missing ']' in host", "empty url":
		return errors.New(msg)
	}
	return errors.New("malformed URL")
}
