// Package mqtt is an MQTT 3.1.1 and 5.0 client built from goroutines and
// channels, for Go services that drive MQTT from select loops and from many
// goroutines at once.
//
// # Shape
//
// A Client runs one session goroutine that alone owns the protocol state,
// and per network connection one reader and one writer goroutine:
//
//	caller goroutines          session goroutine                    writer goroutine
//	─────────────────          ─────────────────                    ────────────────
//	Publish / Subscribe ─req─▶ packet IDs, in-flight table,  ─out─▶ bufio → net.Conn,
//	Unsubscribe / Ping         QoS 2 states, subscriptions,         one write per burst
//	      ▲                    keepalive, flow control
//	      │ completion                                              reader goroutine
//	      │                    routes each PUBLISH to the  ◀──in─── net.Conn → bufio →
//	Messages() ◀─ delivery ◀── matching subscription's queue        packet decoder
//
// The graph is acyclic: nothing the application does, or fails to do, can
// block the reader or the session. Received messages wait in per-channel
// queues drained by a small delivery goroutine, so keepalive, acknowledgements
// and other subscriptions go on while one consumer is slow.
//
// # Calls
//
//   - Connect dials, exchanges CONNECT/CONNACK (MQTT 5.0 by default, falling
//     back to 3.1.1), and returns a running Client.
//   - Publish waits until the message is done: written (QoS 0), PUBACK
//     (QoS 1) or PUBCOMP (QoS 2). PublishAsync returns a *Pending at once,
//     whose Done channel fits in a select.
//   - Subscribe and SubscribeFilters wait for SUBACK and return a
//     *Subscription whose Messages channel yields the matching messages; a
//     blocking receive is umqtt's wait_msg, a select with a default case its
//     check_msg. Client.Messages yields messages matching no live
//     subscription, such as those a resumed session delivers before
//     Subscribe is called again.
//   - Ping measures a round trip. Disconnect ends gracefully (DISCONNECT, no
//     will); Close ends at once (the broker publishes the will).
//   - Done and Err tell when and why the client stopped.
//
// Every call that waits takes a context.Context. A publish whose context
// ends after its packet was sent stays in flight: its acknowledgement is
// still matched by packet ID and its identifier is not reused before then.
//
// # Delivery guarantees
//
//   - QoS 0: at most once. Received QoS 0 messages are buffered per channel
//     (Config.MessageBuffer); when a buffer is full the Config.QoS0Overflow
//     policy applies: DropNewest (counted by Client.Dropped) or Block.
//   - QoS 1: at least once. A received message is acknowledged (PUBACK) only
//     after the application has received it from its channel, and
//     acknowledgements go out in arrival order as the specification requires.
//     The broker's flow control (Receive Maximum) stops the stream while the
//     application is not reading, so memory stays bounded.
//   - QoS 2: exactly once. PUBREC is sent once the application has taken the
//     message; a re-sent PUBLISH with the same packet identifier is answered
//     but not delivered again.
//
// # Connections
//
// Config.Servers takes mqtt://, tcp://, mqtts://, ssl://, tls:// and
// unix:// URLs; TLS uses Config.TLSConfig (verification on by default).
// Other schemes are served by a Transport (RegisterTransport,
// Config.Transports): importing package github.com/b4e21b16/mqtt/websocket
// adds ws:// and wss://, on github.com/coder/websocket. A lost
// connection is re-established automatically (Config.Reconnect) and the
// session resumes: unacknowledged packets are re-sent, subscriptions are
// restored if the broker lost them, and calls made meanwhile wait, bounded by
// Config.Queue. Client.Events reports the state changes. With Config.Store
// set to a FileStore, in-flight QoS 1 and 2 state survives a process crash,
// and PublishDurable reports outcomes on Client.DeliveryResults.
//
// # MQTT 5.0
//
// Over MQTT 5.0 the client handles every feature a client takes part in:
// message properties (Message fields), reason codes and strings on every
// acknowledgement and DISCONNECT (as typed errors), the limits the broker
// announces in CONNACK, its own limits (Config.ReceiveMaximum,
// MaxPacketSize, TopicAliasMaximum), topic aliases in both directions
// (outbound ones assigned automatically to the most used topics; see
// Config.DisableTopicAliases), subscription options (Filter), shared
// subscriptions ("$share/group/filter"), subscription identifiers (used to
// route each delivery), server redirection (Config.FollowRedirects),
// enhanced authentication (Config.Authenticator, NewSCRAMSHA256,
// Client.Reauthenticate) and will properties (Config.Will, WillDelay).
// Client.Request, Client.Reply and Serve implement request/response over
// response topics and correlation data.
//
// # Iterators, JSON and observability
//
// Subscription.All returns an iterator for range loops; PublishJSON,
// DecodeJSON and AllJSON are typed helpers over the same channels.
// Config.Logger takes a *slog.Logger: connection lifecycle at Info, each
// packet at Debug, never credentials. Client.Stats returns counters (messages
// and bytes per QoS, in flight, queued, reconnections, last round trip)
// cheap enough for every metrics scrape, and Client.Events reports state
// changes.
//
// # Errors
//
// Errors wrap sentinels for errors.Is (ErrClosed, ErrConnectionLost,
// ErrKeepAliveTimeout, ErrInvalidArgument, ErrProtocolViolation,
// ErrQueueFull, ErrPublishRejected, ErrStoreCorrupt) and typed errors for
// errors.As: *ConnectError (refused CONNACK with its reason code),
// *ReasonError (a refusing PUBACK, PUBREC or a server DISCONNECT),
// *SubscribeError (refused topic filters), *ArgumentError (what was invalid
// and why), *AuthError (enhanced authentication failed on the client's
// side). Credentials never appear in errors or logs.
package mqtt
