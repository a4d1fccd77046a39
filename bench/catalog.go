package main

import (
	"context"
	"fmt"
	"time"
)

// workload is one measured scenario.
type workload struct {
	name    string
	what    string         // one line for the table
	targets []string       // brokers it runs against
	n       map[string]int // default message or connection count per target
	timeout time.Duration  // per run
	run     func(context.Context, env) (result, error)
	metrics []metric
	skip    map[string]string // clients not run, with the reason
}

// metric is one row of the comparison table.
type metric struct {
	label  string
	target string // "" for every target of the workload
	get    func(result) float64
	lower  bool   // lower is better (latency, memory)
	noRaw  bool   // ours ÷ raw says nothing (raw allocates nothing)
	goal   string // the DESIGN number, "" when it sets none
	// met reports whether ours meets the goal, given the medians of ours,
	// the best peer and raw.
	met func(ours, best, raw float64) bool
}

func rate(r result) float64      { return r.Rate }
func allocs(r result) float64    { return r.Allocs }
func p50(r result) float64       { return r.P50 }
func p99(r result) float64       { return r.P99 }
func p999(r result) float64      { return r.P999 }
func connBytes(r result) float64 { return r.ConnBytes }
func peakMiB(r result) float64   { return r.PeakMiB }
func brokerMiB(r result) float64 { return r.BrokerMiB }
func brokerCPU(r result) float64 { return r.BrokerCPU }

// timesPeer is the goal "at least k times the best peer".
func timesPeer(k float64) func(o, best, _ float64) bool {
	return func(o, best, _ float64) bool { return best > 0 && o >= k*best }
}

// noWorseThanPeers is the goal "no more than the best peer" for a metric
// where lower is better.
func noWorseThanPeers(o, best, _ float64) bool { return best > 0 && o <= best }
func nearRaw(o, _, raw float64) bool           { return raw > 0 && o >= 0.95*raw }
func atMost(limit float64) func(o, _, _ float64) bool {
	return func(o, _, _ float64) bool { return o <= limit }
}

func pubMetrics(sinkGoal bool) []metric {
	m := []metric{
		{label: "msg/s", target: "sink", get: rate},
		{label: "msg/s", target: "mosquitto", get: rate, goal: "≥ 0.95× raw", met: nearRaw},
	}
	if sinkGoal {
		m[0].goal, m[0].met = "≥ 10× best peer", timesPeer(10)
	}
	return m
}

// latMetrics are the latency rows; goal names the percentile ("p50" or
// "p99.9") that DESIGN.md bounds at 1.3× raw, "" for none.
func latMetrics(goal string) []metric {
	m := []metric{
		{label: "p50 µs", get: p50, lower: true},
		{label: "p99 µs", get: p99, lower: true},
		{label: "p99.9 µs", get: p999, lower: true},
	}
	for i := range m {
		if m[i].label == goal+" µs" {
			m[i].goal = "≤ 1.3× raw"
			m[i].met = func(o, _, raw float64) bool { return raw > 0 && o <= 1.3*raw }
		}
	}
	return m
}

// e2eMetrics are the rows of the publisher → mosquitto → subscriber runs.
var e2eMetrics = []metric{
	{label: "msg/s", get: rate, goal: "≥ 1.0× best peer", met: timesPeer(1)},
	{label: "broker CPU µs/msg", get: brokerCPU, lower: true, goal: "≤ best peer", met: noWorseThanPeers},
}

var sinkAndMosquitto = []string{"sink", "mosquitto"}

var workloads = []workload{
	{
		name: "pub-qos0", what: "QoS 0 publish", targets: sinkAndMosquitto,
		n: map[string]int{"sink": 200000, "mosquitto": 200000}, run: runPub(0),
		metrics: append(pubMetrics(true),
			metric{label: "allocs/msg", target: "sink", get: allocs, lower: true, noRaw: true, goal: "0", met: atMost(0.02)}),
	},
	{
		name: "pub-qos1", what: "QoS 1 publish, 1000 in flight", targets: sinkAndMosquitto,
		n: map[string]int{"sink": 100000, "mosquitto": 100000}, run: runPub(1),
		metrics: append(pubMetrics(true),
			metric{label: "allocs/msg", target: "sink", get: allocs, lower: true, noRaw: true, goal: "≤ 1", met: atMost(1.02)}),
	},
	{
		name: "pub-qos2", what: "QoS 2 publish, 1000 in flight", targets: sinkAndMosquitto,
		n: map[string]int{"sink": 50000, "mosquitto": 50000}, run: runPub(2),
		metrics: append(pubMetrics(false),
			metric{label: "allocs/msg", target: "sink", get: allocs, lower: true, noRaw: true, goal: "≤ 1", met: atMost(1.02)}),
	},
	{
		name: "lat-qos1", what: "QoS 1 publish-and-wait, 1 in flight", targets: sinkAndMosquitto,
		n: map[string]int{"sink": 20000, "mosquitto": 20000}, run: runLat,
		metrics: latMetrics("p50"),
	},
	{
		name: "e2e-qos0", what: "QoS 0 publisher → mosquitto → subscriber", targets: []string{"mosquitto"},
		n: map[string]int{"mosquitto": 200000}, run: runE2E(0),
		metrics: e2eMetrics,
	},
	{
		name: "e2e-qos1", what: "QoS 1 publisher → mosquitto → subscriber, 1000 in flight", targets: []string{"mosquitto"},
		n: map[string]int{"mosquitto": 100000}, run: runE2E(1),
		metrics: e2eMetrics,
	},
	{
		name: "e2e-cpu", what: "QoS 0 publisher → mosquitto → subscriber at 20,000 msg/s", targets: []string{"mosquitto"},
		n: map[string]int{"mosquitto": 60000}, run: runE2ECPU,
		metrics: []metric{{label: "broker CPU µs/msg", get: brokerCPU, lower: true, goal: "≤ best peer", met: noWorseThanPeers}},
	},
	{
		name: "e2e-lat", what: "QoS 0 publisher → mosquitto → subscriber, 1 in flight", targets: []string{"mosquitto"},
		n: map[string]int{"mosquitto": 20000}, run: runE2ELat,
		metrics: latMetrics("p99.9"),
	},
	{
		name: "recv-qos0", what: "receive flood, QoS 0", targets: []string{"sink"},
		n: map[string]int{"sink": 200000}, run: runRecv(0),
		metrics: []metric{
			{label: "msg/s", get: rate, goal: "≥ 20× best peer", met: timesPeer(20)},
			{label: "allocs/msg", get: allocs, lower: true, noRaw: true, goal: "≤ 1", met: atMost(1.02)},
		},
	},
	{
		name: "recv-qos1", what: "receive flood, QoS 1, window 1000", targets: []string{"sink"},
		n: map[string]int{"sink": 100000}, run: runRecv(1),
		metrics: []metric{
			{label: "msg/s", get: rate, goal: "≥ 15× best peer", met: timesPeer(15)},
			{label: "allocs/msg", get: allocs, lower: true, noRaw: true, goal: "≤ 1", met: atMost(1.02)},
		},
	},
	{
		name: "idle", what: "idle connections: Go heap + stacks per connection", targets: []string{"mosquitto"},
		n: map[string]int{"mosquitto": 1000}, run: runIdle,
		metrics: []metric{{label: "bytes/conn", get: connBytes, lower: true, goal: "≤ 16 KiB", met: atMost(16 << 10)}},
	},
	{
		name: "conn", what: "connect, one QoS 1 publish each, disconnect", targets: []string{"mosquitto"},
		n: map[string]int{"mosquitto": 10000}, run: runConns, timeout: 90 * time.Second,
		skip: map[string]string{"autopaho": "autopaho wraps the pahov5 client (same memory per connection) and takes about 30 s per run here"},
		metrics: []metric{
			{label: "conn/s", get: rate},
			{label: "heap+stack MiB, all open", get: peakMiB, lower: true},
			{label: "mosquitto RSS MiB", get: brokerMiB, lower: true},
		},
	},
}

func findWorkload(name string) (workload, error) {
	for _, w := range workloads {
		if w.name == name {
			return w, nil
		}
	}
	return workload{}, fmt.Errorf("unknown workload %q", name)
}

func (w workload) runTimeout() time.Duration {
	if w.timeout > 0 {
		return w.timeout
	}
	return 30 * time.Second
}
