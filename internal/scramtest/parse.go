package scramtest

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// clientFirst is a parsed client-first-message.
type clientFirst struct {
	gs2Header string // "n,," or "y,," with any authorization identity
	bare      string // client-first-message-bare
	username  string // unescaped
	nonce     string
}

// parseClientFirst parses "<n|y>,[a=<authzid>],n=<user>,r=<nonce>[,ext...]".
func parseClientFirst(msg string) (clientFirst, error) {
	var cf clientFirst
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok {
		return cf, errors.New("scramtest: client-first-message without GS2 header")
	}
	switch {
	case flag == "n" || flag == "y":
	case strings.HasPrefix(flag, "p="):
		return cf, errors.New("scramtest: channel binding is not supported")
	default:
		return cf, fmt.Errorf("scramtest: bad channel binding flag %q", flag)
	}
	authzid, bare, ok := strings.Cut(rest, ",")
	if !ok || (authzid != "" && !strings.HasPrefix(authzid, "a=")) {
		return cf, errors.New("scramtest: malformed GS2 header")
	}
	cf.gs2Header = flag + "," + authzid + ","
	cf.bare = bare

	attrs := strings.Split(bare, ",")
	if strings.HasPrefix(attrs[0], "m=") {
		return cf, errors.New("scramtest: unsupported mandatory extension")
	}
	if len(attrs) < 2 {
		return cf, errors.New("scramtest: client-first-message-bare needs n= and r=")
	}
	name, ok := strings.CutPrefix(attrs[0], "n=")
	if !ok {
		return cf, errors.New("scramtest: first attribute is not n=")
	}
	user, err := unescapeName(name)
	if err != nil {
		return cf, err
	}
	nonce, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok || nonce == "" || !printable(nonce) {
		return cf, errors.New("scramtest: second attribute is not a printable nonce r=")
	}
	cf.username = user
	cf.nonce = nonce
	return cf, nil
}

// clientFinal is a parsed client-final-message.
type clientFinal struct {
	channelBinding string // decoded c= value
	nonce          string
	withoutProof   string // client-final-message-without-proof
	proof          []byte
}

// parseClientFinal parses "c=<base64>,r=<nonce>[,ext...],p=<base64>".
func parseClientFinal(msg string) (clientFinal, error) {
	var cf clientFinal
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return cf, errors.New("scramtest: client-final-message without proof p=")
	}
	cf.withoutProof = msg[:i]
	proof, err := base64.StdEncoding.Strict().DecodeString(msg[i+len(",p="):])
	if err != nil {
		return cf, fmt.Errorf("scramtest: proof: %w", err)
	}
	cf.proof = proof

	attrs := strings.Split(cf.withoutProof, ",")
	if len(attrs) < 2 {
		return cf, errors.New("scramtest: client-final-message needs c= and r=")
	}
	cb64, ok := strings.CutPrefix(attrs[0], "c=")
	if !ok {
		return cf, errors.New("scramtest: first attribute is not c=")
	}
	cb, err := base64.StdEncoding.Strict().DecodeString(cb64)
	if err != nil {
		return cf, fmt.Errorf("scramtest: channel binding: %w", err)
	}
	cf.channelBinding = string(cb)
	nonce, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok {
		return cf, errors.New("scramtest: second attribute is not r=")
	}
	cf.nonce = nonce
	return cf, nil
}

// unescapeName undoes the "=2C" and "=3D" escapes of a saslname; any other
// '=' is an error.
func unescapeName(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", errors.New("scramtest: bad escape in username")
		}
		i += 2
	}
	return b.String(), nil
}

// printable reports whether s holds only printable ASCII other than ','.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == ',' {
			return false
		}
	}
	return true
}
