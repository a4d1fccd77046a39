// Package storetest checks implementations of mqtt.Store against the
// contract that the interface's documentation states, for the stores of
// this module and their tests.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Cmp compares stored state with go-cmp. Nil and empty byte slices differ:
// a store keeps the difference (a nil CorrelationData is absent on the
// wire, an empty one is present).
var Cmp = cmp.Options{
	cmpopts.IgnoreUnexported(mqtt.Message{}),
	cmp.Comparer(func(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }),
}

// FullMessage returns a message that sets every field a Store keeps, with
// user properties that repeat a name.
func FullMessage(seq uint64) mqtt.Message {
	return mqtt.Message{
		Topic:           fmt.Sprintf("store/%d/ünïcode", seq),
		Payload:         fmt.Appendf(nil, "payload %d \x00\xff", seq),
		QoS:             mqtt.ExactlyOnce,
		Retain:          true,
		ContentType:     "application/json",
		ResponseTopic:   "store/replies",
		CorrelationData: []byte{0, 1, 2, byte(seq)},
		PayloadUTF8:     true,
		Expiry:          90*time.Second + 1500*time.Millisecond,
		UserProperties: []mqtt.UserProperty{
			{Key: "k", Value: "v1"},
			{Key: "other", Value: ""},
			{Key: "k", Value: "v2"},
		},
	}
}

// WantLoad checks that Load on s returns wantOut and wantIn, and no error.
func WantLoad(t *testing.T, s mqtt.Store, wantOut []mqtt.StoredPublish, wantIn []uint16) {
	t.Helper()
	out, in, err := s.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if d := cmp.Diff(wantOut, out, Cmp); d != "" && len(wantOut)+len(out) > 0 {
		t.Errorf("Load: outbound publishes (-want +got):\n%s", d)
	}
	if !slices.Equal(wantIn, in) {
		t.Errorf("Load: inbound packet IDs: got %v, want %v", in, wantIn)
	}
}

// Contract runs, as parallel subtests of t, the tests that every mqtt.Store
// must pass: what its documentation promises about Load order, replacing by
// Seq, deleting, inbound packet IDs, copies of the caller's buffers, calls
// after Close and concurrent use. open returns a new, empty store and
// arranges for it to be closed when the test that called it ends.
func Contract(t *testing.T, open func(t *testing.T) mqtt.Store) {
	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		WantLoad(t, open(t), nil, nil)
	})

	t.Run("EveryField", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		want := []mqtt.StoredPublish{
			{Seq: 1, PacketID: 0, Message: FullMessage(1)},
			{Seq: 2, PacketID: 65535, Released: true, Message: FullMessage(2)},
			// Nil and empty byte slices stay what they were.
			{Seq: 3, PacketID: 9, Message: mqtt.Message{Topic: "t", QoS: mqtt.AtLeastOnce, Payload: []byte{}, CorrelationData: []byte{}}},
			{Seq: 4, Message: mqtt.Message{Topic: "t", QoS: mqtt.AtLeastOnce}},
			{Seq: math.MaxUint64, Message: mqtt.Message{Topic: "big", QoS: mqtt.AtLeastOnce, Payload: make([]byte, 300<<10), Expiry: time.Nanosecond}},
		}
		for _, r := range want {
			mustOK(t, s.SavePublish(r))
		}
		WantLoad(t, s, want, nil)
	})

	t.Run("ReceiveOnlyFieldsDropped", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		m := FullMessage(1)
		m.Duplicate = true
		m.SubscriptionIDs = []uint32{1, 2}
		mustOK(t, s.SavePublish(mqtt.StoredPublish{Seq: 1, Message: m}))
		WantLoad(t, s, []mqtt.StoredPublish{{Seq: 1, Message: FullMessage(1)}}, nil)
	})

	t.Run("ReplaceBySeq", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		mustOK(t, s.SavePublish(mqtt.StoredPublish{Seq: 7, Message: FullMessage(7)}))
		mustOK(t, s.SavePublish(mqtt.StoredPublish{Seq: 8, Message: FullMessage(8)}))
		// Sent, then PUBREC received: the same message moves through its states.
		mustOK(t, s.SavePublish(mqtt.StoredPublish{Seq: 7, PacketID: 3, Message: FullMessage(7)}))
		replaced := mqtt.StoredPublish{Seq: 7, PacketID: 3, Released: true, Message: mqtt.Message{Topic: "other", QoS: mqtt.AtLeastOnce}}
		mustOK(t, s.SavePublish(replaced))
		WantLoad(t, s, []mqtt.StoredPublish{replaced, {Seq: 8, Message: FullMessage(8)}}, nil)
	})

	t.Run("DeletePublish", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		for seq := uint64(1); seq <= 3; seq++ {
			mustOK(t, s.SavePublish(mqtt.StoredPublish{Seq: seq, Message: FullMessage(seq)}))
		}
		mustOK(t, s.DeletePublish(2))
		mustOK(t, s.DeletePublish(2))  // again
		mustOK(t, s.DeletePublish(99)) // never saved
		WantLoad(t, s, []mqtt.StoredPublish{{Seq: 1, Message: FullMessage(1)}, {Seq: 3, Message: FullMessage(3)}}, nil)
		mustOK(t, s.DeletePublish(1))
		mustOK(t, s.DeletePublish(3))
		WantLoad(t, s, nil, nil)
	})

	t.Run("SeqOrderNotPacketIDOrder", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		seqs := []uint64{500, 3, math.MaxUint64, 0, 42, 1 << 40, 7}
		for i, seq := range seqs {
			// Packet IDs run against Seq order, as after a packet ID wraps.
			mustOK(t, s.SavePublish(mqtt.StoredPublish{Seq: seq, PacketID: uint16(1000 - i), Message: mqtt.Message{Topic: "t", QoS: mqtt.AtLeastOnce}}))
		}
		out, _, err := s.Load()
		mustOK(t, err)
		var got []uint64
		for _, r := range out {
			got = append(got, r.Seq)
		}
		if d := cmp.Diff([]uint64{0, 3, 7, 42, 500, 1 << 40, math.MaxUint64}, got); d != "" {
			t.Errorf("Load order (-want +got):\n%s", d)
		}
	})

	t.Run("Inbound", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		for _, id := range []uint16{300, 1, 65535, 0, 1} {
			mustOK(t, s.SaveInbound(id))
		}
		mustOK(t, s.DeleteInbound(300))
		mustOK(t, s.DeleteInbound(42)) // never saved
		mustOK(t, s.SavePublish(mqtt.StoredPublish{Seq: 1, PacketID: 1, Message: FullMessage(1)}))
		WantLoad(t, s, []mqtt.StoredPublish{{Seq: 1, PacketID: 1, Message: FullMessage(1)}}, []uint16{0, 1, 65535})
	})

	t.Run("CopiesBuffers", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		m := FullMessage(1)
		mustOK(t, s.SavePublish(mqtt.StoredPublish{Seq: 1, Message: m}))
		// The caller reuses its buffers.
		clear(m.Payload)
		clear(m.CorrelationData)
		m.UserProperties[0].Value = "changed"
		want := []mqtt.StoredPublish{{Seq: 1, Message: FullMessage(1)}}
		out, _, err := s.Load()
		mustOK(t, err)
		if d := cmp.Diff(want, out, Cmp); d != "" {
			t.Fatalf("after the caller reused its buffers (-want +got):\n%s", d)
		}
		// And writes into what Load returned.
		out[0].Message.Payload = append(out[0].Message.Payload[:0], "xxxxxxxxxxxxxxxxxxxxxxxx"...)
		out[0].Message.CorrelationData[0] = 'x'
		out[0].Message.UserProperties[0].Value = "changed"
		WantLoad(t, s, want, nil)
	})

	t.Run("Closed", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		mustOK(t, s.SavePublish(mqtt.StoredPublish{Seq: 1, Message: FullMessage(1)}))
		mustOK(t, s.Close())
		mustOK(t, s.Close()) // again
		_, _, err := s.Load()
		errs := []error{
			err,
			s.SavePublish(mqtt.StoredPublish{Seq: 2, Message: FullMessage(2)}),
			s.DeletePublish(1),
			s.SaveInbound(1),
			s.DeleteInbound(1),
		}
		for i, err := range errs {
			if !errors.Is(err, os.ErrClosed) {
				t.Errorf("call %d after Close: got %v, want an error matching os.ErrClosed", i, err)
			}
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		const workers, each = 4, 50
		var wg sync.WaitGroup
		errs := make(chan error, workers*each*4)
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					seq := uint64(w*each + i)
					errs <- s.SavePublish(mqtt.StoredPublish{Seq: seq, Message: FullMessage(seq)})
					errs <- s.SaveInbound(uint16(seq))
					if i%2 == 1 {
						errs <- s.DeletePublish(seq - 1)
						errs <- s.DeleteInbound(uint16(seq))
					}
					_, _, err := s.Load()
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			mustOK(t, err)
		}
		var wantOut []mqtt.StoredPublish
		var wantIn []uint16
		for seq := uint64(0); seq < workers*each; seq++ {
			if seq%2 == 1 {
				wantOut = append(wantOut, mqtt.StoredPublish{Seq: seq, Message: FullMessage(seq)})
			} else {
				wantIn = append(wantIn, uint16(seq))
			}
		}
		WantLoad(t, s, wantOut, wantIn)
	})
}

// mustOK fails the test if err is not nil.
func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
