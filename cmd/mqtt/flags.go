package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/b4e21b16/mqtt"
)

// usageError is a mistake in the command line: the command prints it with a
// pointer to --help and exits with exitUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// usagef builds a *usageError.
func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// connFlags are the connection flags shared by every command, named as
// mosquitto_pub and mosquitto_sub name them.
type connFlags struct {
	host, server, url      string
	port                   int
	clientID, user, pass   string
	keepAlive              int
	version                string
	noClean                bool
	sessionExpiry          int
	willTopic, willPayload string
	willQoS                int
	willRetain             bool
	caFile, certFile, key  string
	insecure               bool
	connectTimeout         int
	debug                  bool
	set                    map[string]bool // flags given on the command line
	urlTopic               string          // the topic of -L, if any
	urlUser, urlPass       string          // credentials of -L, if any
	urlHasUser, urlHasPass bool
	clientIDPrefix         string
}

// register defines the connection flags on fs.
func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.host, "h", "localhost", "broker `host`")
	fs.IntVar(&c.port, "p", 0, "broker `port` (default 1883, or 8883 with TLS)")
	fs.StringVar(&c.server, "server", "", "broker `URL` instead of -h/-p: mqtt://, mqtts://, ws://, wss:// or unix:///path")
	fs.StringVar(&c.url, "L", "", "`URL` of the form mqtt(s)://[user[:password]@]host[:port]/topic, instead of -h, -p, -u, -P and -t")
	fs.StringVar(&c.clientID, "i", "", "client `id` (default: a random one)")
	fs.StringVar(&c.user, "u", "", "user `name`")
	fs.StringVar(&c.pass, "P", "", "`password`")
	fs.IntVar(&c.keepAlive, "k", 60, "keepalive in `seconds` (0 disables it)")
	fs.StringVar(&c.version, "V", "", "protocol `version`: mqttv5 (5) or mqttv311 (311); default: 5.0, falling back to 3.1.1")
	fs.BoolVar(&c.noClean, "c", false, "keep the session: no clean session / clean start (needs -i)")
	fs.IntVar(&c.sessionExpiry, "x", 0, "MQTT 5.0 session expiry interval in `seconds` (default: 0, or forever with -c)")
	fs.StringVar(&c.willTopic, "will-topic", "", "`topic` of the last will")
	fs.StringVar(&c.willPayload, "will-payload", "", "`payload` of the last will")
	fs.IntVar(&c.willQoS, "will-qos", 0, "`QoS` of the last will")
	fs.BoolVar(&c.willRetain, "will-retain", false, "retain the last will")
	fs.StringVar(&c.caFile, "cafile", "", "PEM `file` of the certificate authorities to trust (turns TLS on)")
	fs.StringVar(&c.certFile, "cert", "", "PEM `file` of a client certificate (turns TLS on; needs --key)")
	fs.StringVar(&c.key, "key", "", "PEM `file` of the client certificate's private key")
	fs.BoolVar(&c.insecure, "insecure", false, "do not verify the broker's certificate (turns TLS on)")
	fs.IntVar(&c.connectTimeout, "connect-timeout", 10, "give up connecting after this many `seconds`")
	fs.BoolVar(&c.debug, "d", false, "print what happens (connection, subscriptions) on stderr")
}

// parseFlags parses args into fs and records which flags were given. Help
// is printed to stdout; errors are returned as *usageError.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(fs, stdout)
			return err
		}
		return &usageError{msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (flags come as -flag value; quote messages with spaces)", fs.Arg(0))
	}
	return nil
}

// printHelp prints the usage line and the flags of fs to w.
func printHelp(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, "Usage: mqtt %s [flags]\n\nFlags (-name and --name are the same):\n", fs.Name())
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// given returns the set of flags given on the command line.
func given(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// config checks the connection flags and turns them into a Config. Mistakes
// are *usageError; an unreadable certificate file is another error.
func (c *connFlags) config(fs *flag.FlagSet) (mqtt.Config, error) {
	c.set = given(fs)
	var cfg mqtt.Config
	srv, err := c.serverURL()
	if err != nil {
		return cfg, err
	}
	cfg.Servers = []string{srv}
	cfg.ClientID = c.clientID
	if cfg.ClientID == "" {
		if c.noClean {
			return cfg, usagef("-c keeps a session on the broker, which needs a fixed client id: add -i ID")
		}
		cfg.ClientID = c.clientIDPrefix + randomHex(4)
	}
	user, pass, hasPass := c.user, c.pass, c.set["P"]
	if c.urlHasUser && !c.set["u"] {
		user = c.urlUser
	}
	if c.urlHasPass && !c.set["P"] {
		pass, hasPass = c.urlPass, true
	}
	cfg.Username = user
	if hasPass {
		cfg.Password = []byte(pass)
	}
	if c.keepAlive < 0 || c.keepAlive > 65535 {
		return cfg, usagef("-k %d: keepalive must be between 0 and 65535 seconds", c.keepAlive)
	}
	cfg.KeepAlive = time.Duration(c.keepAlive) * time.Second
	if c.keepAlive == 0 {
		cfg.KeepAlive = -1
	}
	if cfg.Version, err = parseVersion(c.version); err != nil {
		return cfg, err
	}
	cfg.CleanStart = !c.noClean
	switch {
	case c.sessionExpiry < 0 || c.sessionExpiry > 1<<32-1:
		return cfg, usagef("-x %d: want 0 to 4294967295 seconds", c.sessionExpiry)
	case c.set["x"]:
		cfg.SessionExpiry = time.Duration(c.sessionExpiry) * time.Second
	case c.noClean:
		cfg.SessionExpiry = time.Duration(1<<32-1) * time.Second
	}
	if c.connectTimeout <= 0 {
		return cfg, usagef("--connect-timeout %d: want a positive number of seconds", c.connectTimeout)
	}
	cfg.ConnectTimeout = time.Duration(c.connectTimeout) * time.Second
	if err := c.will(&cfg); err != nil {
		return cfg, err
	}
	if c.useTLS() {
		if cfg.TLSConfig, err = c.tlsConfig(); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// parseVersion reads -V.
func parseVersion(s string) (mqtt.ProtocolVersion, error) {
	switch strings.ToLower(s) {
	case "":
		return mqtt.VersionAuto, nil
	case "mqttv311", "311", "3.1.1", "v311":
		return mqtt.Version311, nil
	case "mqttv5", "5", "5.0", "v5":
		return mqtt.Version5, nil
	case "mqttv31", "31", "3.1":
		return 0, usagef("-V %s: MQTT 3.1 is not supported; use mqttv311 or mqttv5", s)
	}
	return 0, usagef("-V %q: unknown protocol version; use mqttv5 (or 5) or mqttv311 (or 311)", s)
}

// parseQoS checks a QoS flag's value.
func parseQoS(flagName string, q int) (mqtt.QoS, error) {
	if q < 0 || q > 2 {
		return 0, usagef("%s %d: QoS is 0, 1 or 2", flagName, q)
	}
	return mqtt.QoS(q), nil
}

// will adds the last will to cfg.
func (c *connFlags) will(cfg *mqtt.Config) error {
	if c.willTopic == "" {
		if c.set["will-payload"] || c.set["will-qos"] || c.set["will-retain"] {
			return usagef("--will-payload, --will-qos and --will-retain need --will-topic")
		}
		return nil
	}
	if err := checkTopicName("--will-topic", c.willTopic); err != nil {
		return err
	}
	qos, err := parseQoS("--will-qos", c.willQoS)
	if err != nil {
		return err
	}
	cfg.Will = &mqtt.Message{Topic: c.willTopic, Payload: []byte(c.willPayload), QoS: qos, Retain: c.willRetain}
	return nil
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
