package mqtt

import "time"

// Connection describes the current network connection as the client and
// the broker agreed it in CONNECT and CONNACK. Client.Connection returns
// it; it is replaced on every reconnection and never changes afterwards.
// Fields that only MQTT 5.0 negotiates hold the values 3.1.1 implies.
type Connection struct {
	// Server is the URL connected to (credentials and query values
	// hidden), which may be one a broker redirected the client to.
	Server string
	// Version is the protocol version spoken.
	Version ProtocolVersion
	// SessionPresent is CONNACK's flag: the broker resumed a session.
	SessionPresent bool
	// ClientID is the client identifier in use: Config.ClientID, or the one
	// the broker assigned.
	ClientID string
	// KeepAlive is the keepalive interval in force: the broker's Server
	// Keep Alive when it sent one, otherwise Config.KeepAlive (0: none).
	KeepAlive time.Duration

	// ReceiveMaximum is the most QoS 1 and 2 publishes the client may have
	// unacknowledged at the broker (the broker's Receive Maximum; 65,535
	// when it announced none), and ClientReceiveMaximum the most the
	// broker may have unacknowledged at the client (Config.ReceiveMaximum,
	// announced in MQTT 5.0).
	ReceiveMaximum, ClientReceiveMaximum int
	// MaxPacketSize is the largest packet the broker accepts (its Maximum
	// Packet Size; 268,435,460 when it announced none), and
	// ClientMaxPacketSize the largest the client accepts
	// (Config.MaxPacketSize).
	MaxPacketSize, ClientMaxPacketSize int
	// TopicAliasMaximum is how many topic aliases the client may use when
	// publishing (the broker's Topic Alias Maximum), and
	// ClientTopicAliasMaximum how many the broker may use when sending
	// (Config.TopicAliasMaximum).
	TopicAliasMaximum, ClientTopicAliasMaximum int
	// MaximumQoS is the highest QoS the broker accepts in a PUBLISH.
	MaximumQoS QoS
	// Features the broker supports (MQTT 5.0 CONNACK properties; all true
	// on 3.1.1).
	RetainAvailable, WildcardSubscriptions, SharedSubscriptions, SubscriptionIdentifiers bool
	// ResponseInformation is the topic prefix the broker reserves for this
	// client's replies, when Config.RequestResponseInfo asked for it.
	ResponseInformation string
	// Since is when the connection was established.
	Since time.Time
}

// describe returns what the client and the broker agreed for conn.
func (conn *connection) describe(cfg *Config, clientID string) *Connection {
	return &Connection{
		Server:                  conn.server.url,
		Version:                 ProtocolVersion(conn.version),
		SessionPresent:          conn.sessionPresent,
		ClientID:                clientID,
		KeepAlive:               conn.keepAlive,
		ReceiveMaximum:          conn.receiveMax,
		ClientReceiveMaximum:    int(cfg.ReceiveMaximum),
		MaxPacketSize:           conn.maxPacket,
		ClientMaxPacketSize:     cfg.MaxPacketSize,
		TopicAliasMaximum:       conn.aliasMax,
		ClientTopicAliasMaximum: cfg.TopicAliasMaximum,
		MaximumQoS:              conn.maxQoS,
		RetainAvailable:         conn.retainAvailable,
		WildcardSubscriptions:   conn.wildcardSubs,
		SharedSubscriptions:     conn.sharedSubs,
		SubscriptionIdentifiers: conn.subIDs,
		ResponseInformation:     conn.responseInfo,
		Since:                   conn.started,
	}
}

// Connection returns what the client and the broker agreed for the latest
// connection: the current one, or while the client reconnects the one that
// was lost (Stats().Connected tells which).
func (c *Client) Connection() Connection { return *c.connInfo.Load() }

// SessionPresent reports the CONNACK session-present flag of the latest
// connection: whether the broker resumed a stored session.
func (c *Client) SessionPresent() bool { return c.connInfo.Load().SessionPresent }

// ClientID returns the client identifier in use: Config.ClientID, or the one
// the broker assigned (MQTT 5.0).
func (c *Client) ClientID() string { return c.connInfo.Load().ClientID }

// sessionClientID is the client identifier a new connection uses: the one
// of the latest connection, which the broker may have assigned, so that a
// reconnection resumes the same session; Config.ClientID before the first.
func (c *Client) sessionClientID() string {
	if info := c.connInfo.Load(); info != nil {
		return info.ClientID
	}
	return c.cfg.ClientID
}
