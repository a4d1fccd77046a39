package mqtt

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/b4e21b16/mqtt/packet"
)

// ProtocolVersion selects the MQTT version spoken on the wire.
type ProtocolVersion byte

// Protocol versions for Config.Version.
const (
	// VersionAuto speaks MQTT 5.0 and falls back to 3.1.1 when the broker
	// refuses 5.0 with "unsupported protocol version". It is the default.
	VersionAuto ProtocolVersion = 0
	// Version311 pins MQTT 3.1.1.
	Version311 ProtocolVersion = 4
	// Version5 pins MQTT 5.0.
	Version5 ProtocolVersion = 5
)

// OverflowPolicy says what happens to a received QoS 0 message for which
// the client has no room: its receiving channel's buffer (MessageBuffer) is
// full, or the messages held for the application reach MemoryLimit.
type OverflowPolicy byte

const (
	// DropNewest discards the arriving QoS 0 message and counts it in
	// Stats().Dropped. Reading from the connection continues, so keepalive,
	// acknowledgements and other subscriptions are unaffected. The default.
	DropNewest OverflowPolicy = iota
	// Block ignores MessageBuffer and holds QoS 0 messages up to
	// MemoryLimit; beyond it, the client stops reading from the connection
	// until the application makes room, pushing back on the broker through
	// TCP flow control. Keepalive keeps running, and the client does not
	// declare the connection dead while it is itself holding the reading
	// back. It never holds the reading back while a call waits for the
	// broker's answer (a QoS 1 or 2 publish, a subscribe, a ping...), since
	// that answer would then never arrive: a message that does not fit is
	// then dropped and counted as under DropNewest. The broker may drop
	// or disconnect by its own rules while it cannot write.
	Block
)

// Dialer opens a network connection; net.Dialer.DialContext has this shape.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// Config configures a Client. The zero value of every field is a sane
// default, except Servers, which must name at least one broker.
type Config struct {
	// Servers lists broker URLs, tried in order. Schemes:
	//
	//	mqtt://host:port   (or tcp://)           TCP, port 1883 by default
	//	mqtts://host:port  (or ssl://, tls://)   TLS, port 8883 by default
	//	unix:///path/to/socket                   unix domain socket
	//
	// Other schemes are served by a Transport from Transports or
	// registered with RegisterTransport: importing package
	// github.com/b4e21b16/mqtt/websocket registers ws:// and wss://
	// (WebSocket, whose path and query are the request target). A URL that
	// does not parse or has a scheme nothing serves makes Connect fail with
	// an *ArgumentError before anything is dialed.
	//
	// Errors, logs and events show a server URL with its password, query
	// values and fragment replaced by "xxxxx", keeping the parameter names
	// (wss://user:xxxxx@host/mqtt?token=xxxxx). Percent-encode a '/', '?',
	// '#' or '@' in a password, and an '@' in a path or query, as RFC 3986
	// requires: otherwise the URL may be misread, and is shown with
	// everything up to its last '@' hidden.
	Servers []string
	// ClientID identifies the session. Empty asks the broker to assign one
	// (MQTT 5.0 reports it through Client.ClientID; 3.1.1 then requires
	// CleanStart).
	ClientID string
	// Username and Password authenticate the client. Neither appears in
	// the client's errors, logs or events; but printing a Config with the
	// fmt package (%v, %+v) shows them, so do not log a Config.
	Username string
	Password []byte
	// KeepAlive is the longest the client stays silent; it sends PINGREQ
	// when it has sent nothing for this long. Default 60 s; negative
	// disables keepalive. Sent to the broker in whole seconds (at most 65535).
	KeepAlive time.Duration
	// PingTimeout is how long the client waits for any packet after a
	// PINGREQ before declaring the connection lost (ErrKeepAliveTimeout).
	// Default: KeepAlive, at most 30 s.
	PingTimeout time.Duration
	// CleanStart discards any session state on the broker (3.1.1: Clean
	// Session).
	CleanStart bool
	// SessionExpiry is how long an MQTT 5.0 broker keeps the session after
	// the connection ends (seconds resolution). Zero ends the session with
	// the connection, as the 5.0 specification defines; set it, with
	// CleanStart false, for a persistent session. Ignored by 3.1.1, where a
	// session without CleanStart persists.
	SessionExpiry time.Duration
	// Will is the last will, published by the broker when the connection
	// ends without a DISCONNECT. Its Topic must be a valid topic name.
	Will *Message
	// Version selects the protocol version (default VersionAuto).
	Version ProtocolVersion
	// ConnectTimeout bounds each attempt to connect to a server: dialing,
	// the TLS handshake (or the Transport's dial) and the CONNECT/CONNACK
	// exchange.
	// Default 30 s.
	ConnectTimeout time.Duration
	// Dialer opens the network connection, for proxies and tests; the
	// default is a net.Dialer. It is called with network "tcp" and
	// "host:port" (for TLS servers too, which are layered on the connection
	// it returns), or with "unix" and the socket path; a Transport receives
	// it to open its own connections.
	Dialer Dialer
	// TLSConfig configures TLS for mqtts, ssl and tls servers, and for the
	// schemes of Transports that use TLS, such as wss; other schemes ignore
	// it. Nil means the defaults: the system's root
	// certificates and the host name from the URL. The client uses a copy
	// and sets its ServerName from the URL when empty, so certificates are
	// always verified against a name unless InsecureSkipVerify is set. Set
	// RootCAs for a private CA, Certificates for mutual TLS (a client
	// certificate), NextProtos for ALPN.
	TLSConfig *tls.Config
	// Transports serves URL schemes the client does not handle itself, for
	// this client, ahead of the transports registered with
	// RegisterTransport. Keys are lowercase schemes, such as "wss"; the
	// schemes the client handles itself cannot be served.
	Transports map[string]Transport
	// MaxPacketSize is the largest packet the client accepts from the broker
	// (announced in MQTT 5.0; a larger packet ends the connection before its
	// body is read, whatever the transport). Default 16 MiB; at most
	// 268,435,460.
	MaxPacketSize int
	// ReceiveMaximum is the most unacknowledged QoS 1 and 2 messages the
	// broker may send at once (announced in MQTT 5.0). The client
	// acknowledges a message only when the application has taken it. A
	// broker that sends more is tolerated (mosquitto 2.0 does, and 3.1.1
	// brokers are never told) and counted in Stats().ReceiveMaximumExceeded;
	// MemoryLimit bounds what such messages cost. Default 256.
	ReceiveMaximum uint16
	// MemoryLimit bounds the bytes of the messages the client holds on the
	// application's behalf: received messages waiting to be taken from a
	// channel, and publishes waiting to be sent or acknowledged (counted
	// with their topic, payload, properties and a small per-message
	// overhead). Publishes may use at most half of it, so that receiving
	// always has room. Default 8 MiB. A message larger than the room left
	// is let through when nothing else is held in its direction, so one
	// message of any size the packet limits allow can always pass.
	//
	// What happens at the limit: a publishing call waits for room (or
	// fails with ErrQueueFull under Queue.Full QueueFail); a received QoS 0
	// message follows QoS0Overflow; a received QoS 1 or 2 message is held
	// back with reading, as Block does, and when a call waits for the
	// broker's answer it is instead left unacknowledged (counted in
	// Stats().Deferred, with an EventOverflow): the broker keeps it, and the
	// client reconnects, resuming the session, once the application has
	// caught up, so that the broker sends it again.
	MemoryLimit int
	// MessageBuffer is the number of QoS 0 messages buffered per receiving
	// channel before the OverflowPolicy applies. Default 1024.
	MessageBuffer int
	// QoS0Overflow chooses what happens to a QoS 0 message when
	// MessageBuffer is full or MemoryLimit is reached.
	QoS0Overflow OverflowPolicy
	// OncePerClient chooses how a message that matches several
	// subscriptions of the client is delivered. By default each matching
	// subscription receives it: over MQTT 5.0 the broker tags every copy
	// with the Subscription Identifiers it is for and the client routes by
	// them; over 3.1.1 the client routes each copy it receives by topic,
	// which gives each subscription the message once with brokers that send
	// one copy per client (mosquitto), and every copy with brokers that
	// send one per matching subscription. With OncePerClient the
	// application receives the message once in all, on the channel of the
	// earliest matching subscription: over 5.0 the copies tagged for other
	// subscriptions are acknowledged and dropped; over 3.1.1 each copy
	// goes there (so a broker that sends several delivers them all there).
	OncePerClient bool
	// Logger receives connection lifecycle events at Info and per-packet
	// events at Debug. Nil disables logging.
	Logger *slog.Logger

	// MaxInflight bounds the QoS 1 and 2 publishes in flight at once (sent,
	// not yet fully acknowledged); more wait in order. 0 means the broker's
	// Receive Maximum on MQTT 5.0 and no bound below 65,535 on 3.1.1, where
	// the broker cannot announce one: set it below a 3.1.1 broker's own
	// limit (mosquitto's max_inflight_messages, 20 by default, beyond which
	// mosquitto 2.0 acknowledges QoS 1 messages but drops them).
	MaxInflight int

	// Reconnect configures automatic reconnection (on by default).
	Reconnect ReconnectConfig
	// Queue bounds the publishes waiting to be sent while reconnecting.
	Queue QueueConfig
	// Store keeps in-flight QoS 1 and 2 state; with a filestore.Store it survives
	// a process crash. Nil keeps the state in memory, in the client.
	Store Store
	// ManualAck makes the application acknowledge each received QoS 1 and
	// 2 message with Message.Ack, in any order, instead of the client
	// acknowledging it when the application receives it from its channel.
	ManualAck bool

	// MQTT 5.0 options; 3.1.1 connections ignore them.

	// WillDelay is the Will Delay Interval: the broker publishes the will
	// this long after the connection ends without DISCONNECT, or not at all
	// if the client reconnects (resuming the session) before then. Seconds
	// resolution.
	WillDelay time.Duration
	// TopicAliasMaximum is the most topic aliases the broker may use when
	// sending to the client (inbound aliases, resolved by the client). Zero,
	// the default, allows none: aliases save the broker a few bytes per
	// message, and some brokers get them wrong across a session resume
	// (mochi-mqtt 2.7 sends an alias it never defined on the new
	// connection, which the client must treat as a protocol error).
	TopicAliasMaximum int
	// DisableTopicAliases stops the client from assigning topic aliases to
	// what it publishes. By default, when the broker allows aliases (its
	// Topic Alias Maximum in CONNACK), the most frequently published topics
	// are sent as a 2-byte alias after their first use on a connection.
	DisableTopicAliases bool
	// RequestResponseInfo asks the broker for Response Information (a topic
	// prefix it reserves for this client's replies), which then becomes the
	// base of the reply topic Request uses; see Client.ResponseInformation.
	RequestResponseInfo bool
	// NoProblemInfo asks the broker to leave Reason Strings and User
	// Properties out of every packet but PUBLISH, CONNACK and DISCONNECT
	// (Request Problem Information 0).
	NoProblemInfo bool
	// ResponseTopic is the topic Request subscribes to for replies. Empty
	// means "reply/" followed by random hexadecimal digits (under the
	// broker's Response Information when RequestResponseInfo is set and the
	// broker provides it).
	ResponseTopic string
	// FollowRedirects makes the client follow a broker's redirection: a
	// CONNACK or DISCONNECT with reason Use another server (0x9C) or Server
	// moved (0x9D) and a Server Reference. The client then connects to the
	// referenced server (a host or host:port, or a URL, in the scheme of
	// the server that redirected) before the configured ones. Off by
	// default, since the reference comes from the network.
	FollowRedirects bool
	// Authenticator runs MQTT 5.0 enhanced authentication (AUTH packets);
	// see github.com/b4e21b16/mqtt/scram. Nil uses Username and Password only.
	Authenticator Authenticator
}

const (
	defaultKeepAlive      = 60 * time.Second
	defaultConnectTimeout = 30 * time.Second
	defaultMaxPacketSize  = 16 << 20
	defaultReceiveMaximum = 256
	defaultMessageBuffer  = 1024
	maxPingTimeout        = 30 * time.Second
)

// withDefaults validates cfg and returns a copy with defaults filled in.
func (cfg Config) withDefaults() (Config, []server, error) {
	servers, err := cfg.parseServers()
	if err != nil {
		return cfg, nil, err
	}
	for _, step := range []func(*Config) error{(*Config).timingDefaults, (*Config).limitDefaults, (*Config).checkIdentity, (*Config).checkV5} {
		if err := step(&cfg); err != nil {
			return cfg, nil, err
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Reconnect.withDefaults()
	cfg.Queue.withDefaults()
	if cfg.Dialer == nil {
		cfg.Dialer = defaultDialer()
	}
	return cfg, servers, nil
}

// parseServers checks Servers and Transports and parses every server URL.
func (cfg *Config) parseServers() ([]server, error) {
	if len(cfg.Servers) == 0 {
		return nil, ErrNoServers
	}
	if err := checkTransports(cfg.Transports); err != nil {
		return nil, err
	}
	servers := make([]server, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		srv, err := parseServer(s, cfg.Transports)
		if err == nil {
			err = checkPlatform(srv, cfg.Dialer != nil)
		}
		if err != nil {
			return nil, err
		}
		servers = append(servers, srv)
	}
	return servers, nil
}

// timingDefaults checks and fills in KeepAlive, PingTimeout and
// ConnectTimeout.
func (cfg *Config) timingDefaults() error {
	switch {
	case cfg.KeepAlive == 0:
		cfg.KeepAlive = defaultKeepAlive
	case cfg.KeepAlive < 0:
		cfg.KeepAlive = 0
	case cfg.KeepAlive < time.Second:
		cfg.KeepAlive = time.Second
	case cfg.KeepAlive > 65535*time.Second:
		return &ArgumentError{What: "KeepAlive", Value: cfg.KeepAlive.String(), Err: fmt.Errorf("more than 65535 s")}
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = min(cfg.KeepAlive, maxPingTimeout)
		if cfg.PingTimeout == 0 {
			cfg.PingTimeout = maxPingTimeout
		}
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	return nil
}

// limitDefaults fills in the size and count limits.
func (cfg *Config) limitDefaults() error {
	if cfg.MaxPacketSize <= 0 {
		cfg.MaxPacketSize = defaultMaxPacketSize
	}
	cfg.MaxPacketSize = min(cfg.MaxPacketSize, packet.MaxPacketSize)
	if cfg.ReceiveMaximum == 0 {
		cfg.ReceiveMaximum = defaultReceiveMaximum
	}
	if cfg.MessageBuffer <= 0 {
		cfg.MessageBuffer = defaultMessageBuffer
	}
	if cfg.MemoryLimit <= 0 {
		cfg.MemoryLimit = defaultMemoryLimit
	}
	return nil
}

// checkIdentity checks the version, the credentials and the will.
func (cfg *Config) checkIdentity() error {
	if cfg.Version != VersionAuto && cfg.Version != Version311 && cfg.Version != Version5 {
		return &ArgumentError{What: "Version", Value: fmt.Sprint(cfg.Version), Err: fmt.Errorf("want VersionAuto, Version311 or Version5")}
	}
	if err := checkString(cfg.ClientID); err != nil {
		return &ArgumentError{What: "ClientID", Value: cfg.ClientID, Err: err}
	}
	if err := checkString(cfg.Username); err != nil {
		return &ArgumentError{What: "Username", Value: "(hidden)", Err: err}
	}
	if len(cfg.Password) > 65535 {
		return &ArgumentError{What: "Password", Value: "(hidden)", Err: fmt.Errorf("longer than 65,535 bytes (%d)", len(cfg.Password))}
	}
	if cfg.Will != nil {
		return validateWill(cfg.Will)
	}
	return nil
}

// checkV5 checks the MQTT 5.0 options.
func (cfg *Config) checkV5() error {
	if cfg.WillDelay < 0 || cfg.WillDelay > 0xffffffff*time.Second {
		return &ArgumentError{What: "WillDelay", Value: cfg.WillDelay.String(), Err: fmt.Errorf("want 0 to 4294967295 s")}
	}
	switch {
	case cfg.TopicAliasMaximum < 0:
		cfg.TopicAliasMaximum = 0
	case cfg.TopicAliasMaximum > 65535:
		return &ArgumentError{What: "TopicAliasMaximum", Value: fmt.Sprint(cfg.TopicAliasMaximum), Err: fmt.Errorf("more than 65535")}
	}
	if cfg.ResponseTopic != "" {
		if err := packet.ValidTopicName(cfg.ResponseTopic); err != nil {
			return &ArgumentError{What: "ResponseTopic", Value: cfg.ResponseTopic, Err: err}
		}
	}
	return nil
}
