package main

import (
	"strconv"

	"github.com/b4e21b16/mqtt"
	"github.com/prometheus/client_golang/prometheus"
)

// StatsSource is what a Collector reads from; *mqtt.Client implements it.
type StatsSource interface {
	Stats() mqtt.Stats
}

// Collector is a prometheus.Collector that exports the statistics of one
// MQTT client. It holds no state of its own: every scrape takes one
// Stats snapshot (atomic loads only, never a wait on the client) and
// reports it, so the values are as fresh as the scrape and a Collector is
// safe for concurrent scrapes.
//
// Metrics, where qos is "0", "1" or "2":
//
//	mqtt_messages_sent_total{qos}            counter  messages published (re-sends not counted)
//	mqtt_messages_received_total{qos}        counter  messages received (re-deliveries not counted)
//	mqtt_payload_bytes_sent_total{qos}       counter  payload bytes of those messages
//	mqtt_payload_bytes_received_total{qos}   counter
//	mqtt_inflight                            gauge    packets awaiting the broker's answer
//	mqtt_queued                              gauge    work waiting for a connection or a slot
//	mqtt_unacked                             gauge    received QoS 1/2 messages not yet acknowledged
//	mqtt_connected                           gauge    1 while connected, else 0
//	mqtt_connects_total                      counter  successful connections, the first included
//	mqtt_dropped_total                       counter  QoS 0 messages dropped by the overflow policy
//	mqtt_last_rtt_seconds                    gauge    round-trip time of the latest answered ping
//
// To export several clients from one registry, give each Collector a
// distinguishing constant label, such as {client="orders"}.
type Collector struct {
	src StatsSource

	sentMsgs, recvMsgs   *prometheus.Desc
	sentBytes, recvBytes *prometheus.Desc
	inflight, queued     *prometheus.Desc
	unacked, connected   *prometheus.Desc
	connects, dropped    *prometheus.Desc
	lastRTT              *prometheus.Desc
}

// NewCollector returns a Collector for src. constLabels, which may be nil,
// are added to every metric.
func NewCollector(src StatsSource, constLabels prometheus.Labels) *Collector {
	perQoS := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"qos"}, constLabels)
	}
	single := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, nil, constLabels)
	}
	return &Collector{
		src:       src,
		sentMsgs:  perQoS("mqtt_messages_sent_total", "Messages published, by QoS; re-sends after a reconnect are not counted."),
		recvMsgs:  perQoS("mqtt_messages_received_total", "Messages received, by QoS; re-deliveries of a message still held are not counted."),
		sentBytes: perQoS("mqtt_payload_bytes_sent_total", "Payload bytes of the messages published, by QoS."),
		recvBytes: perQoS("mqtt_payload_bytes_received_total", "Payload bytes of the messages received, by QoS."),
		inflight:  single("mqtt_inflight", "Packets sent and awaiting the broker's answer: QoS 1 and 2 publishes, subscribes and unsubscribes."),
		queued:    single("mqtt_queued", "Work waiting for a connection, a packet identifier or the broker's Receive Maximum."),
		unacked:   single("mqtt_unacked", "Received QoS 1 and 2 messages not yet acknowledged to the broker."),
		connected: single("mqtt_connected", "Whether the client has a connection now (1) or not (0)."),
		connects:  single("mqtt_connects_total", "Successful connections, the first one included."),
		dropped:   single("mqtt_dropped_total", "QoS 0 messages dropped because the application did not keep up."),
		lastRTT:   single("mqtt_last_rtt_seconds", "Round-trip time of the latest answered PINGREQ; 0 before the first."),
	}
}

// Describe sends the descriptions of every metric the Collector exports.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.sentMsgs, c.recvMsgs, c.sentBytes, c.recvBytes,
		c.inflight, c.queued, c.unacked, c.connected,
		c.connects, c.dropped, c.lastRTT,
	} {
		ch <- d
	}
}

// Collect takes one Stats snapshot and sends every metric from it.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	for q := range st.Sent {
		qos := strconv.Itoa(q)
		counter(c.sentMsgs, st.Sent[q].Messages, qos)
		counter(c.sentBytes, st.Sent[q].Bytes, qos)
		counter(c.recvMsgs, st.Received[q].Messages, qos)
		counter(c.recvBytes, st.Received[q].Bytes, qos)
	}
	gauge(c.inflight, float64(st.Inflight))
	gauge(c.queued, float64(st.Queued))
	gauge(c.unacked, float64(st.Unacked))
	connected := 0.0
	if st.Connected {
		connected = 1
	}
	gauge(c.connected, connected)
	counter(c.connects, st.Connects)
	counter(c.dropped, st.Dropped)
	gauge(c.lastRTT, st.LastRTT.Seconds())
}
