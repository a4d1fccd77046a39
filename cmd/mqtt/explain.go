package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"syscall"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/packet"
)

// fail reports err for the command name on stderr and returns the exit
// status: exitUsage for a usage error (and exitOK for --help, which was
// already printed), exitFailure otherwise.
func fail(stderr io.Writer, name string, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "mqtt %s: %s\nRun 'mqtt %s --help' for the flags.\n", name, ue.msg, name)
		return exitUsage
	}
	fmt.Fprintf(stderr, "mqtt %s: %v\n", name, err)
	return exitFailure
}

// connectFailure turns an error from mqtt.Connect into one that says what
// went wrong in the user's terms and what to try. server is the URL dialed.
func connectFailure(server string, err error) error {
	where := displayAddr(server)
	var ce *mqtt.ConnectError
	if errors.As(err, &ce) {
		return fmt.Errorf("the broker at %s refused the connection: %s%s%w", where, refusal(ce), refusalHint(ce), quiet(err))
	}
	var ae *mqtt.ArgumentError
	if errors.As(err, &ae) {
		// The client refused the settings before dialing: a usage error.
		return usagef("%s", strings.TrimPrefix(ae.Error(), "mqtt: "))
	}
	if msg := tlsProblem(err); msg != "" {
		return fmt.Errorf("TLS with %s failed: %s%w", where, msg, quiet(err))
	}
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot connect to %s: connection refused; is a broker running there? choose another with -h/-p or --server%w", where, quiet(err))
	case errors.As(err, &dnsErr):
		return fmt.Errorf("cannot connect to %s: the host name %q does not resolve; check -h or --server%w", where, dnsErr.Name, quiet(err))
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("cannot connect to %s: no such socket; is the broker's unix socket listener at that path?%w", where, quiet(err))
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("cannot connect to %s: no answer in time; is it an MQTT broker, and reachable? raise --connect-timeout for a slow one (%v)%w", where, err, quiet(err))
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("connecting to %s: interrupted%w", where, quiet(err))
	}
	return fmt.Errorf("cannot connect to %s: %w", where, err)
}

// quietError keeps an error in the chain (for errors.Is and errors.As)
// without adding to the message.
type quietError struct{ err error }

func (q quietError) Error() string { return "" }
func (q quietError) Unwrap() error { return q.err }

// quiet wraps err for a %w verb at the end of a message that already says
// what it means.
func quiet(err error) error { return quietError{err} }

// displayAddr shows a server URL the way the user named it: host:port for
// TCP and TLS, the path for a unix socket, the URL otherwise, never with
// credentials.
func displayAddr(server string) string {
	u, err := url.Parse(server)
	if err != nil {
		return "the broker"
	}
	switch u.Scheme {
	case "mqtt", "tcp", "mqtts", "ssl", "tls":
		return u.Host
	case "unix":
		return u.Path
	}
	u.User = nil
	return u.String()
}

// refusal names a CONNACK refusal.
func refusal(ce *mqtt.ConnectError) string {
	v := packet.V5
	if ce.Version == "3.1.1" || (ce.Code > 0 && ce.Code < 0x80) {
		v = packet.V311
	}
	s := ce.Code.ConnackString(v)
	if ce.Reason != "" {
		s += " (" + ce.Reason + ")"
	}
	return s
}

// refusalHint says what to change for a CONNACK refusal.
func refusalHint(ce *mqtt.ConnectError) string {
	switch ce.Code {
	case 4, 5, 0x86, 0x87, 0x8C:
		return "; check the user name and password (-u and -P)"
	case 2, 0x85:
		return "; choose another client id with -i"
	case 1, 0x84:
		return "; choose another protocol version with -V"
	case 3, 0x88, 0x89:
		return "; try again later or use another broker"
	case 0x8A:
		return "; the broker banned this client"
	case 0x9C, 0x9D:
		return "; the broker sends clients to another server"
	}
	return ""
}

// tlsProblem describes a TLS failure in err, or returns "".
func tlsProblem(err error) string {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var record tls.RecordHeaderError
	var alert tls.AlertError
	switch {
	case errors.As(err, &unknown):
		return "the broker's certificate is signed by an authority this machine does not trust; give that authority's certificate with --cafile (or skip verification with --insecure)"
	case errors.As(err, &host):
		valid := ""
		if c := host.Certificate; c != nil {
			names := slices.Clone(c.DNSNames)
			for _, ip := range c.IPAddresses {
				names = append(names, ip.String())
			}
			if len(names) > 0 {
				valid = " (" + strings.Join(names, ", ") + ")"
			}
		}
		return fmt.Sprintf("%v; connect with a host name the certificate is valid for%s, or skip verification with --insecure", host.Error(), valid)
	case errors.As(err, &invalid):
		switch invalid.Reason {
		case x509.Expired:
			return fmt.Sprintf("the broker's certificate is expired or not yet valid (%v); the broker needs a current certificate, or check this machine's clock", invalid.Error())
		}
		return fmt.Sprintf("the broker's certificate is invalid: %v", invalid.Error())
	case errors.As(err, &record):
		return "the server did not answer with TLS; is this a TLS port? (plain MQTT is usually 1883, MQTT over TLS 8883)"
	case errors.As(err, &alert) || strings.Contains(err.Error(), "remote error: tls:"):
		msg := err.Error()
		if strings.Contains(msg, "certificate required") || strings.Contains(msg, "asked for a client certificate") {
			return "the broker requires a client certificate; give one with --cert and --key"
		}
		if strings.Contains(msg, "bad certificate") || strings.Contains(msg, "unknown certificate authority") {
			return "the broker rejected the client certificate (--cert); it must be signed by an authority the broker trusts"
		}
		return msg
	case strings.Contains(err.Error(), "asked for a client certificate"):
		return "the broker requires a client certificate; give one with --cert and --key"
	case strings.Contains(err.Error(), "TLS handshake") && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)):
		return "the server closed the connection during the TLS handshake; is this a TLS port? (plain MQTT is usually 1883, MQTT over TLS 8883)"
	}
	return ""
}

// runFailure explains an error that happened after connecting: a refused
// publish or subscription, a lost connection.
func runFailure(err error) error {
	var se *mqtt.SubscribeError
	var re *mqtt.ReasonError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("the broker refused the subscription: %w; check the topic filters and the broker's access rules", err)
	case errors.As(err, &re):
		return fmt.Errorf("the broker refused: %w", err)
	case errors.Is(err, mqtt.ErrConnectionLost):
		return fmt.Errorf("lost the connection to the broker: %w", err)
	}
	return err
}
