package mqtt_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
)

// TestMosquittoSlowConsumer stalls the application for five keepalive
// periods while a publisher floods it with 40 MB: the connection
// must survive (no false keepalive timeout), the client's memory must stay
// bounded, and once the application reads again every QoS 1/2 message must
// arrive, in order. The test is not parallel so that the heap it measures is
// its own.
func TestMosquittoSlowConsumer(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Extra: []string{"max_queued_messages 100000"}})
	const (
		keepAlive = time.Second
		n         = 10000
		size      = 4096 // 40 MB in all
	)
	cases := []struct {
		name   string
		v      mqtt.ProtocolVersion
		qos    mqtt.QoS
		policy mqtt.OverflowPolicy
	}{
		{"v5/qos1", mqtt.Version5, 1, mqtt.DropNewest},
		{"v311/qos2", mqtt.Version311, 2, mqtt.DropNewest},
		{"v5/qos0-block", mqtt.Version5, 0, mqtt.Block},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			id := uniqueID(t)
			sub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-sub", Version: tc.v,
				KeepAlive: keepAlive, QoS0Overflow: tc.policy, MessageBuffer: 64, ReceiveMaximum: 32})
			s, err := sub.Subscribe(ctx, id+"/flood", tc.qos)
			if err != nil {
				t.Fatal(err)
			}
			before := heapInUse()
			pub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-pub", Version: tc.v})
			published := make(chan error, 1)
			go func() {
				payload := make([]byte, size)
				for i := range n {
					binary.BigEndian.PutUint32(payload, uint32(i))
					if err := pub.Publish(ctx, mqtt.Message{Topic: id + "/flood", Payload: payload, QoS: tc.qos}); err != nil {
						published <- err
						return
					}
				}
				published <- nil
			}()
			// The application does not read for five keepalive periods.
			select {
			case <-sub.Done():
				t.Fatalf("subscriber lost its connection while stalled: %v", sub.Err())
			case <-time.After(5*keepAlive + 500*time.Millisecond):
			}
			growth := int64(heapInUse()) - int64(before)
			t.Logf("heap growth while stalled: %d KiB", growth/1024)
			if growth > 8<<20 {
				t.Errorf("heap grew by %d MiB while the consumer stalled; want at most 8 MiB", growth>>20)
			}
			for i := range n {
				var m mqtt.Message
				select {
				case m = <-s.Messages():
				case <-time.After(testTimeout):
					var events []string
					for len(sub.Events()) > 0 {
						ev := <-sub.Events()
						events = append(events, fmt.Sprintf("%v %v", ev.Kind, ev.Err))
					}
					t.Fatalf("message %d of %d did not arrive; dropped %d, client error %v, stats %+v, events %q", i, n, sub.Dropped(), sub.Err(), sub.Stats(), events)
				}
				if got := binary.BigEndian.Uint32(m.Payload); got != uint32(i) || !bytes.Equal(m.Payload[4:], make([]byte, size-4)) {
					t.Fatalf("message %d: got sequence %d", i, got)
				}
			}
			if err := <-published; err != nil {
				t.Fatalf("publisher: %v", err)
			}
			if d := sub.Dropped(); d != 0 {
				t.Errorf("Dropped = %d, want 0", d)
			}
			if c := sub.Stats().Connects; c != 1 {
				t.Errorf("the subscriber connected %d times; the stall must not cost the connection", c)
			}
			select {
			case <-sub.Done():
				t.Fatalf("subscriber connection ended: %v", sub.Err())
			default:
			}
		})
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
