package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// MQTT 5.0 features against mosquitto 2.0.11, which implements them.

func v5Client(t *testing.T, b *brokertest.Broker, id string, mod ...func(*mqtt.Config)) *mqtt.Client {
	t.Helper()
	cfg := mqtt.Config{Servers: []string{b.URL()}, ClientID: id, Version: mqtt.Version5}
	for _, f := range mod {
		f(&cfg)
	}
	return connect(t, cfg)
}

// TestMosquitto5MessageProperties checks that every message property
// travels publisher → broker → subscriber (MQTT 5.0 section 3.3.2.3):
// Payload Format Indicator, Message Expiry Interval (counted down by the
// broker, so at most what was sent), Content Type, Response Topic,
// Correlation Data, and User Properties in order with a repeated key
// [MQTT-3.3.2-18]; and that each subscription receives the messages its
// Subscription Identifier names.
func TestMosquitto5MessageProperties(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	ctx := testContext(t)
	id := uniqueID(t)
	sub := v5Client(t, b, id+"-sub")
	pub := v5Client(t, b, id+"-pub")
	all, err := sub.Subscribe(ctx, id+"/#", mqtt.AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}
	one, err := sub.Subscribe(ctx, id+"/one", mqtt.AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}
	want := mqtt.Message{
		Topic: id + "/one", Payload: []byte("héllo"), QoS: mqtt.AtLeastOnce,
		ContentType: "text/plain; charset=utf-8", ResponseTopic: id + "/reply", CorrelationData: []byte{1, 2, 3},
		PayloadUTF8: true, Expiry: time.Hour,
		UserProperties: []mqtt.UserProperty{{Key: "k", Value: "1"}, {Key: "a", Value: "x"}, {Key: "k", Value: "2"}},
	}
	if err := pub.Publish(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, mqtt.Message{Topic: id + "/two", Payload: []byte("2"), QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	opts := []cmp.Option{ignoreAck, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(mqtt.Message{}, "SubscriptionIDs", "Expiry")}
	for _, s := range []*mqtt.Subscription{all, one} {
		got := receive(t, s.Messages())
		if diff := cmp.Diff(want, got, opts...); diff != "" {
			t.Errorf("received (-want +got):\n%s", diff)
		}
		if got.Expiry <= 0 || got.Expiry > time.Hour {
			t.Errorf("Expiry = %v, want (0, 1h]", got.Expiry)
		}
	}
	if got := receive(t, all.Messages()); got.Topic != id+"/two" {
		t.Errorf("second message on the wildcard subscription: %q", got.Topic)
	}
	expectNone(t, one.Messages(), 200*time.Millisecond)
}

// TestMosquitto5SubscriptionOptions checks No Local [MQTT-3.8.3-3], Retain
// As Published [MQTT-3.3.1-12] [MQTT-3.3.1-13] and Retain Handling 0, 1 and
// 2 [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11].
func TestMosquitto5SubscriptionOptions(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	ctx := testContext(t)
	id := uniqueID(t)
	c := v5Client(t, b, id)
	other := v5Client(t, b, id+"-other")

	local, err := c.SubscribeFilters(ctx, mqtt.Filter{Topic: id + "/nl", QoS: 1, NoLocal: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, mqtt.Message{Topic: id + "/nl", Payload: []byte("own"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if err := other.Publish(ctx, mqtt.Message{Topic: id + "/nl", Payload: []byte("other"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, local.Messages()); string(m.Payload) != "other" {
		t.Errorf("No Local: received %q first, want only the other client's message", m.Payload)
	}

	if err := other.Publish(ctx, mqtt.Message{Topic: id + "/r", Payload: []byte("kept"), QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		filter       mqtt.Filter
		twice        bool // subscribe a second time to the same filter
		wantRetained []bool
	}{
		{"handling 0 sends the retained message on every subscribe", mqtt.Filter{Topic: id + "/r", QoS: 1, RetainHandling: 0}, true, []bool{true, true}},
		{"handling 1 sends it only to a new subscription", mqtt.Filter{Topic: id + "/+", QoS: 1, RetainHandling: 1}, true, []bool{true, false}},
		{"handling 2 never sends it", mqtt.Filter{Topic: id + "/#", QoS: 1, RetainHandling: 2}, false, []bool{false}},
	} {
		c := v5Client(t, b, uniqueID(t))
		for i, want := range tc.wantRetained {
			s, err := c.SubscribeFilters(ctx, tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			if want {
				if m := receive(t, s.Messages()); !m.Retain || string(m.Payload) != "kept" {
					t.Errorf("%s: subscribe %d got %v", tc.name, i+1, m)
				}
			} else {
				expectNone(t, s.Messages(), 200*time.Millisecond)
			}
		}
	}

	// Retain As Published keeps the RETAIN flag on live messages.
	for _, rap := range []bool{true, false} {
		c := v5Client(t, b, uniqueID(t))
		s, err := c.SubscribeFilters(ctx, mqtt.Filter{Topic: id + "/rap", QoS: 1, RetainAsPublished: rap, RetainHandling: 2})
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Publish(ctx, mqtt.Message{Topic: id + "/rap", Payload: []byte("live"), QoS: 1, Retain: true}); err != nil {
			t.Fatal(err)
		}
		if m := receive(t, s.Messages()); m.Retain != rap {
			t.Errorf("Retain As Published %v: live message has Retain %v", rap, m.Retain)
		}
	}
}

// TestMosquitto5SharedSubscription checks a shared subscription
// ($share/group/filter, MQTT 5.0 section 4.8.2): each message goes to one
// member of the group, every message is delivered, and the members' own
// channels receive them (routing strips the share prefix).
func TestMosquitto5SharedSubscription(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	ctx := testContext(t)
	id := uniqueID(t)
	const members, n = 3, 90
	var subs []*mqtt.Subscription
	for i := range members {
		c := v5Client(t, b, fmt.Sprintf("%s-w%d", id, i))
		s, err := c.Subscribe(ctx, "$share/workers/"+id+"/jobs/+", mqtt.AtLeastOnce)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	pub := v5Client(t, b, id+"-pub")
	for i := range n {
		if err := pub.Publish(ctx, mqtt.Message{Topic: fmt.Sprintf("%s/jobs/%d", id, i), Payload: []byte{byte(i)}, QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	seen := make(map[byte]int)
	per := make([]int, members)
	deadline := time.After(testTimeout)
	for len(seen) < n {
		select {
		case m := <-subs[0].Messages():
			seen[m.Payload[0]]++
			per[0]++
		case m := <-subs[1].Messages():
			seen[m.Payload[0]]++
			per[1]++
		case m := <-subs[2].Messages():
			seen[m.Payload[0]]++
			per[2]++
		case <-deadline:
			t.Fatalf("received %d of %d messages", len(seen), n)
		}
	}
	for k, v := range seen {
		if v != 1 {
			t.Errorf("message %d delivered %d times", k, v)
		}
	}
	if slices.Contains(per, 0) {
		t.Errorf("messages per member %v: want every member to get some", per)
	}
}

// TestMosquitto5RequestResponse checks Request, Reply and Serve: 40
// concurrent requests from two goroutine groups over one shared reply
// subscription each get their own answer (matched by Correlation Data,
// MQTT 5.0 section 4.10).
func TestMosquitto5RequestResponse(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	ctx := testContext(t)
	id := uniqueID(t)
	responder := v5Client(t, b, id+"-resp")
	requests, err := responder.Subscribe(ctx, id+"/double", mqtt.AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}
	srvCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 2)
	for range 2 {
		go func() {
			served <- mqtt.Serve(srvCtx, responder, requests, func(ctx context.Context, req mqtt.Message) (mqtt.Message, error) {
				var n int
				fmt.Sscan(string(req.Payload), &n)
				return mqtt.Message{Payload: fmt.Appendf(nil, "%d", 2*n), QoS: mqtt.AtLeastOnce}, nil
			})
		}()
	}
	requester := v5Client(t, b, id+"-req")
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 40 {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			reply, err := requester.Request(rctx, mqtt.Message{Topic: id + "/double", Payload: fmt.Appendf(nil, "%d", i), QoS: mqtt.AtLeastOnce})
			if err != nil {
				t.Errorf("Request %d: %v", i, err)
				failed.Add(1)
				return
			}
			if got, want := string(reply.Payload), fmt.Sprint(2*i); got != want {
				t.Errorf("Request %d: reply %q, want %q", i, got, want)
			}
		})
	}
	wg.Wait()
	stop()
	for range 2 {
		if err := <-served; !errors.Is(err, context.Canceled) {
			t.Errorf("Serve returned %v, want context.Canceled", err)
		}
	}
	// A request nobody answers ends with its context.
	rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := requester.Request(rctx, mqtt.Message{Topic: id + "/nobody", QoS: 1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("unanswered Request: %v, want context.DeadlineExceeded", err)
	}
	// 3.1.1 has no response topic.
	old := connect(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id + "-311", Version: mqtt.Version311})
	if _, err := old.Request(ctx, mqtt.Message{Topic: id + "/double"}); !errors.As(err, new(*mqtt.ArgumentError)) {
		t.Errorf("Request over 3.1.1: %v, want *ArgumentError", err)
	}
}

// countingDialer counts the bytes a client writes.
type countingDialer struct{ written atomic.Int64 }

type countingConn struct {
	net.Conn
	d *countingDialer
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.d.written.Add(int64(n))
	return n, err
}

func (d *countingDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return countingConn{c, d}, nil
}

// TestMosquitto5TopicAliases checks outbound topic aliases against
// mosquitto's Topic Alias Maximum: messages to a few long topics arrive
// with the right topics, and the client writes fewer bytes than with
// aliases turned off.
func TestMosquitto5TopicAliases(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Extra: []string{"max_topic_alias 4"}})
	ctx := testContext(t)
	id := uniqueID(t)
	sub := v5Client(t, b, id+"-sub")
	s, err := sub.Subscribe(ctx, id+"/#", mqtt.AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	written := make(map[bool]int64)
	for _, disable := range []bool{false, true} {
		d := &countingDialer{}
		pub := v5Client(t, b, fmt.Sprintf("%s-pub-%v", id, disable), func(c *mqtt.Config) {
			c.Dialer = d.dial
			c.DisableTopicAliases = disable
		})
		start := d.written.Load()
		for i := range n {
			topic := fmt.Sprintf("%s/a/rather/long/topic/name/for/sensor/%d", id, i%3)
			if err := pub.Publish(ctx, mqtt.Message{Topic: topic, Payload: []byte{byte(i)}, QoS: mqtt.QoS(i % 2)}); err != nil {
				t.Fatal(err)
			}
		}
		written[disable] = d.written.Load() - start
		for i := range n {
			m := receive(t, s.Messages())
			if want := fmt.Sprintf("%s/a/rather/long/topic/name/for/sensor/%d", id, i%3); m.Topic != want || m.Payload[0] != byte(i) {
				t.Fatalf("aliases off=%v: message %d on %q (%d), want %q", disable, i, m.Topic, m.Payload[0], want)
			}
		}
	}
	if written[false] >= written[true]*2/3 {
		t.Errorf("bytes written with aliases %d, without %d: want aliases to save more than a third", written[false], written[true])
	}
}

// TestMosquitto5BrokerLimits checks that limits mosquitto announces in
// CONNACK are applied before anything is sent: Maximum Packet Size
// [MQTT-3.1.2-24], Maximum QoS [MQTT-3.2.2-11] and Retain Available
// [MQTT-3.2.2-14].
func TestMosquitto5BrokerLimits(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{Extra: []string{"max_packet_size 1000", "retain_available false", "max_qos 1"}})
	ctx := testContext(t)
	c := v5Client(t, b, uniqueID(t))
	for _, m := range []mqtt.Message{
		{Topic: "big", Payload: make([]byte, 2000)},
		{Topic: "q", QoS: mqtt.ExactlyOnce},
		{Topic: "r", Retain: true},
	} {
		err := c.Publish(ctx, m)
		if _, ok := errors.AsType[*mqtt.ArgumentError](err); !ok {
			t.Errorf("Publish(%s, %d bytes, QoS %d, retain %v): %v, want *ArgumentError", m.Topic, len(m.Payload), m.QoS, m.Retain, err)
		}
	}
	if err := c.Publish(ctx, mqtt.Message{Topic: "ok", Payload: make([]byte, 500), QoS: 1}); err != nil {
		t.Errorf("Publish within the limits: %v", err)
	}
	if err := c.Err(); err != nil {
		t.Errorf("client stopped: %v", err)
	}
}

// TestMosquittoStatsAndIter checks Stats counters and Subscription.All on
// a real broker.
func TestMosquittoStatsAndIter(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	ctx := testContext(t)
	id := uniqueID(t)
	c := v5Client(t, b, id)
	s, err := c.Subscribe(ctx, id+"/#", mqtt.AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		p := fmt.Appendf(nil, `{"sensor":"s1","value":%d}`, i)
		if err := c.Publish(ctx, mqtt.Message{Topic: id + "/r", Payload: p, QoS: mqtt.QoS(i % 2)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Publish(ctx, mqtt.Message{Topic: id + "/bad", Payload: []byte("{"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range s.All(ctx) {
		got = append(got, string(m.Payload))
		if len(got) == 4 {
			break
		}
	}
	want := []string{`{"sensor":"s1","value":0}`, `{"sensor":"s1","value":1}`, `{"sensor":"s1","value":2}`, "{"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
	st := c.Stats()
	// Two QoS 0 and two QoS 1 messages each way (delivered at the QoS they
	// were published with): 25-byte payloads and the 1-byte "{".
	counts := [3]mqtt.MessageCount{{Messages: 2, Bytes: 50}, {Messages: 2, Bytes: 26}}
	if st.Sent != counts || st.Received != counts {
		t.Errorf("Stats sent %+v received %+v, want %+v both ways", st.Sent, st.Received, counts)
	}
	if st.Connects != 1 || !st.Connected || st.Inflight != 0 || st.Queued != 0 {
		t.Errorf("Stats = %+v", st)
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Stats().LastRTT <= 0 {
		t.Error("LastRTT not set after Ping")
	}
	// All ends with the context.
	actx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	for m := range s.All(actx) {
		t.Errorf("unexpected message %v", m)
	}
}
