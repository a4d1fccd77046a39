package mqtt_test

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/b4e21b16/mqtt/internal/faultproxy"
)

var (
	soakMessages = flag.Int("soak.messages", 2000, "QoS 1 and QoS 2 messages each in TestMosquittoSoak")
	soakCuts     = flag.Int("soak.cuts", 12, "forced disconnects at least, in TestMosquittoSoak")
	soakStrict   = flag.Bool("soak.strict", false, "fail TestMosquittoSoak on any order inversion or QoS 2 duplicate")
)

// TestMosquittoSoak publishes QoS 1 and QoS 2 sequences through
// fault-injecting proxies that cut both the publisher's and the subscriber's
// connections at random byte offsets, and checks that sessions outlive connections, end to
// end: every QoS 1 and QoS 2 message arrives, with no goroutine left
// behind, and it counts duplicates and order inversions.
//
// With -soak.strict it also fails on a QoS 2 duplicate or an order
// inversion. Against mosquitto 2.0.11 both occur now and then, and traces
// of both clients with the broker's own log (log_type all) put them on the
// broker: (1) when a reconnect's re-send of in-flight packets is itself cut
// short, mosquitto turns the QoS 2 messages it had reached only as far as
// PUBREL back into PUBLISH on the next reconnect, which [MQTT-4.3.3-6]
// forbids; the client has already completed them (PUBREL, PUBCOMP) and must
// take the new PUBLISH as a new message; (2) mosquitto sometimes forwards a
// message received later ahead of an earlier one still queued for the
// subscriber, against [MQTT-4.6.0-6]. In every trace the publisher wrote in
// order and the subscriber delivered in the order it read from the socket.
// So the default run reports duplicates and inversions instead of failing.
// CI runs a short version; the long one is
//
//	go test -race -run TestMosquittoSoak -soak.messages 20000 -soak.cuts 60 -timeout 30m .
//
// Mosquitto 2.0.11 re-sends in-flight messages to a reconnecting 3.1.1
// subscriber out of their original order (seen on the wire: after the
// reconnect it interleaves DUP messages from further back in its queue),
// although [MQTT-4.6.0-1] requires the original order. So on 3.1.1 the
// order is checked with faults on the publisher's side only, and the run
// that also cuts the subscriber checks delivery counts and reports the
// inversions.
func TestMosquittoSoak(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		v          mqtt.ProtocolVersion
		cutSub     bool
		checkOrder bool
	}{
		{"v5", mqtt.Version5, true, *soakStrict},
		{"v311/publisher-faults", mqtt.Version311, false, *soakStrict},
		{"v311/both-faults", mqtt.Version311, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runSoak(t, tc.v, *soakMessages, *soakCuts, tc.cutSub, tc.checkOrder)
		})
	}
}

func runSoak(t *testing.T, v mqtt.ProtocolVersion, n, minCuts int, cutSub, checkOrder bool) {
	b := brokertest.Start(t, brokertest.Options{Extra: []string{"max_queued_messages 1000000", "max_inflight_messages 1000"}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	id := uniqueID(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))

	pubProxy, err := faultproxy.New(b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer pubProxy.Close()
	subProxy, err := faultproxy.New(b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer subProxy.Close()

	persistent := func(clientID, url string) mqtt.Config {
		return mqtt.Config{
			Servers: []string{url}, ClientID: clientID, Version: v, KeepAlive: 5 * time.Second,
			CleanStart: false, SessionExpiry: time.Hour,
			Reconnect: mqtt.ReconnectConfig{MinDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond},
		}
	}
	// Start from empty sessions.
	for _, cid := range []string{id + "-sub", id + "-pub"} {
		c := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: cid, Version: v, CleanStart: true})
		c.Disconnect(ctx)
	}
	sub := connect(t, persistent(id+"-sub", subProxy.URL()))
	s, err := sub.Subscribe(ctx, id+"/#", mqtt.ExactlyOnce)
	if err != nil {
		t.Fatal(err)
	}
	pub := connect(t, persistent(id+"-pub", pubProxy.URL()))

	// Faults: cut one of the connections at a random byte offset (within
	// the next 2 KiB of traffic), again and again, until every message
	// has arrived.
	published := make(chan error, 1)
	stopFaults := make(chan struct{})
	faultsDone := make(chan int, 1)
	go func() {
		cuts := 0
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for cuts < 10000 {
			select {
			case <-stopFaults:
				pubProxy.ClearCut()
				subProxy.ClearCut()
				faultsDone <- cuts
				return
			case <-tick.C:
			}
			p := pubProxy
			if cutSub && rng.IntN(3) == 0 {
				p = subProxy
			}
			if !p.Armed() && p.Conns() > 0 {
				p.CutAfterRandom(rng, 2<<10, faultproxy.Both)
				cuts++
			}
		}
		faultsDone <- cuts
	}()

	go func() {
		window := make(chan *mqtt.Pending, 200)
		for i := range 2 * n {
			qos := mqtt.QoS(1 + i%2)
			// The client keeps the payload until the publish completes.
			payload := binary.BigEndian.AppendUint64(nil, uint64(i/2))
			if len(window) == cap(window) {
				if err := (<-window).Wait(ctx); err != nil {
					published <- err
					return
				}
			}
			window <- pub.PublishAsync(mqtt.Message{Topic: fmt.Sprintf("%s/q%d", id, qos), Payload: payload, QoS: qos})
		}
		for len(window) > 0 {
			if err := (<-window).Wait(ctx); err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()

	// Receive until every sequence number of both QoS levels was seen.
	seen := [3]map[uint64]int{nil, {}, {}}
	next := [3]uint64{}
	inversions, qos2Dups := 0, 0
	for len(seen[1]) < n || len(seen[2]) < n {
		select {
		case m := <-s.Messages():
			seq := binary.BigEndian.Uint64(m.Payload)
			q := m.QoS
			seen[q][seq]++
			if seen[q][seq] == 1 {
				if seq != next[q] {
					inversions++
					if checkOrder {
						t.Fatalf("QoS %d: first delivery of %d while expecting %d: out of order", q, seq, next[q])
					}
				}
				next[q] = max(next[q], seq+1)
			} else if q == mqtt.ExactlyOnce {
				qos2Dups++
				if checkOrder {
					t.Fatalf("QoS 2 message %d delivered %d times", seq, seen[q][seq])
				}
			}
		case <-sub.Done():
			t.Fatalf("subscriber stopped: %v", sub.Err())
		case err := <-published:
			if err != nil {
				t.Fatalf("publisher: %v", err)
			}
			published <- nil
			published = nil // wait for the subscriber only
		case <-ctx.Done():
			t.Fatalf("timed out with %d QoS 1 and %d QoS 2 of %d received", len(seen[1]), len(seen[2]), n)
		}
	}
	close(stopFaults)
	cuts := <-faultsDone
	dups := 0
	for _, k := range seen[1] {
		dups += k - 1
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("%d QoS 1 + %d QoS 2 messages, %d forced disconnects (publisher proxy %d connections, subscriber proxy %d), %d QoS 1 duplicates, %d QoS 2 duplicates, %d order inversions, heap in use %d MiB",
		n, n, cuts, pubProxy.Accepted(), subProxy.Accepted(), dups, qos2Dups, inversions, ms.HeapInuse>>20)
	if cuts < minCuts {
		t.Errorf("only %d forced disconnects, want at least %d", cuts, minCuts)
	}
	if err := pub.Disconnect(ctx); err != nil {
		t.Errorf("publisher Disconnect: %v", err)
	}
	if err := sub.Disconnect(ctx); err != nil {
		t.Errorf("subscriber Disconnect: %v", err)
	}
}
