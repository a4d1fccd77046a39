package main

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// serverURL works out the broker URL from --server, -L or -h and -p.
func (c *connFlags) serverURL() (string, error) {
	hostPort := c.set["h"] || c.set["p"]
	if c.server != "" && (hostPort || c.url != "") {
		return "", usagef("--server replaces -h, -p and -L: give one or the other")
	}
	if c.url != "" && hostPort {
		return "", usagef("-L replaces -h and -p: give one or the other")
	}
	if c.server != "" {
		u, err := url.Parse(c.server)
		if err != nil || u.Scheme == "" {
			shown := c.server
			if strings.Contains(shown, "@") {
				shown = "(not shown: it may hold a password)"
			}
			return "", usagef("--server %q is not a URL like mqtt://host:1883 or unix:///path/to/socket", shown)
		}
		tlsScheme := map[string]bool{"mqtts": true, "ssl": true, "tls": true, "wss": true}[u.Scheme]
		if c.useTLS() && !tlsScheme {
			return "", usagef("TLS flags were given but --server %s is not a TLS URL: use mqtts:// or wss://", u.Redacted())
		}
		return c.server, nil
	}
	if c.url != "" {
		return c.parseL()
	}
	scheme, port := "mqtt", 1883
	if c.useTLS() {
		scheme, port = "mqtts", 8883
	}
	if c.port != 0 {
		port = c.port
	}
	if port < 1 || port > 65535 {
		return "", usagef("-p %d: a port is between 1 and 65535", port)
	}
	if c.host == "" {
		return "", usagef("-h needs a host name or address")
	}
	return scheme + "://" + net.JoinHostPort(c.host, strconv.Itoa(port)), nil
}

// parseL takes -L apart: the server URL it returns, and the credentials and
// topic it records.
func (c *connFlags) parseL() (string, error) {
	u, err := url.Parse(c.url)
	if err != nil {
		return "", usagef("-L: cannot parse the URL: %v", redact(err))
	}
	scheme, port := u.Scheme, ""
	switch scheme {
	case "mqtt":
		port = "1883"
		if c.useTLS() {
			scheme, port = "mqtts", "8883"
		}
	case "mqtts":
		port = "8883"
	default:
		return "", usagef("-L wants a mqtt:// or mqtts:// URL, not %q", u.Scheme+"://")
	}
	if u.Hostname() == "" {
		return "", usagef("-L %s: the URL names no host", u.Redacted())
	}
	if u.Port() != "" {
		port = u.Port()
	}
	if u.User != nil {
		c.urlUser, c.urlHasUser = u.User.Username(), true
		c.urlPass, c.urlHasPass = u.User.Password()
	}
	c.urlTopic = strings.TrimPrefix(u.Path, "/")
	return scheme + "://" + net.JoinHostPort(u.Hostname(), port), nil
}

// redact drops the URL from a url.Parse error, which may hold a password.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
