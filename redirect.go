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
// otherwise it keeps the scheme of the server that redirected, with that
// scheme's default port when none is given, and for a scheme served by a
// Transport the path and query too (a WebSocket request target). custom is
// Config.Transports.
func resolveReference(from server, reference string, custom map[string]Transport) (server, error) {
	ref, _, _ := strings.Cut(strings.TrimSpace(reference), " ")
	if ref == "" {
		return server{}, errors.New("empty server reference")
	}
	if strings.Contains(ref, "://") {
		return parseServer(ref, custom)
	}
	if from.kind == kindUnix {
		return server{}, errors.New("a unix socket server cannot redirect to a host")
	}
	u := from.scheme + "://" + ref
	if from.kind == kindCustom {
		u += from.target.EscapedPath()
		if from.target.RawQuery != "" {
			u += "?" + from.target.RawQuery
		}
	}
	srv, err := parseServer(u, custom)
	if err != nil {
		return server{}, err
	}
	if from.kind == kindCustom {
		return srv, nil
	}
	if _, _, err := net.SplitHostPort(srv.addr); err != nil {
		return server{}, err
	}
	return srv, nil
}
