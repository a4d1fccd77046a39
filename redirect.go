package mqtt

import (
	"errors"
	"net"
	"strings"
)

// resolveReference turns an MQTT 5.0 Server Reference into a server. The
// specification leaves its format open; the common form is a space-separated
// list of host[:port] entries, of which the client takes the first. An
// entry with a scheme (mqtt://, ws://, ...) is parsed as a server URL;
// otherwise it keeps the scheme (and WebSocket path) of the server that
// redirected, and that scheme's default port when none is given.
func resolveReference(from server, reference string) (server, error) {
	ref, _, _ := strings.Cut(strings.TrimSpace(reference), " ")
	if ref == "" {
		return server{}, errors.New("empty server reference")
	}
	if strings.Contains(ref, "://") {
		return parseServer(ref)
	}
	if from.transport == transportUnix {
		return server{}, errors.New("a unix socket server cannot redirect to a host")
	}
	u := from.scheme() + "://" + ref
	if from.transport == transportWS || from.transport == transportWSS {
		u += from.wsPath
	}
	srv, err := parseServer(u)
	if err != nil {
		return server{}, err
	}
	if _, _, err := net.SplitHostPort(srv.addr); err != nil {
		return server{}, err
	}
	return srv, nil
}

// scheme returns the canonical URL scheme of the server's transport.
func (s server) scheme() string {
	switch s.transport {
	case transportTLS:
		return "mqtts"
	case transportWS:
		return "ws"
	case transportWSS:
		return "wss"
	case transportUnix:
		return "unix"
	}
	return "mqtt"
}
