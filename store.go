package mqtt

import (
	"fmt"
	"os"
)

// Store keeps the session state that must outlive a connection, and with a
// durable implementation a process crash: the outbound QoS 1 and 2 messages
// that are not yet fully acknowledged, and the packet IDs of inbound QoS 2
// messages that were acknowledged with PUBREC and await PUBREL.
//
// The client calls a Store from one goroutine at a time (its session
// goroutine), but implementations must still be safe for concurrent use.
// The stores of this package fail calls made after Close with an error
// matching os.ErrClosed.
//
// A Store keeps the fields of a Message that matter for publishing. The
// receive-only fields Duplicate and SubscriptionIDs are not stored.
type Store interface {
	// Load returns the stored state: outbound publishes in Seq order and
	// the packet IDs of inbound QoS 2 messages awaiting PUBREL, in
	// ascending order. If part of the stored data was damaged (torn or
	// corrupt record), Load returns what it could recover together with an
	// error matching ErrStoreCorrupt (errors.Is) that says what and where;
	// the caller may go on with the recovered state.
	Load() (out []StoredPublish, in []uint16, err error)
	// SavePublish stores r, replacing any record with the same Seq. It
	// returns once the record is as durable as the store's policy
	// promises. The store keeps its own copy of r: the caller may reuse
	// the buffers of r.Message afterwards.
	SavePublish(r StoredPublish) error
	// DeletePublish removes the record with sequence number seq (no error
	// if absent).
	DeletePublish(seq uint64) error
	// SaveInbound records that the QoS 2 message with packet ID id was
	// received and will be acknowledged with PUBREC.
	SaveInbound(id uint16) error
	// DeleteInbound removes it once PUBREL arrived (no error if absent).
	DeleteInbound(id uint16) error
	// Close releases the store. Calling Close again returns nil.
	Close() error
}

// StoredPublish is an outbound QoS 1 or 2 message that is not yet fully
// acknowledged.
type StoredPublish struct {
	Seq      uint64  // order of publishing, assigned by the client; outbound order is Seq order, never packet-ID order
	PacketID uint16  // 0 until the message has been sent
	Released bool    // QoS 2 only: PUBREC received, PUBREL is the next step
	Message  Message // QoS 1 or 2
}

// errStoreClosed is returned by calls on a closed store.
var errStoreClosed = fmt.Errorf("mqtt: store: %w", os.ErrClosed)

// storedMessage returns the part of m that a Store keeps, sharing m's
// buffers: everything but the receive-only fields.
func storedMessage(m *Message) Message {
	s := *m
	s.Duplicate = false
	s.SubscriptionIDs = nil
	return s
}
