package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/packet"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// scenario is one row of the interoperability table.
type scenario struct {
	name string
	run  func(t *testing.T, tg *target, b *broker)
}

var scenarios = []scenario{
	{"connect", testConnect},
	{"bad-credentials", testBadCredentials},
	{"qos0", func(t *testing.T, tg *target, b *broker) { testPubSub(t, tg, b, mqtt.AtMostOnce) }},
	{"qos1", func(t *testing.T, tg *target, b *broker) { testPubSub(t, tg, b, mqtt.AtLeastOnce) }},
	{"qos2", testQoS2},
	{"granted-qos", testGrantedQoS},
	{"retained", testRetained},
	{"wildcards", testWildcards},
	{"unsubscribe", testUnsubscribe},
	{"will", testWill},
	{"session", testSession},
	{"keepalive", testKeepAlive},
	{"large-payload", testLargePayload},
	{"mqtt5", testMQTT5},
}

// TestInterop runs every scenario against every target. Brokers are started
// on first use and shared by all scenarios of the binary.
func TestInterop(t *testing.T) {
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					t.Parallel()
					b := tg.broker.get(t)
					t.Cleanup(func() {
						if t.Failed() {
							t.Logf("%s %s log (end):\n%s", b.name, b.version, tail(b.log(), 3000))
						}
					})
					sc.run(t, tg, b)
				})
			}
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// testConnect: the pinned protocol version connects; VersionAuto ends up
// with the broker's best version, or says why it cannot; a 3.1.1-only
// broker's answer to a 5.0 CONNECT reaches the caller.
func testConnect(t *testing.T, tg *target, b *broker) {
	ctx := testContext(t)
	c := connect(t, b, tg.config(t, b, ""))
	if got := c.Connection().Version; got != tg.version {
		t.Errorf("ProtocolVersion = %v, want %v", got, tg.version)
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}

	cfg := tg.config(t, b, "-auto")
	cfg.Version = mqtt.VersionAuto
	auto, err := mqtt.Connect(ctx, cfg)
	switch {
	case tg.autoVersion != 0:
		if err != nil {
			t.Fatalf("Connect with VersionAuto: %v", err)
		}
		defer auto.Close()
		if got := auto.Connection().Version; got != tg.autoVersion {
			t.Errorf("VersionAuto negotiated %v, want %v", got, tg.autoVersion)
		}
	default:
		t.Fatalf("target %s has no autoVersion", tg.name)
	}

	if tg.autoVersion == mqtt.Version5 {
		return
	}
	cfg = tg.config(t, b, "-v5")
	cfg.Version = mqtt.Version5
	v5, err := mqtt.Connect(ctx, cfg)
	if err == nil {
		v5.Close()
		t.Fatal("MQTT 5.0 connect to a 3.1.1 broker succeeded")
	}
	t.Logf("MQTT 5.0 connect reported as: %v", err)
	ce, ok := errors.AsType[*mqtt.ConnectError](err)
	switch {
	case tg.refuses5 != 0:
		if !ok || ce.Code != tg.refuses5 || ce.Version != "5.0" {
			t.Errorf("MQTT 5.0 connect = %v; want a *ConnectError for 5.0 with code %#x", err, byte(tg.refuses5))
		}
	case ok:
		t.Errorf("MQTT 5.0 connect = %v; want the connection closed without CONNACK", err)
	}
}

// testBadCredentials: a wrong password is refused with the broker's CONNACK
// code in a *ConnectError that does not reveal the password; the right one
// connects.
func testBadCredentials(t *testing.T, tg *target, b *broker) {
	ctx := testContext(t)
	cfg := tg.config(t, b, "")
	cfg.Username, cfg.Password = b.user, []byte("wrong-"+b.pass)
	c, err := mqtt.Connect(ctx, cfg)
	if err == nil {
		c.Close()
		t.Fatal("Connect with a wrong password succeeded")
	}
	ce, ok := errors.AsType[*mqtt.ConnectError](err)
	if !ok {
		t.Fatalf("Connect = %v; want a *ConnectError", err)
	}
	wantVersion := "3.1.1"
	if tg.v5 {
		wantVersion = "5.0"
	}
	if ce.Code != tg.badAuth || ce.Reason != tg.badAuthReason || ce.Version != wantVersion {
		t.Errorf("ConnectError code %#x reason %q version %s; want %#x %q %s",
			byte(ce.Code), ce.Reason, ce.Version, byte(tg.badAuth), tg.badAuthReason, wantVersion)
	}
	if strings.Contains(err.Error(), "wrong-") {
		t.Errorf("the error reveals the password: %s", err)
	}
	t.Logf("refusal reported as: %v", err)

	cfg.Password = []byte(b.pass)
	good := connect(t, b, cfg)
	if _, err := good.Ping(ctx); err != nil {
		t.Fatalf("Ping with the right password: %v", err)
	}
}

// testPubSub: messages published at qos arrive in order, intact, at qos.
func testPubSub(t *testing.T, tg *target, b *broker, qos mqtt.QoS) {
	ctx := testContext(t)
	id := uniqueID(t)
	sub := connect(t, b, tg.config(t, b, "-sub"))
	pub := connect(t, b, tg.config(t, b, "-pub"))
	s, err := sub.Subscribe(ctx, id+"/+/data", qos)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if diff := cmp.Diff([]mqtt.FilterResult{{Filter: id + "/+/data", Code: mqtt.ReasonCode(qos)}}, s.Granted()); diff != "" {
		t.Errorf("Granted (-want +got):\n%s", diff)
	}
	const n = 20
	for i := range n {
		m := mqtt.Message{Topic: fmt.Sprintf("%s/%d/data", id, i), Payload: []byte(fmt.Sprint("payload ", i)), QoS: qos}
		if err := pub.Publish(ctx, m); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
	for i := range n {
		got := receive(t, s.Messages())
		want := mqtt.Message{Topic: fmt.Sprintf("%s/%d/data", id, i), Payload: []byte(fmt.Sprint("payload ", i)), QoS: qos}
		if tg.addedExpiry > 0 {
			// The broker adds an expiry to messages that have none.
			if got.Expiry <= 0 || got.Expiry > tg.addedExpiry {
				t.Errorf("message %d: Expiry %v; want (0, %v]", i, got.Expiry, tg.addedExpiry)
			}
			got.Expiry = 0
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmpopts.IgnoreUnexported(mqtt.Message{}),
			cmpopts.IgnoreFields(mqtt.Message{}, "SubscriptionIDs")); diff != "" {
			t.Fatalf("message %d (-want +got):\n%s", i, diff)
		}
	}
}

// testQoS2: a broker with QoS 2 delivers exactly once at QoS 2. A broker
// without grants QoS 1 for a QoS 2 subscription, and its answer to a QoS 2
// PUBLISH reaches the publisher as an error that says what happened.
func testQoS2(t *testing.T, tg *target, b *broker) {
	if tg.qos2 == qos2Supported {
		testPubSub(t, tg, b, mqtt.ExactlyOnce)
		return
	}
	ctx := testContext(t)
	id := uniqueID(t)
	sub := connect(t, b, tg.config(t, b, "-sub"))
	pub := connect(t, b, tg.config(t, b, "-pub"))
	s, err := sub.Subscribe(ctx, id+"/q2", mqtt.ExactlyOnce)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if diff := cmp.Diff([]mqtt.FilterResult{{Filter: id + "/q2", Code: mqtt.ReasonCode(tg.maxQoS)}}, s.Granted()); diff != "" {
		t.Errorf("Granted (-want +got):\n%s", diff)
	}
	err = pub.Publish(ctx, mqtt.Message{Topic: id + "/q2", Payload: []byte("exactly once?"), QoS: mqtt.ExactlyOnce})
	t.Logf("QoS 2 publish reported as: %v", err)
	if !errors.Is(err, mqtt.ErrConnectionLost) {
		t.Fatalf("QoS 2 Publish = %v; want an error wrapping ErrConnectionLost", err)
	}
	if cerr := waitDone(t, pub); !errors.Is(cerr, mqtt.ErrConnectionLost) {
		t.Errorf("publisher Err = %v; want ErrConnectionLost", cerr)
	}
	switch tg.qos2 {
	case qos2Disconnect:
		// The broker closed the connection before routing the message.
		if errors.Is(err, mqtt.ErrProtocolViolation) {
			t.Errorf("Publish = %v; want the broker's close, not a protocol violation", err)
		}
		expectNone(t, s.Messages(), 500*time.Millisecond)
	case qos2Puback:
		// The broker routed the message at QoS 1 and answered PUBACK,
		// which a QoS 2 sender must not get [MQTT-4.3.3]: the client
		// ends the connection and names both packets.
		if !errors.Is(err, mqtt.ErrProtocolViolation) || !strings.Contains(err.Error(), "PUBACK") || !strings.Contains(err.Error(), "PUBREC") {
			t.Errorf("Publish = %v; want a protocol violation naming PUBACK and PUBREC", err)
		}
		got := receive(t, s.Messages())
		if got.QoS != mqtt.AtLeastOnce || string(got.Payload) != "exactly once?" {
			t.Errorf("subscriber got %s %q; want the message at QoS 1", got.String(), got.Payload)
		}
	}
	// The subscriber's connection is unaffected.
	if _, err := sub.Ping(ctx); err != nil {
		t.Errorf("subscriber Ping: %v", err)
	}
}

// testGrantedQoS: one SUBSCRIBE with filters at QoS 0, 1 and 2 is granted
// per filter at most the broker's maximum, and messages arrive at the
// lower of their own QoS and the granted one [MQTT-3.8.4-6] [MQTT-3.3.5-1].
func testGrantedQoS(t *testing.T, tg *target, b *broker) {
	ctx := testContext(t)
	id := uniqueID(t)
	c := connect(t, b, tg.config(t, b, ""))
	pub := connect(t, b, tg.config(t, b, "-pub"))
	s, err := c.SubscribeFilters(ctx,
		mqtt.Filter{Topic: id + "/q0", QoS: 0},
		mqtt.Filter{Topic: id + "/q1", QoS: 1},
		mqtt.Filter{Topic: id + "/q2", QoS: 2})
	if err != nil {
		t.Fatalf("SubscribeFilters: %v", err)
	}
	want := []mqtt.FilterResult{
		{Filter: id + "/q0", Code: 0},
		{Filter: id + "/q1", Code: 1},
		{Filter: id + "/q2", Code: mqtt.ReasonCode(min(2, tg.maxQoS))},
	}
	if diff := cmp.Diff(want, s.Granted()); diff != "" {
		t.Errorf("Granted (-want +got):\n%s", diff)
	}
	cases := []struct {
		topic   string
		pub, at mqtt.QoS
	}{
		{"/q0", 1, 0},
		{"/q1", 0, 0},
		{"/q2", 1, 1},
	}
	if tg.qos2 == qos2Supported {
		cases = append(cases, struct {
			topic   string
			pub, at mqtt.QoS
		}{"/q1", 2, 1}, struct {
			topic   string
			pub, at mqtt.QoS
		}{"/q2", 2, min(2, tg.maxQoS)})
	}
	for i, tc := range cases {
		payload := []byte(fmt.Sprint("m", i))
		if err := pub.Publish(ctx, mqtt.Message{Topic: id + tc.topic, Payload: payload, QoS: tc.pub}); err != nil {
			t.Fatalf("Publish at %v to %s: %v", tc.pub, tc.topic, err)
		}
		got := receive(t, s.Messages())
		if got.Topic != id+tc.topic || !bytes.Equal(got.Payload, payload) || got.QoS != tc.at {
			t.Errorf("published at %v to %s: got %s; want it at %v", tc.pub, tc.topic, got.String(), tc.at)
		}
	}
}

// testRetained: a retained message reaches later subscribers with the
// retain flag, a live one arrives without it, and an empty retained
// message clears it [MQTT-3.3.1-6] [MQTT-3.3.1-9] [MQTT-3.3.1-10].
func testRetained(t *testing.T, tg *target, b *broker) {
	ctx := testContext(t)
	id := uniqueID(t)
	pub := connect(t, b, tg.config(t, b, "-pub"))
	if err := pub.Publish(ctx, mqtt.Message{Topic: id + "/state", Payload: []byte("on"), QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}
	sub := connect(t, b, tg.config(t, b, "-sub"))
	exact, err := sub.Subscribe(ctx, id+"/state", 1)
	if err != nil {
		t.Fatal(err)
	}
	got := receive(t, exact.Messages())
	if got.Topic != id+"/state" || string(got.Payload) != "on" || !got.Retain {
		t.Fatalf("got %s %q; want the retained message", got.String(), got.Payload)
	}
	wild := connect(t, b, tg.config(t, b, "-wild"))
	ws, err := wild.Subscribe(ctx, id+"/+", 1)
	if err != nil {
		t.Fatal(err)
	}
	if tg.retainedWildcard {
		if got := receive(t, ws.Messages()); string(got.Payload) != "on" || !got.Retain {
			t.Fatalf("wildcard subscription got %s %q; want the retained message", got.String(), got.Payload)
		}
	} else {
		// The broker looks retained messages up by exact topic only.
		expectNone(t, ws.Messages(), 500*time.Millisecond)
	}

	if err := pub.Publish(ctx, mqtt.Message{Topic: id + "/state", Payload: []byte("off"), QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}
	got = receive(t, exact.Messages())
	if !got.Retain && string(got.Payload) == "on" {
		// A broker may acknowledge a publish before it fans it out (mochi
		// does), so a subscription made just after the PUBACK can get the
		// first message twice: once retained, once live. Nothing orders a
		// SUBSCRIBE on one connection against a fan-out from another.
		got = receive(t, exact.Messages())
	}
	if got.Retain || string(got.Payload) != "off" {
		t.Fatalf("live message %s %q; want retain=false, off", got.String(), got.Payload)
	}
	if err := pub.Publish(ctx, mqtt.Message{Topic: id + "/state", QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, exact.Messages()); len(got.Payload) != 0 {
		t.Fatalf("clearing message %s %q; want an empty payload", got.String(), got.Payload)
	}
	late := connect(t, b, tg.config(t, b, "-late"))
	ls, err := late.Subscribe(ctx, id+"/state", 1)
	if err != nil {
		t.Fatal(err)
	}
	expectNone(t, ls.Messages(), 500*time.Millisecond)
}

// testWildcards: "+" matches one level, "#" any number including the
// parent level [MQTT-4.7.1-2], and overlapping subscriptions each see a
// message as often as the broker sends it.
func testWildcards(t *testing.T, tg *target, b *broker) {
	ctx := testContext(t)
	id := uniqueID(t)
	c := connect(t, b, tg.config(t, b, ""))
	plus, err := c.Subscribe(ctx, id+"/+/x", 1)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := c.Subscribe(ctx, id+"/#", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, mqtt.Message{Topic: id + "/a/x", Payload: []byte("both"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	// Over 5.0 the subscription identifiers route each copy to its own
	// subscription; over 3.1.1 the client routes by topic, so every copy
	// the broker sends reaches both subscriptions.
	copies := tg.overlapCopies
	if tg.v5 {
		copies = 1
	}
	for _, s := range []*mqtt.Subscription{plus, hash} {
		for range copies {
			if got := receive(t, s.Messages()); string(got.Payload) != "both" {
				t.Fatalf("got %s %q; want both", got.String(), got.Payload)
			}
		}
	}
	for _, tc := range []struct{ topic, payload string }{
		{id + "/a/b/x", "deep"}, // too deep for +
		{id, "parent"},          // # matches the parent level
	} {
		if err := c.Publish(ctx, mqtt.Message{Topic: tc.topic, Payload: []byte(tc.payload), QoS: 1}); err != nil {
			t.Fatal(err)
		}
		if got := receive(t, hash.Messages()); got.Topic != tc.topic || string(got.Payload) != tc.payload {
			t.Fatalf("# got %s %q; want %s %q", got.String(), got.Payload, tc.topic, tc.payload)
		}
	}
	expectNone(t, plus.Messages(), 300*time.Millisecond)
	expectNone(t, hash.Messages(), 0)
}

// testUnsubscribe: after Unsubscribe the subscription's channel closes and
// its messages stop, while other subscriptions go on.
func testUnsubscribe(t *testing.T, tg *target, b *broker) {
	ctx := testContext(t)
	id := uniqueID(t)
	c := connect(t, b, tg.config(t, b, ""))
	gone, err := c.Subscribe(ctx, id+"/gone", 1)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := c.Subscribe(ctx, id+"/kept", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, mqtt.Message{Topic: id + "/gone", Payload: []byte("1"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	receive(t, gone.Messages())
	if err := c.Unsubscribe(ctx, id+"/gone"); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	timer := time.NewTimer(testTimeout)
	defer timer.Stop()
	select {
	case m, ok := <-gone.Messages():
		if ok {
			t.Fatalf("message %s after Unsubscribe", m.String())
		}
	case <-timer.C:
		t.Fatal("channel not closed after Unsubscribe")
	}
	for _, topic := range []string{id + "/gone", id + "/kept"} {
		if err := c.Publish(ctx, mqtt.Message{Topic: topic, Payload: []byte("2"), QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if got := receive(t, kept.Messages()); got.Topic != id+"/kept" {
		t.Fatalf("kept subscription got %s", got.String())
	}
	// The broker no longer sends the unsubscribed topic at all.
	expectNone(t, c.Messages(), 300*time.Millisecond)
}

// testWill: the will is discarded on Disconnect [MQTT-3.1.2-10] and
// published when the connection ends without DISCONNECT [MQTT-3.1.2-8].
func testWill(t *testing.T, tg *target, b *broker) {
	ctx := testContext(t)
	id := uniqueID(t)
	watcher := connect(t, b, tg.config(t, b, "-w"))
	s, err := watcher.Subscribe(ctx, id+"/status", 1)
	if err != nil {
		t.Fatal(err)
	}
	will := &mqtt.Message{Topic: id + "/status", Payload: []byte("gone"), QoS: 1}

	cfg := tg.config(t, b, "-graceful")
	cfg.Will = will
	graceful := connect(t, b, cfg)
	if err := graceful.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	expectNone(t, s.Messages(), 500*time.Millisecond)

	cfg = tg.config(t, b, "-abrupt")
	cfg.Will = will
	abrupt := connect(t, b, cfg)
	if err := abrupt.Close(); err != nil {
		t.Fatal(err)
	}
	got := receive(t, s.Messages())
	if got.Topic != will.Topic || string(got.Payload) != "gone" || got.QoS != mqtt.AtLeastOnce {
		t.Fatalf("got %s %q; want the will at QoS 1", got.String(), got.Payload)
	}
}

// testSession: a persistent session survives the connection; on resume the
// broker reports it present [MQTT-3.2.2-2] and delivers the QoS 1 messages
// queued meanwhile, which arrive on Client.Messages until the application
// subscribes again.
func testSession(t *testing.T, tg *target, b *broker) {
	ctx := testContext(t)
	id := uniqueID(t)
	// A 3.1.1 session persists without Clean Session [MQTT-3.1.2-6]; a 5.0
	// one after a clean start when it has a Session Expiry Interval.
	cfg := tg.config(t, b, "-p")
	cfg.CleanStart = tg.v5
	cfg.SessionExpiry = time.Hour
	if !tg.v5 {
		// Start from no session: connect once with Clean Session.
		clean := cfg
		clean.CleanStart = true
		c := connect(t, b, clean)
		if err := c.Disconnect(ctx); err != nil {
			t.Fatal(err)
		}
	}
	first := connect(t, b, cfg)
	if first.SessionPresent() {
		t.Fatal("session present on the first connection")
	}
	if _, err := first.Subscribe(ctx, id+"/q", 1); err != nil {
		t.Fatal(err)
	}
	if err := first.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	pub := connect(t, b, tg.config(t, b, "-pub"))
	const n = 5
	for i := range n {
		if err := pub.Publish(ctx, mqtt.Message{Topic: id + "/q", Payload: []byte(fmt.Sprint(i)), QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	cfg.CleanStart = false
	second := connect(t, b, cfg)
	if !second.SessionPresent() {
		t.Fatal("session not present on resume")
	}
	var payloads, want []string
	for i := range n {
		got, ok := <-second.Messages()
		if !ok {
			t.Fatalf("client stopped before queued message %d: %v", i, second.Err())
		}
		if got.Topic != id+"/q" || got.QoS != mqtt.AtLeastOnce {
			t.Fatalf("queued message %d: %s", i, got.String())
		}
		payloads = append(payloads, string(got.Payload))
		want = append(want, fmt.Sprint(i))
	}
	if tg.sessionUnordered {
		// Each message once, in whatever order the broker resends them.
		slices.Sort(payloads)
	}
	if !slices.Equal(payloads, want) {
		t.Errorf("queued messages %q; want %q", payloads, want)
	}
	expectNone(t, second.Messages(), 300*time.Millisecond)
	// Clean up the broker's session.
	if err := second.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	cfg.CleanStart = true
	cfg.SessionExpiry = 0
	last := connect(t, b, cfg)
	if last.SessionPresent() {
		t.Error("session present after a clean start [MQTT-3.2.2-1]")
	}
}

// testKeepAlive: an idle client with a two-second keepalive stays connected
// over several periods, its PINGREQs keeping the broker from dropping it
// after one and a half [MQTT-3.1.2-24]. (Two seconds, not one: NATS 2.9 and
// mochi-mqtt 2.7 round one and a half times the keepalive down to whole
// seconds, so with one second they allow exactly the interval after which
// the client pings.)
func testKeepAlive(t *testing.T, tg *target, b *broker) {
	cfg := tg.config(t, b, "")
	cfg.KeepAlive = 2 * time.Second
	c := connect(t, b, cfg)
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	select {
	case <-c.Done():
		t.Fatalf("connection ended: %v", c.Err())
	case <-timer.C:
	}
	rtt, err := c.Ping(testContext(t))
	if err != nil {
		t.Fatalf("Ping: %v", err)
	}
	t.Logf("round trip %v", rtt)
}

// testLargePayload: the largest payload the broker accepts arrives intact;
// one byte more gets the broker's documented treatment, which the client
// reports.
func testLargePayload(t *testing.T, tg *target, b *broker) {
	ctx := testContext(t)
	id := uniqueID(t)
	topic := id + "/big"
	sub := connect(t, b, tg.config(t, b, "-sub"))
	pub := connect(t, b, tg.config(t, b, "-pub"))
	s, err := sub.Subscribe(ctx, topic, 1)
	if err != nil {
		t.Fatal(err)
	}
	n := tg.maxPayload(len(topic))
	payload := make([]byte, n+1)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	if err := pub.Publish(ctx, mqtt.Message{Topic: topic, Payload: payload[:n], QoS: 1}); err != nil {
		t.Fatalf("Publish of %d bytes (the limit): %v", n, err)
	}
	got := receive(t, s.Messages())
	if !bytes.Equal(got.Payload, payload[:n]) {
		t.Fatalf("received %d bytes, not the %d published", len(got.Payload), n)
	}

	pctx := ctx
	if tg.over == oversizeDropped {
		var cancel func()
		pctx, cancel = context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
	}
	err = pub.Publish(pctx, mqtt.Message{Topic: topic, Payload: payload, QoS: 1})
	t.Logf("publish of %d bytes (limit + 1) reported as: %v", n+1, err)
	switch tg.over {
	case oversizeAnnounced:
		// Refused before anything was sent [MQTT-3.2.2-15]; the
		// connection goes on.
		if !errors.Is(err, mqtt.ErrInvalidArgument) || !errors.Is(err, packet.ErrTooLarge) {
			t.Fatalf("Publish = %v; want an *ArgumentError wrapping packet.ErrTooLarge", err)
		}
		if _, err := pub.Ping(ctx); err != nil {
			t.Fatalf("Ping after the refused publish: %v", err)
		}
	case oversizeDisconnect:
		if !errors.Is(err, mqtt.ErrConnectionLost) {
			t.Fatalf("Publish = %v; want ErrConnectionLost", err)
		}
	case oversizeDropped:
		// No PUBACK ever comes: the publish ends with its context, while
		// the connection still answers PINGREQ. (RabbitMQ 3.10 closes the
		// AMQP channel behind the MQTT connection, logging
		// PRECONDITION_FAILED, but not the connection, so later QoS 1
		// publishes on it are not acknowledged either.)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Publish = %v; want context.DeadlineExceeded", err)
		}
		if _, err := pub.Ping(ctx); err != nil {
			t.Fatalf("Ping after the dropped publish: %v", err)
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := pub.Publish(sctx, mqtt.Message{Topic: topic, Payload: []byte("small"), QoS: 1}); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("small QoS 1 Publish after the dropped one = %v; want no PUBACK", err)
		}
	case oversizeNoLimit:
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		if got := receive(t, s.Messages()); !bytes.Equal(got.Payload, payload) {
			t.Fatalf("received %d bytes, not the %d published", len(got.Payload), len(payload))
		}
		return
	}
	expectNone(t, s.Messages(), 300*time.Millisecond)
}

// testMQTT5: over 5.0, message properties travel end to end, subscription
// identifiers keep overlapping subscriptions apart, the subscription
// options work and the broker assigns client IDs. Over 3.1.1 the client
// leaves the 5.0 fields out of the packets: they arrive empty, and the
// options are not sent.
func testMQTT5(t *testing.T, tg *target, b *broker) {
	ctx := testContext(t)
	id := uniqueID(t)
	c := connect(t, b, tg.config(t, b, ""))
	s, err := c.Subscribe(ctx, id+"/props", 1)
	if err != nil {
		t.Fatal(err)
	}
	sent := mqtt.Message{
		Topic: id + "/props", Payload: []byte(`{"t":21.5}`), QoS: 1,
		ContentType:     "application/json",
		ResponseTopic:   id + "/reply",
		CorrelationData: []byte{1, 2, 3},
		PayloadUTF8:     true,
		Expiry:          time.Hour,
		UserProperties:  []mqtt.UserProperty{{Key: "k", Value: "v1"}, {Key: "k", Value: "v2"}, {Key: "unit", Value: "°C"}},
	}
	if err := c.Publish(ctx, sent); err != nil {
		t.Fatal(err)
	}
	got := receive(t, s.Messages())
	want := sent
	if !tg.v5 {
		want = mqtt.Message{Topic: sent.Topic, Payload: sent.Payload, QoS: 1}
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmpopts.IgnoreUnexported(mqtt.Message{}),
		cmpopts.IgnoreFields(mqtt.Message{}, "Expiry", "SubscriptionIDs")); diff != "" {
		t.Errorf("received message (-want +got):\n%s", diff)
	}
	if tg.v5 {
		// The broker passes on the time left [MQTT-3.3.2-6].
		if got.Expiry <= 0 || got.Expiry > time.Hour {
			t.Errorf("Expiry = %v; want (0, 1h]", got.Expiry)
		}
		if len(got.SubscriptionIDs) != 1 {
			t.Errorf("SubscriptionIDs = %v; want the subscription's one", got.SubscriptionIDs)
		}
	} else if got.Expiry != 0 || len(got.SubscriptionIDs) != 0 {
		t.Errorf("Expiry %v, SubscriptionIDs %v over 3.1.1; want none", got.Expiry, got.SubscriptionIDs)
	}

	// No Local: the broker does not send the client its own publication
	// [MQTT-3.8.3-3]; 3.1.1 has no such option, so it is not sent.
	nl, err := c.SubscribeFilters(ctx, mqtt.Filter{Topic: id + "/nolocal", QoS: 1, NoLocal: true})
	if err != nil {
		t.Fatal(err)
	}
	other := connect(t, b, tg.config(t, b, "-other"))
	if err := c.Publish(ctx, mqtt.Message{Topic: id + "/nolocal", Payload: []byte("own"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if err := other.Publish(ctx, mqtt.Message{Topic: id + "/nolocal", Payload: []byte("other"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	var payloads []string
	wantPayloads := []string{"own", "other"}
	if tg.v5 {
		wantPayloads = []string{"other"}
	}
	for range wantPayloads {
		payloads = append(payloads, string(receive(t, nl.Messages()).Payload))
	}
	slices.Sort(payloads)
	slices.Sort(wantPayloads)
	if !slices.Equal(payloads, wantPayloads) {
		t.Errorf("No Local subscription got %q; want %q", payloads, wantPayloads)
	}
	expectNone(t, nl.Messages(), 300*time.Millisecond)

	// Retain Handling 2 (never send retained messages) and Retain As
	// Published [MQTT-3.3.1-12] [MQTT-3.3.1-13].
	if err := other.Publish(ctx, mqtt.Message{Topic: id + "/rh", Payload: []byte("kept"), QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}
	rh, err := c.SubscribeFilters(ctx, mqtt.Filter{Topic: id + "/rh", QoS: 1, RetainHandling: 2, RetainAsPublished: true})
	if err != nil {
		t.Fatal(err)
	}
	if tg.v5 {
		expectNone(t, rh.Messages(), 300*time.Millisecond)
	} else if got := receive(t, rh.Messages()); !got.Retain || string(got.Payload) != "kept" {
		t.Errorf("3.1.1 subscription got %s %q; want the retained message", got.String(), got.Payload)
	}
	if err := other.Publish(ctx, mqtt.Message{Topic: id + "/rh", Payload: []byte("live"), QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, rh.Messages()); string(got.Payload) != "live" || got.Retain != tg.v5 {
		t.Errorf("live retained message %s; want retain=%t", got.String(), tg.v5)
	}

	if !tg.v5 {
		return
	}
	// An empty client ID gets one assigned by the broker [MQTT-3.2.2-16].
	cfg := tg.config(t, b, "")
	cfg.ClientID, cfg.CleanStart = "", true
	anon := connect(t, b, cfg)
	if anon.ClientID() == "" {
		t.Error("no assigned client identifier")
	}
}
