package mqtt_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
)

// The stalled-consumer tests allow the live heap to grow beyond
// Config.MemoryLimit by a few messages and a few MiB:
//   - at the end of the stall, when nothing moves any more, by two messages
//     (the one waiting for room and the one the reader holds) and
//     settledSlack for the read and write buffers;
//   - at its peak, sampled while the flood runs, by four messages and
//     peakSlack, since a collection counts as live what is allocated while
//     it marks: under DropNewest, messages dropped as fast as they arrive.
const (
	settledSlack = 2 << 20
	peakSlack    = 4 << 20
)

// TestMosquittoStalledConsumerMemory stalls the application for five
// keepalive periods while a publisher floods it through mosquitto, whose
// in-flight window and queue are unlimited, with 64-byte and 1 MiB
// messages. The heap, sampled throughout, must stay within the client's
// MemoryLimit plus a small constant; the connection must survive (no false
// keepalive timeout, no reconnection); and once the application reads
// again, every QoS 1/2 message (and every QoS 0 message under Block) must
// arrive, in order, while every QoS 0 message under DropNewest either
// arrives or is counted as dropped. The test is not parallel so that the
// heap it measures is its own.
func TestMosquittoStalledConsumerMemory(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Extra: []string{
		"max_inflight_messages 0", "max_queued_messages 0", "max_queued_bytes 0"}})
	const keepAlive = time.Second
	cases := []struct {
		name   string
		v      mqtt.ProtocolVersion
		qos    mqtt.QoS
		policy mqtt.OverflowPolicy
		size   int
		n      int
	}{
		{"64B/qos0-drop", mqtt.Version5, 0, mqtt.DropNewest, 64, 50000},
		{"64B/qos0-block", mqtt.Version5, 0, mqtt.Block, 64, 50000},
		{"64B/qos1", mqtt.Version311, 1, mqtt.DropNewest, 64, 50000},
		{"4KiB/qos2", mqtt.Version311, 2, mqtt.DropNewest, 4096, 5000},
		{"1MiB/qos0-drop", mqtt.Version5, 0, mqtt.DropNewest, 1 << 20, 40},
		{"1MiB/qos1", mqtt.Version5, 1, mqtt.DropNewest, 1 << 20, 40},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			id := uniqueID(t)
			// MessageBuffer does not bound QoS 0 here: MemoryLimit does.
			// A generous PingTimeout: what is tested is that the stall costs
			// neither memory nor the connection, not how fast a loaded
			// machine answers pings.
			sub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-sub", Version: tc.v,
				KeepAlive: keepAlive, PingTimeout: 5 * time.Second, QoS0Overflow: tc.policy, MessageBuffer: 1 << 20})
			s, err := sub.Subscribe(ctx, id+"/flood", tc.qos)
			if err != nil {
				t.Fatal(err)
			}
			before := liveHeap()
			sampler := sampleHeap()
			// The publisher runs in a process of its own, so that the heap
			// measured here is the subscriber's.
			published := floodFrom(ctx, t, b.URL(), id+"/flood", tc.v, tc.qos, tc.size, tc.n)
			// The application does not read for five keepalive periods.
			select {
			case <-sub.Done():
				t.Fatalf("subscriber lost its connection while stalled: %v", sub.Err())
			case <-time.After(5 * keepAlive):
			}
			peak := sampler.stop() - before
			settled := liveHeap() - before
			st := sub.Stats()
			t.Logf("heap growth while stalled: peak %.1f MiB, at the end %.1f MiB (MemoryLimit 8 MiB); held %d bytes, dropped %d, deferred %d",
				float64(peak)/(1<<20), float64(settled)/(1<<20), st.HeldBytes[0], st.Dropped, st.Deferred)
			const limit = 8 << 20
			if bound := int64(limit + 2*tc.size + settledSlack); settled > bound {
				t.Errorf("heap grew by %.1f MiB over the stall; want at most %.1f MiB: MemoryLimit, two messages and %d MiB",
					float64(settled)/(1<<20), float64(bound)/(1<<20), settledSlack>>20)
			}
			if bound := int64(limit + 4*tc.size + peakSlack); peak > bound {
				t.Errorf("heap grew by %.1f MiB at its peak while the consumer stalled; want at most %.1f MiB: MemoryLimit, four messages and %d MiB",
					float64(peak)/(1<<20), float64(bound)/(1<<20), peakSlack>>20)
			}
			if st.HeldBytes[0] > 8<<20+int64(tc.size)+4096 {
				t.Errorf("Stats().HeldBytes[0] = %d, more than MemoryLimit and one message", st.HeldBytes[0])
			}

			got, next := 0, uint32(0)
			for got < tc.n && (tc.qos > 0 || tc.policy == mqtt.Block || uint64(got)+sub.Stats().Dropped < uint64(tc.n)) {
				var m mqtt.Message
				select {
				case m = <-s.Messages():
				case err := <-published:
					if err != nil {
						t.Fatal(err)
					}
					published = nil // it finished; messages may still be on their way
					continue
				case <-ctx.Done():
					t.Fatalf("%d of %d messages arrived (dropped %d); client error %v, stats %+v, events %s", got, tc.n, sub.Stats().Dropped, sub.Err(), sub.Stats(), drainEvents(sub))
				}
				seq := binary.BigEndian.Uint32(m.Payload)
				if seq < next || (seq != next && (tc.qos > 0 || tc.policy == mqtt.Block)) {
					t.Fatalf("message %d arrived when %d was expected", seq, next)
				}
				if len(m.Payload) != tc.size || !bytes.Equal(m.Payload[4:], make([]byte, tc.size-4)) {
					t.Fatalf("message %d: payload of %d bytes, want %d zero-padded", seq, len(m.Payload), tc.size)
				}
				next = seq + 1
				got++
			}
			if published != nil {
				if err := <-published; err != nil {
					t.Fatal(err)
				}
			}
			st = sub.Stats()
			if tc.qos > 0 || tc.policy == mqtt.Block {
				if st.Dropped != 0 || st.Deferred != 0 {
					t.Errorf("Dropped = %d, Deferred = %d; want 0", st.Dropped, st.Deferred)
				}
			} else if uint64(got)+st.Dropped != uint64(tc.n) {
				t.Errorf("%d received + %d dropped, want %d", got, st.Dropped, tc.n)
			}
			if st.Connects != 1 || st.ConnectionLosses != 0 {
				t.Errorf("the subscriber connected %d times and lost %d connections; the stall must not cost the connection", st.Connects, st.ConnectionLosses)
			}
		})
	}
}

// liveHeap returns the bytes of heap objects found live by a collection,
// not counting what other goroutines allocate after it.
func liveHeap() int64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// heapSampler records the largest live heap seen, sampling every 100 ms.
type heapSampler struct {
	done chan struct{}
	peak chan int64
}

func sampleHeap() *heapSampler {
	h := &heapSampler{done: make(chan struct{}), peak: make(chan int64, 1)}
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		peak := liveHeap()
		for {
			select {
			case <-tick.C:
				peak = max(peak, liveHeap())
			case <-h.done:
				h.peak <- max(peak, liveHeap())
				return
			}
		}
	}()
	return h
}

// stop ends the sampling and returns the peak.
func (h *heapSampler) stop() int64 {
	close(h.done)
	return <-h.peak
}

// TestMosquittoKeepAliveWhileStalled stalls the application for ten
// keepalive intervals (keepalive 1 s; mosquitto closes a connection after
// 1.5 intervals of silence) while a publisher floods it, with a memory
// limit small enough that the client holds reading back: QoS 0 under
// OverflowPolicy Block, and QoS 1. The client must keep the connection
// (keepalive PINGREQs go out although their answers sit unread, and the
// client does not time out the broker for answers it chose not to read),
// and every message must then arrive in order.
func TestMosquittoKeepAliveWhileStalled(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Extra: []string{"max_inflight_messages 0", "max_queued_messages 0"}})
	const (
		keepAlive = time.Second
		n         = 2000
		size      = 4096
	)
	for _, ver := range versions {
		for _, tc := range []struct {
			name   string
			qos    mqtt.QoS
			policy mqtt.OverflowPolicy
		}{{"qos0-block", 0, mqtt.Block}, {"qos1", 1, mqtt.DropNewest}} {
			t.Run(ver.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				id := uniqueID(t)
				// The broker must hear from the client every interval; a
				// generous PingTimeout keeps a loaded machine's slow answers
				// from ending the connection on the client's side.
				sub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-sub", Version: ver.v,
					KeepAlive: keepAlive, PingTimeout: 5 * time.Second, QoS0Overflow: tc.policy, MemoryLimit: 64 << 10})
				s, err := sub.Subscribe(ctx, id+"/flood", tc.qos)
				if err != nil {
					t.Fatal(err)
				}
				pub := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-pub", Version: ver.v})
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
				select {
				case <-sub.Done():
					t.Fatalf("subscriber stopped while stalled: %v", sub.Err())
				case <-time.After(10 * keepAlive):
				}
				if st := sub.Stats(); st.ConnectionLosses != 0 {
					t.Fatalf("the subscriber lost its connection %d times while stalled: %s", st.ConnectionLosses, drainEvents(sub))
				}
				for i := range n {
					var m mqtt.Message
					select {
					case m = <-s.Messages():
					case <-ctx.Done():
						t.Fatalf("message %d of %d did not arrive; stats %+v, events %s", i, n, sub.Stats(), drainEvents(sub))
					}
					if got := binary.BigEndian.Uint32(m.Payload); got != uint32(i) {
						t.Fatalf("message %d arrived when %d was expected", got, i)
					}
				}
				if err := <-published; err != nil {
					t.Fatal(err)
				}
				st := sub.Stats()
				if st.Connects != 1 || st.ConnectionLosses != 0 || st.Dropped != 0 || st.Deferred != 0 {
					t.Errorf("stats %+v: want one connection, nothing lost, dropped or deferred", st)
				}
			})
		}
	}
}

// Environment of a flood publisher process started by floodFrom.
const (
	floodEnv = "MQTT_TEST_FLOOD" // "url topic version qos size count"
)

// floodFrom starts a process that publishes n messages of size bytes on
// topic (each payload starts with its sequence number, big-endian, and is
// zero after it) and returns a channel that receives its outcome.
func floodFrom(ctx context.Context, t *testing.T, url, topic string, v mqtt.ProtocolVersion, qos mqtt.QoS, size, n int) <-chan error {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d %d %d %d", floodEnv, url, topic, v, qos, size, n))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		if err := cmd.Wait(); err != nil {
			done <- fmt.Errorf("publisher process: %w: %s", err, out.Bytes())
			return
		}
		done <- nil
	}()
	return done
}

// floodChild runs the flood publisher when the test binary was started by
// floodFrom, reporting whether it was.
func floodChild() bool {
	spec := os.Getenv(floodEnv)
	if spec == "" {
		return false
	}
	var url, topic string
	var v, qos, size, n int
	if _, err := fmt.Sscan(spec, &url, &topic, &v, &qos, &size, &n); err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{url}, Version: mqtt.ProtocolVersion(v),
		ClientID: fmt.Sprint("flood-", os.Getpid())})
	if err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		os.Exit(1)
	}
	payload := make([]byte, size)
	for i := range n {
		binary.BigEndian.PutUint32(payload, uint32(i))
		if err := c.Publish(ctx, mqtt.Message{Topic: topic, Payload: payload, QoS: mqtt.QoS(qos)}); err != nil {
			fmt.Fprintln(os.Stderr, "flood:", err)
			os.Exit(1)
		}
	}
	if err := c.Disconnect(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		os.Exit(1)
	}
	return true
}

// drainEvents returns the client's buffered events, for a failure message.
func drainEvents(c *mqtt.Client) string {
	var out []string
	for len(c.Events()) > 0 {
		e := <-c.Events()
		out = append(out, fmt.Sprintf("%v %v", e.Kind, e.Err))
	}
	return fmt.Sprintf("%q", out)
}
