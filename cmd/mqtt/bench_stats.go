package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// benchResult is what a bench run measured.
type benchResult struct {
	publishers, subscribers int
	sent, wantSent          int64
	received, expected      int64
	pubDuration             time.Duration // first publish to the last acknowledgement
	duration                time.Duration // first publish to the last receipt (or acknowledgement)
	latencies               []time.Duration
}

// percentiles are the latency percentiles of the summary.
var percentiles = []struct {
	name string
	p    float64
}{{"p50", 50}, {"p90", 90}, {"p99", 99}, {"p99.9", 99.9}}

// print writes the summary, one "name: value" per line, then the latency
// histogram.
func (r *benchResult) print(w io.Writer) {
	fmt.Fprintf(w, "\nsummary\n")
	fmt.Fprintf(w, "sent: %d\n", r.sent)
	fmt.Fprintf(w, "received: %d\n", r.received)
	fmt.Fprintf(w, "expected: %d\n", r.expected)
	fmt.Fprintf(w, "lost: %d\n", r.expected-r.received)
	fmt.Fprintf(w, "duration: %s\n", roundDuration(r.duration))
	fmt.Fprintf(w, "publish throughput: %.0f msg/s\n", rate(r.sent, r.pubDuration))
	if r.subscribers > 0 {
		fmt.Fprintf(w, "receive throughput: %.0f msg/s\n", rate(r.received, r.duration))
	}
	if len(r.latencies) == 0 {
		return
	}
	lat := slices.Clone(r.latencies)
	slices.Sort(lat)
	for _, p := range percentiles {
		fmt.Fprintf(w, "latency %s: %s\n", p.name, roundDuration(percentile(lat, p.p)))
	}
	fmt.Fprintf(w, "latency max: %s\n", roundDuration(lat[len(lat)-1]))
	fmt.Fprintf(w, "\nlatency histogram\n")
	writeHistogram(w, lat)
}

// rate returns n per second over d.
func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// percentile returns the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank-1, 0), len(sorted)-1)]
}

// roundDuration rounds d for display: to the microsecond below a second, to
// the millisecond above.
func roundDuration(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}

// bucketBounds are the histogram's upper bounds: 1, 2, 5 times powers of ten
// from 10µs to 100s.
var bucketBounds = func() []time.Duration {
	var b []time.Duration
	for d := 10 * time.Microsecond; d <= 100*time.Second; d *= 10 {
		b = append(b, d, 2*d, 5*d)
	}
	return b
}()

// histBar is the width of the longest histogram bar.
const histBar = 40

// writeHistogram writes one row per bucket from the one holding the lowest
// latency to the one holding the highest: the range, a bar scaled to the
// fullest bucket, the count and the share.
func writeHistogram(w io.Writer, sorted []time.Duration) {
	counts := make([]int, len(bucketBounds)+1) // the last bucket is "100s and over"
	for _, d := range sorted {
		i, _ := slices.BinarySearch(bucketBounds, d+1)
		counts[i]++
	}
	first := slices.IndexFunc(counts, func(n int) bool { return n > 0 })
	last := len(counts) - 1
	for counts[last] == 0 {
		last--
	}
	fullest := slices.Max(counts)
	for i := first; i <= last; i++ {
		var label string
		switch {
		case i == 0:
			label = fmt.Sprintf("< %s", bucketBounds[0])
		case i == len(bucketBounds):
			label = fmt.Sprintf(">= %s", bucketBounds[i-1])
		default:
			label = fmt.Sprintf("%s - %s", bucketBounds[i-1], bucketBounds[i])
		}
		bar := strings.Repeat("#", int(math.Round(float64(counts[i])*histBar/float64(fullest))))
		fmt.Fprintf(w, "  %-17s |%-*s| %8d %5.1f%%\n", label, histBar, bar, counts[i], 100*float64(counts[i])/float64(len(sorted)))
	}
}
