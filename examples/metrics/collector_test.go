package main

import (
	"strings"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fixedStats is a StatsSource that returns one snapshot.
type fixedStats mqtt.Stats

func (f fixedStats) Stats() mqtt.Stats { return mqtt.Stats(f) }

// TestCollector checks every metric's name, type, labels and value against
// a known snapshot, and that the metrics pass client_golang's lint.
func TestCollector(t *testing.T) {
	t.Parallel()
	st := mqtt.Stats{
		Sent:      [3]mqtt.MessageCount{{Messages: 1, Bytes: 10}, {Messages: 2, Bytes: 20}, {Messages: 3, Bytes: 30}},
		Received:  [3]mqtt.MessageCount{{Messages: 4, Bytes: 40}, {Messages: 5, Bytes: 50}, {Messages: 6, Bytes: 60}},
		Inflight:  7,
		Queued:    8,
		Unacked:   9,
		Dropped:   11,
		Connects:  12,
		Connected: true,
		LastRTT:   1500 * time.Microsecond,
	}
	c := NewCollector(fixedStats(st), prometheus.Labels{"client": "c1"})
	const want = `
# HELP mqtt_connected Whether the client has a connection now (1) or not (0).
# TYPE mqtt_connected gauge
mqtt_connected{client="c1"} 1
# HELP mqtt_connects_total Successful connections, the first one included.
# TYPE mqtt_connects_total counter
mqtt_connects_total{client="c1"} 12
# HELP mqtt_dropped_total QoS 0 messages dropped because the application did not keep up.
# TYPE mqtt_dropped_total counter
mqtt_dropped_total{client="c1"} 11
# HELP mqtt_inflight Packets sent and awaiting the broker's answer: QoS 1 and 2 publishes, subscribes and unsubscribes.
# TYPE mqtt_inflight gauge
mqtt_inflight{client="c1"} 7
# HELP mqtt_last_rtt_seconds Round-trip time of the latest answered PINGREQ; 0 before the first.
# TYPE mqtt_last_rtt_seconds gauge
mqtt_last_rtt_seconds{client="c1"} 0.0015
# HELP mqtt_messages_received_total Messages received, by QoS; re-deliveries of a message still held are not counted.
# TYPE mqtt_messages_received_total counter
mqtt_messages_received_total{client="c1",qos="0"} 4
mqtt_messages_received_total{client="c1",qos="1"} 5
mqtt_messages_received_total{client="c1",qos="2"} 6
# HELP mqtt_messages_sent_total Messages published, by QoS; re-sends after a reconnect are not counted.
# TYPE mqtt_messages_sent_total counter
mqtt_messages_sent_total{client="c1",qos="0"} 1
mqtt_messages_sent_total{client="c1",qos="1"} 2
mqtt_messages_sent_total{client="c1",qos="2"} 3
# HELP mqtt_payload_bytes_received_total Payload bytes of the messages received, by QoS.
# TYPE mqtt_payload_bytes_received_total counter
mqtt_payload_bytes_received_total{client="c1",qos="0"} 40
mqtt_payload_bytes_received_total{client="c1",qos="1"} 50
mqtt_payload_bytes_received_total{client="c1",qos="2"} 60
# HELP mqtt_payload_bytes_sent_total Payload bytes of the messages published, by QoS.
# TYPE mqtt_payload_bytes_sent_total counter
mqtt_payload_bytes_sent_total{client="c1",qos="0"} 10
mqtt_payload_bytes_sent_total{client="c1",qos="1"} 20
mqtt_payload_bytes_sent_total{client="c1",qos="2"} 30
# HELP mqtt_queued Work waiting for a connection, a packet identifier or the broker's Receive Maximum.
# TYPE mqtt_queued gauge
mqtt_queued{client="c1"} 8
# HELP mqtt_unacked Received QoS 1 and 2 messages not yet acknowledged to the broker.
# TYPE mqtt_unacked gauge
mqtt_unacked{client="c1"} 9
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c); n != 19 {
		t.Errorf("collected %d metrics, want 19", n)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestCollectorRegisters checks that Describe and Collect agree, which a
// registry verifies on every gather, and that two clients can share a
// registry when their constant labels differ.
func TestCollectorRegisters(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(fixedStats{}, prometheus.Labels{"client": "a"}))
	reg.MustRegister(NewCollector(fixedStats{Connected: true}, prometheus.Labels{"client": "b"}))
	if err := reg.Register(NewCollector(fixedStats{}, prometheus.Labels{"client": "a"})); err == nil {
		t.Error("a second collector with the same labels was accepted")
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP mqtt_connected Whether the client has a connection now (1) or not (0).
# TYPE mqtt_connected gauge
mqtt_connected{client="a"} 0
mqtt_connected{client="b"} 1
`), "mqtt_connected"); err != nil {
		t.Error(err)
	}
}
