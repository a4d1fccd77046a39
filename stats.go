package mqtt

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a Client's counters, from Client.Stats. Message
// counts and bytes (payload bytes) are indexed by QoS. A message counts as
// sent when it is first written to a connection (re-sends after a reconnect
// do not count again) and as received when the broker's PUBLISH arrives
// (re-deliveries of a message the client still holds do not count again).
type Stats struct {
	Sent     [3]MessageCount
	Received [3]MessageCount
	// Inflight is the number of packets sent and awaiting the broker's
	// answer: QoS 1 and 2 publishes not yet completed, subscribes and
	// unsubscribes. Queued is the work waiting for a connection, a packet
	// identifier or the broker's Receive Maximum.
	Inflight int
	Queued   int
	// Unacked is the number of received QoS 1 and 2 messages not yet
	// acknowledged to the broker (held by the application or in order
	// behind one that is).
	Unacked int
	// Dropped counts received QoS 0 messages the client dropped for lack of
	// room (Config.MessageBuffer or Config.MemoryLimit).
	Dropped uint64
	// Deferred counts received QoS 1 and 2 messages the client left
	// unacknowledged for lack of memory (Config.MemoryLimit); the broker
	// keeps them and sends them again after the client reconnects.
	Deferred uint64
	// ReceiveMaximumExceeded counts QoS 1 and 2 messages an MQTT 5.0 broker
	// sent while Config.ReceiveMaximum of them were unacknowledged. The
	// client tolerates them (MemoryLimit bounds their cost).
	ReceiveMaximumExceeded uint64
	// ReusedPacketIDs counts QoS 1 and 2 messages received with a packet
	// identifier the client still held for a different message: the broker
	// had finished with or forgotten that message (a cluster node that
	// took over without its state), and the new one is delivered.
	ReusedPacketIDs uint64
	// HeldBytes is what the client holds for the application now, counted
	// as Config.MemoryLimit counts it: received messages not yet taken
	// (HeldBytes[0]) and publishes queued or in flight (HeldBytes[1]).
	HeldBytes [2]int64
	// Connects counts successful connections, the first one included;
	// Connects-1 is the number of reconnections.
	Connects uint64
	// ConnectionLosses counts connections that ended without the
	// application asking for it.
	ConnectionLosses uint64
	// ReconnectAttempts counts attempts to connect again after a loss,
	// successful or not.
	ReconnectAttempts uint64
	// EventsDropped counts events that found the Events channel full.
	EventsDropped uint64
	// Connected reports whether the client has a connection now.
	Connected bool
	// LastRTT is the round-trip time of the latest answered PINGREQ (a
	// keepalive ping or Client.Ping); zero before the first.
	LastRTT time.Duration
}

// MessageCount is a number of messages and their payload bytes.
type MessageCount struct {
	Messages uint64
	Bytes    uint64
}

// counters are the atomic counters behind Stats. The sent and received
// counts are updated on the publish and receive paths; the gauges are
// written by the session goroutine after each change it makes.
type counters struct {
	sentMsgs, sentBytes [3]atomic.Uint64
	recvMsgs, recvBytes [3]atomic.Uint64
	connects            atomic.Uint64
	losses              atomic.Uint64
	attempts            atomic.Uint64
	dropped             atomic.Uint64
	deferred            atomic.Uint64
	rmExceeded          atomic.Uint64
	reusedIDs           atomic.Uint64
	eventsDropped       atomic.Uint64
	inflight            atomic.Int64
	queued              atomic.Int64
	unacked             atomic.Int64
	lastRTT             atomic.Int64
}

func (k *counters) sent(qos QoS, n int) {
	k.sentMsgs[qos].Add(1)
	k.sentBytes[qos].Add(uint64(n))
}

func (k *counters) received(qos byte, n int) {
	k.recvMsgs[qos].Add(1)
	k.recvBytes[qos].Add(uint64(n))
}

// Stats returns a snapshot of the client's counters. It reads atomics only,
// never waits for the session, and can be called as often as needed (for
// example by a metrics exporter on every scrape).
func (c *Client) Stats() Stats {
	k := &c.counters
	st := Stats{
		Inflight:  int(k.inflight.Load()),
		Queued:    int(k.queued.Load()),
		Unacked:   int(k.unacked.Load()),
		Dropped:   k.dropped.Load(),
		Deferred:  k.deferred.Load(),
		HeldBytes: [2]int64{c.mem.in.Load(), c.mem.out.Load()},
		Connects:  k.connects.Load(),
		Connected: c.conn.Load() != nil,
		LastRTT:   time.Duration(k.lastRTT.Load()),

		ReceiveMaximumExceeded: k.rmExceeded.Load(),
		ReusedPacketIDs:        k.reusedIDs.Load(),
		ConnectionLosses:       k.losses.Load(),
		ReconnectAttempts:      k.attempts.Load(),
		EventsDropped:          k.eventsDropped.Load(),
	}
	for q := range 3 {
		st.Sent[q] = MessageCount{Messages: k.sentMsgs[q].Load(), Bytes: k.sentBytes[q].Load()}
		st.Received[q] = MessageCount{Messages: k.recvMsgs[q].Load(), Bytes: k.recvBytes[q].Load()}
	}
	return st
}

// publishGauges publishes the session's in-flight and queue sizes for Stats.
func (s *session) publishGauges() {
	k := &s.c.counters
	k.inflight.Store(int64(len(s.out)))
	k.queued.Store(int64(len(s.waiting) + len(s.overflow)))
	k.unacked.Store(int64(len(s.inByID)))
}
