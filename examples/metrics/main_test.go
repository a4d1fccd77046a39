package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds each test against the broker.
const testTimeout = 30 * time.Second

// exporter is one run of the example in the background.
type exporter struct {
	url   string        // of /metrics
	lines chan string   // the rest of its output
	done  chan struct{} // closed when run has returned
	err   error         // run's result, set before done is closed
	stop  context.CancelFunc
}

// startExporter runs the example with args against the broker at server
// and waits for it to report where it serves.
func startExporter(ctx context.Context, t *testing.T, server string, args ...string) *exporter {
	t.Helper()
	runCtx, stop := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	e := &exporter{lines: make(chan string, 100), done: make(chan struct{}), stop: stop}
	go func() {
		e.err = run(runCtx, append([]string{"-server", server, "-listen", "127.0.0.1:0"}, args...), pw)
		pw.CloseWithError(e.err)
		close(e.done)
	}()
	// On every path out of the test, the example stops before goleak looks.
	t.Cleanup(func() {
		stop()
		<-e.done
	})
	sc := bufio.NewScanner(pr)
	const prefix = "serving metrics on "
	for sc.Scan() {
		if url, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			e.url = url
			break
		}
	}
	if e.url == "" {
		stop()
		<-e.done
		t.Fatalf("no %q line: %v (run: %v)", prefix, sc.Err(), e.err)
	}
	go func() {
		defer close(e.lines)
		for sc.Scan() {
			select {
			case e.lines <- sc.Text():
			default: // nobody is reading; keep draining the pipe
			}
		}
	}()
	return e
}

// finish stops the example and checks that it exited cleanly.
func (e *exporter) finish(ctx context.Context, t *testing.T) {
	t.Helper()
	e.stop()
	select {
	case <-e.done:
		if e.err != nil {
			t.Errorf("run: %v", e.err)
		}
	case <-ctx.Done():
		t.Fatal("the example did not exit")
	}
}

// TestExporter runs the example against mosquitto: it publishes -count
// messages at QoS 1 and receives them back, another client publishes to
// its filter at QoS 0 and 2, and a scrape of /metrics must show exactly
// those counts and payload sizes.
func TestExporter(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	scraper := newScraper(t)

	e := startExporter(ctx, t, b.URL(), "-topic", "test/exporter/tick", "-filter", "test/exporter/#",
		"-qos", "1", "-count", "5", "-interval", "5ms", "-ping", "20ms")
	pub, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{b.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for i, qos := range []mqtt.QoS{0, 0, 0, 2, 2} {
		if err := pub.Publish(ctx, mqtt.Message{Topic: "test/exporter/other", QoS: qos, Payload: []byte(strings.Repeat("x", i+1))}); err != nil {
			t.Fatal(err)
		}
	}

	// "tick 000000": 11 bytes each. The other client sent 1+2+3 bytes at
	// QoS 0 and 4+5 at QoS 2.
	want := map[string]float64{
		`mqtt_messages_sent_total{qos="0"}`:          0,
		`mqtt_messages_sent_total{qos="1"}`:          5,
		`mqtt_messages_sent_total{qos="2"}`:          0,
		`mqtt_payload_bytes_sent_total{qos="1"}`:     55,
		`mqtt_messages_received_total{qos="0"}`:      3,
		`mqtt_messages_received_total{qos="1"}`:      5,
		`mqtt_messages_received_total{qos="2"}`:      2,
		`mqtt_payload_bytes_received_total{qos="0"}`: 6,
		`mqtt_payload_bytes_received_total{qos="1"}`: 55,
		`mqtt_payload_bytes_received_total{qos="2"}`: 9,
		`mqtt_inflight`:       0,
		`mqtt_queued`:         0,
		`mqtt_unacked`:        0,
		`mqtt_connected`:      1,
		`mqtt_connects_total`: 1,
		`mqtt_dropped_total`:  0,
	}
	got := scraper.waitFor(ctx, e.url, func(m metrics) bool {
		return m.matches(want) && m.values["mqtt_last_rtt_seconds"] > 0
	})
	if !got.matches(want) {
		t.Fatalf("metrics never matched:\n%s", got.diff(want))
	}
	if rtt := got.values["mqtt_last_rtt_seconds"]; rtt <= 0 || rtt > 5 {
		t.Errorf("mqtt_last_rtt_seconds = %v, want a positive round trip under 5 s", rtt)
	}
	for name, typ := range map[string]string{
		"mqtt_messages_sent_total": "counter", "mqtt_payload_bytes_received_total": "counter",
		"mqtt_connects_total": "counter", "mqtt_dropped_total": "counter",
		"mqtt_connected": "gauge", "mqtt_inflight": "gauge", "mqtt_last_rtt_seconds": "gauge",
	} {
		if got.types[name] != typ {
			t.Errorf("# TYPE %s = %q, want %q", name, got.types[name], typ)
		}
	}
	e.finish(ctx, t)
}

// TestExporterReconnect kills the broker under the example: the scrape
// must show mqtt_connected 0 while it is down, then 1 and a second
// connection once it is back.
func TestExporterReconnect(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	scraper := newScraper(t)

	e := startExporter(ctx, t, b.URL(), "-topic", "test/reconnect/tick", "-filter", "test/reconnect/#", "-interval", "50ms")
	if m := scraper.waitFor(ctx, e.url, func(m metrics) bool { return m.values["mqtt_connected"] == 1 }); m.values["mqtt_connected"] != 1 {
		t.Fatalf("never connected:\n%s", m.text)
	}
	b.Kill(t)
	if m := scraper.waitFor(ctx, e.url, func(m metrics) bool { return m.values["mqtt_connected"] == 0 }); m.values["mqtt_connected"] != 0 {
		t.Fatalf("still connected after the broker was killed:\n%s", m.text)
	}
	b.Restart(t)
	back := map[string]float64{"mqtt_connected": 1, "mqtt_connects_total": 2}
	if m := scraper.waitFor(ctx, e.url, func(m metrics) bool { return m.matches(back) }); !m.matches(back) {
		t.Fatalf("did not reconnect:\n%s", m.diff(back))
	}
	e.finish(ctx, t)
	var events []string
	for line := range e.lines {
		if strings.HasPrefix(line, "event: ") {
			events = append(events, line)
		}
	}
	if !containsInOrder(events, "event: connection lost", "event: connected") {
		t.Errorf("events printed: %q; want a lost connection, then a connection", events)
	}
}

// TestArgs checks that bad command lines fail before anything is dialed
// or bound.
func TestArgs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-listen", "0.0.0.0:9464"}, "loopback"},
		{[]string{"-listen", "[::]:9464"}, "loopback"},
		{[]string{"-listen", "example:9464"}, "loopback"},
		{[]string{"-listen", "9464"}, "-listen"},
		{[]string{"-qos", "3"}, "-qos 3"},
		{[]string{"-interval", "0s"}, "-interval 0s"},
		{[]string{"-ping", "-1s"}, "-ping -1s"},
		{[]string{"-count", "-1"}, "-count -1"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		err := run(context.Background(), append([]string{"-server", "mqtt://127.0.0.1:1"}, tc.args...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run %q = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	for _, ok := range []string{"127.0.0.1:0", "[::1]:9464", "localhost:9464", "127.1.2.3:80"} {
		if err := checkLoopback(ok); err != nil {
			t.Errorf("checkLoopback(%q) = %v", ok, err)
		}
	}
}

// metrics is one parsed scrape in the text exposition format.
type metrics struct {
	text   string
	values map[string]float64 // by name and labels as written, e.g. mqtt_x{qos="1"}
	types  map[string]string  // by metric family name
}

// parseMetrics reads the text format: "# TYPE name type" lines and
// "name{labels} value" samples.
func parseMetrics(text string) (metrics, error) {
	m := metrics{text: text, values: map[string]float64{}, types: map[string]string{}}
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			m.types[name] = typ
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return m, fmt.Errorf("sample without a value: %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return m, fmt.Errorf("sample %q: %w", line, err)
		}
		m.values[line[:i]] = v
	}
	return m, nil
}

// matches reports whether every sample in want has its value.
func (m metrics) matches(want map[string]float64) bool {
	for k, v := range want {
		if got, ok := m.values[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// diff lists the samples of want that differ.
func (m metrics) diff(want map[string]float64) string {
	var b strings.Builder
	for k, v := range want {
		if got, ok := m.values[k]; !ok {
			fmt.Fprintf(&b, "%s: missing, want %v\n", k, v)
		} else if got != v {
			fmt.Fprintf(&b, "%s = %v, want %v\n", k, got, v)
		}
	}
	return b.String()
}

// scraper fetches /metrics over loopback.
type scraper struct {
	t      *testing.T
	client *http.Client
}

func newScraper(t *testing.T) *scraper {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &scraper{t: t, client: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
}

// scrape fetches and parses one scrape; failures are fatal.
func (s *scraper) scrape(ctx context.Context, url string) metrics {
	s.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		s.t.Fatalf("scrape: %s %v\n%s", resp.Status, err, body)
	}
	m, err := parseMetrics(string(body))
	if err != nil {
		s.t.Fatal(err)
	}
	return m
}

// waitFor scrapes every 10 ms until ok holds or ctx ends (at most 10 s),
// and returns the last scrape.
func (s *scraper) waitFor(ctx context.Context, url string, ok func(metrics) bool) metrics {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		m := s.scrape(ctx, url)
		if ok(m) {
			return m
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return m
		}
	}
}

// containsInOrder reports whether want appears in got as a subsequence.
func containsInOrder(got []string, want ...string) bool {
	for _, g := range got {
		if len(want) > 0 && g == want[0] {
			want = want[1:]
		}
	}
	return len(want) == 0
}
