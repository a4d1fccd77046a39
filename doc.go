// Package mqtt is an MQTT 3.1.1 and 5.0 client for Go services: received
// messages arrive on channels, every call that waits takes a context, and
// the client is safe for any number of goroutines.
//
// The program a user writes first subscribes, handles messages and
// publishes replies from one select loop:
//
//	c, err := mqtt.Connect(ctx, mqtt.Config{
//		Servers:  []string{"mqtt://127.0.0.1:1883"},
//		ClientID: "svc-1",
//	})
//	if err != nil {
//		return err // a *mqtt.ConnectError says why the broker refused
//	}
//	defer c.Close()
//	sub, err := c.Subscribe(ctx, "jobs/+", mqtt.AtLeastOnce) // waits for SUBACK
//	if err != nil {
//		return err
//	}
//	for {
//		select {
//		case m := <-sub.Messages(): // the PUBACK follows once m is taken
//			reply := mqtt.Message{Topic: "done/" + m.Topic, Payload: m.Payload, QoS: mqtt.AtLeastOnce}
//			if err := c.Publish(ctx, reply); err != nil { // waits for the PUBACK
//				return err
//			}
//		case <-c.Done(): // stopped for good; Err says why
//			return c.Err()
//		case <-ctx.Done():
//			return c.Disconnect(context.Background())
//		}
//	}
//
// Publishing from inside the receive loop and waiting for the answer, as
// here, never deadlocks, whatever the broker sends meanwhile; see
// Config.MemoryLimit for how the client bounds what it holds.
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
// queues drained by a small delivery goroutine, so keepalive,
// acknowledgements and other subscriptions go on while one consumer is slow.
//
// # Calls
//
//   - Connect dials, exchanges CONNECT/CONNACK (MQTT 5.0 by default, falling
//     back to 3.1.1), and returns a running Client. Client.Connection says
//     what was agreed.
//   - Publish waits until the message is done: written (QoS 0), PUBACK
//     (QoS 1) or PUBCOMP (QoS 2). PublishAsync returns a *Pending at once,
//     whose Done channel fits in a select.
//   - Subscribe and SubscribeFilters wait for SUBACK and return a
//     *Subscription whose Messages channel yields the matching messages; a
//     blocking receive is umqtt's wait_msg, a select with a default case its
//     check_msg. Client.Messages yields messages matching no live
//     subscription, such as those a resumed session delivers before
//     Subscribe is called again. Unsubscribe removes filters.
//   - Ping measures a round trip. Disconnect ends gracefully (DISCONNECT, no
//     will); Close ends at once (the broker publishes the will).
//   - Done and Err tell when and why the client stopped; Events reports
//     every change of connection and Stats counts everything.
//
// A publish whose context ends after its packet was sent stays in flight:
// its acknowledgement is still matched by packet ID and its identifier is
// not reused before then.
//
// # Delivery guarantees
//
//   - QoS 0: at most once. Received QoS 0 messages are buffered per channel
//     (Config.MessageBuffer) within Config.MemoryLimit; without room the
//     Config.QoS0Overflow policy applies: DropNewest (counted in
//     Stats().Dropped) or Block.
//   - QoS 1: at least once. A received message is acknowledged (PUBACK) only
//     after the application has received it from its channel, and
//     acknowledgements go out in arrival order as the specification requires.
//   - QoS 2: exactly once. PUBREC is sent once the application has taken the
//     message; a re-sent PUBLISH with the same packet identifier is answered
//     but not delivered again.
//
// A message that matches several subscriptions of the client is handed to
// each of them. Over MQTT 5.0 the client routes by Subscription Identifier,
// so each subscription gets exactly the copies the broker meant for it;
// over 3.1.1 it routes by topic filter, which is right for brokers that
// send one copy per client (mosquitto does), while a broker that sends one
// copy per matching subscription makes each of them receive every copy.
// Config.OncePerClient delivers each message once in all instead, to the
// earliest matching subscription.
//
// # Connections
//
// Config.Servers takes mqtt://, tcp://, mqtts://, ssl://, tls:// and unix://
// URLs; TLS uses Config.TLSConfig (verification on by default). Other
// schemes are served by a Transport (RegisterTransport, Config.Transports):
// importing package github.com/b4e21b16/mqtt/websocket adds ws:// and
// wss://. A lost connection is re-established automatically
// (Config.Reconnect, with backoff that never storms) and the session
// resumes: unacknowledged packets are re-sent, subscriptions are restored
// if the broker lost them, and calls made meanwhile wait, bounded by
// Config.MemoryLimit and Config.Queue. With Config.Store set to a
// filestore.Store, in-flight QoS 1 and 2 state survives a process crash;
// the outcome of a PublishDurable made before a restart is found again in
// Client.Restored.
//
// # MQTT 5.0
//
// Over MQTT 5.0 the client handles every feature a client takes part in:
// message properties (Message fields), reason codes and strings on every
// acknowledgement and DISCONNECT (as typed errors with ReasonCode
// constants), the limits the broker announces in CONNACK, its own limits
// (Config.ReceiveMaximum, MaxPacketSize, TopicAliasMaximum), topic aliases
// in both directions, subscription options and identifiers (Filter),
// shared subscriptions ("$share/group/filter"), server redirection
// (Config.FollowRedirects), enhanced authentication (Config.Authenticator,
// SCRAM in package scram, Client.Reauthenticate) and will properties.
// Client.Request, Client.Reply and Serve implement request/response.
//
// # Errors
//
// Every error the client returns wraps one of the sentinels (ErrClosed,
// ErrConnectionLost, ErrInvalidArgument, ...) for errors.Is, or is one of
// the typed errors for errors.As: *ConnectError, *ReasonError,
// *SubscribeError, *ArgumentError, *AuthError. errors.go lists them, each
// with when it happens. Credentials never appear in errors, logs or events.
package mqtt
