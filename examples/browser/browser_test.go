//go:build !js

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/brokertest"
	_ "github.com/b4e21b16/mqtt/websocket"
	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
)

// maxWasmGzip bounds the compressed size of the app.
const maxWasmGzip = 2_000_000

// benchMessages is the size of each throughput run.
const benchMessages = 5000

// pageState is what window.mqttDemo.state() returns.
type pageState struct {
	Status           string `json:"status"`
	Connects         int    `json:"connects"`
	SessionPresent   bool   `json:"sessionPresent"`
	Shown            int    `json:"shown"`
	Subscriptions    int    `json:"subscriptions"`
	BenchReceived    int    `json:"benchReceived"`
	LastError        string `json:"lastError"`
	Goroutines       int    `json:"goroutines"`
	GoroutinesBefore int    `json:"goroutinesBeforeConnect"`
}

// row is a message in the page's table.
type row struct {
	Topic   string `json:"topic"`
	QoS     string `json:"qos"`
	Retain  string `json:"retain"`
	Payload string `json:"payload"`
}

// browserEnv skips the test, or fails it when CI is set, without what the
// browser test needs: the network namespace and Chromium.
func browserEnv(t *testing.T) string {
	t.Helper()
	var missing error
	if os.Getenv(netnsEnv) == "" {
		missing = fmt.Errorf("mosquitto's WebSocket listener is used only in a private network namespace: %w", netnsAvailable())
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		var err error
		if chromium, err = exec.LookPath("chromium"); err != nil && missing == nil {
			missing = fmt.Errorf("Chromium is needed (apt-get install chromium): %w", err)
		}
	}
	if missing != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(missing)
		}
		t.Skip(missing)
	}
	return chromium
}

// TestBrowser runs the page in headless Chromium against mosquitto's
// WebSocket listener, next to native clients: messages at every QoS both
// ways, a retained message, a broker restart that the page's client
// survives with its session, Close ending every goroutine of the page, and
// the throughput between the page and a native client.
func TestBrowser(t *testing.T) {
	chromium := browserEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	b := brokertest.Start(t, brokertest.Options{WebSocket: true, Persistence: true})
	wsURL := b.WebSocketURL() + "/mqtt"

	wasm, err := buildApp(ctx, filepath.Join(t.TempDir(), "app.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPage(wasm)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("app.wasm: %d bytes, %d gzip", len(p.wasm), len(p.wasmGzip))
	if len(p.wasmGzip) > maxWasmGzip {
		t.Errorf("app.wasm is %d bytes gzip, more than %d", len(p.wasmGzip), maxWasmGzip)
	}
	srv := httptest.NewServer(p)
	defer srv.Close()

	page := openPage(t, ctx, chromium, srv.URL+"/?broker="+url.QueryEscape(wsURL))

	native := connectNative(t, ctx, b.URL(), "native-"+t.Name())
	if err := native.Publish(ctx, mqtt.Message{Topic: "demo/retained", Payload: []byte("kept"), QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}
	fromBrowser, err := native.Subscribe(ctx, "demo/browser/#", mqtt.ExactlyOnce)
	if err != nil {
		t.Fatal(err)
	}

	page.set("clientid", "browser-test")
	page.click("connect")
	connected := page.waitState("connected", func(s pageState) bool { return strings.HasPrefix(s.Status, "connected") && s.Connects == 1 })
	page.set("filter", "demo/#")
	page.set("subqos", "2")
	page.click("subscribe")
	page.waitRow(row{Topic: "demo/retained", QoS: "1", Retain: "true", Payload: "kept"})

	for qos := range mqtt.QoS(3) {
		payload := fmt.Sprintf("native at QoS %d", qos)
		if err := native.Publish(ctx, mqtt.Message{Topic: "demo/native", Payload: []byte(payload), QoS: qos}); err != nil {
			t.Fatal(err)
		}
		page.waitRow(row{Topic: "demo/native", QoS: strconv.Itoa(int(qos)), Retain: "false", Payload: payload})
	}
	for qos := range mqtt.QoS(3) {
		want := mqtt.Message{Topic: fmt.Sprintf("demo/browser/q%d", qos), Payload: []byte(fmt.Sprintf("browser at QoS %d", qos)), QoS: qos}
		page.set("topic", want.Topic)
		page.set("payload", string(want.Payload))
		page.set("qos", strconv.Itoa(int(qos)))
		page.click("publish")
		expectMessage(t, ctx, fromBrowser.Messages(), want)
	}

	// The broker restarts; the page's client reconnects and resumes its
	// session: a publish made while the broker is down goes out after the
	// reconnection, and the subscription holds without being made again.
	b.Stop(t)
	page.waitState("the connection lost", func(s pageState) bool { return !strings.HasPrefix(s.Status, "connected") })
	page.set("topic", "demo/browser/offline")
	page.set("payload", "published while the broker was down")
	page.set("qos", "1")
	page.click("publish")
	b.Restart(t)
	page.waitState("reconnected with its session", func(s pageState) bool {
		return strings.HasPrefix(s.Status, "connected") && s.Connects == 2 && s.SessionPresent
	})
	expectMessage(t, ctx, fromBrowser.Messages(), mqtt.Message{Topic: "demo/browser/offline", Payload: []byte("published while the broker was down"), QoS: 1})
	if err := native.Publish(ctx, mqtt.Message{Topic: "demo/after-restart", Payload: []byte("still subscribed"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	page.waitRow(row{Topic: "demo/after-restart", QoS: "1", Retain: "false", Payload: "still subscribed"})

	measureThroughput(t, ctx, page, wsURL)

	page.click("close")
	before := connected.GoroutinesBefore
	page.waitState("closed with no goroutine left", func(s pageState) bool { return s.Status == "closed" && s.Goroutines == before })
	page.waitText("status", fmt.Sprintf("goroutines: %d (%d before connecting)", before, before))
	if s := page.state(); s.LastError != "" {
		t.Errorf("the page reported an error: %s", s.LastError)
	}
	page.screenshot("browser-test.png")

	// Close ends the browser's WebSocket normally (status 1000), as a
	// relay in front of mosquitto's TCP listener sees it.
	r := startRelay(t, b.Addr())
	page.set("broker", r.URL())
	page.set("clientid", "browser-close")
	page.click("connect")
	page.waitState("connected through the relay", func(s pageState) bool { return strings.HasPrefix(s.Status, "connected") && s.Connects == 3 })
	page.click("close")
	page.waitState("closed again", func(s pageState) bool { return s.Status == "closed" })
	select {
	case status := <-r.closed:
		if status != websocket.StatusNormalClosure {
			t.Errorf("the page's WebSocket ended with status %v, want %v", status, websocket.StatusNormalClosure)
		}
	case <-time.After(10 * time.Second):
		t.Error("the relay saw no end of the page's WebSocket")
	}
}

// tab drives the example's page in Chromium.
type tab struct {
	t   *testing.T
	ctx context.Context
}

// openPage starts Chromium and loads address, waiting for the app to run.
// Chromium ends with the test.
func openPage(t *testing.T, ctx context.Context, chromium, address string) *tab {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// The page is not visible; it must not be throttled as a
		// background tab would be.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc() // waits for Chromium to exit
	})
	if err := chromedp.Do(bctx, chromedp.Navigate(address), chromedp.WaitVisible(chromedp.CSS(`#app[data-ready="true"]`))); err != nil {
		t.Fatalf("loading the page in Chromium: %v", err)
	}
	return &tab{t: t, ctx: bctx}
}

// do runs steps in the page.
func (p *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatal(err)
	}
}

// evaluate returns what the JavaScript expression evaluates to in the page.
func evaluate[T any](p *tab, expression string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expression))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", expression, err)
	}
	return v
}

// set sets the value of the form field id.
func (p *tab) set(id, value string) {
	p.t.Helper()
	p.do(chromedp.SetValue(chromedp.CSS("#"+id), value))
}

// click clicks the button id.
func (p *tab) click(id string) {
	p.t.Helper()
	p.do(chromedp.Click(chromedp.CSS("#" + id)))
}

func (p *tab) state() pageState {
	p.t.Helper()
	js := evaluate[string](p, `mqttDemo.state()`)
	var s pageState
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		p.t.Fatalf("page state %q: %v", js, err)
	}
	return s
}

// waitState polls the page's state until ok returns true, for at most 30 s.
func (p *tab) waitState(what string, ok func(pageState) bool) pageState {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := p.state()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the page is not %s: %+v", what, s)
		}
		p.pause(20 * time.Millisecond)
	}
}

// pause lets the page run for d.
func (p *tab) pause(d time.Duration) {
	select {
	case <-time.After(d):
	case <-p.ctx.Done():
	}
}

func (p *tab) rows() []row {
	p.t.Helper()
	return evaluate[[]row](p, `Array.from(document.querySelectorAll("#messages tr.msg"), (r) => ({
		topic: r.dataset.topic, qos: r.dataset.qos, retain: r.dataset.retain, payload: r.dataset.payload }))`)
}

// waitRow waits for want to be shown in the message table.
func (p *tab) waitRow(want row) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows := p.rows()
		for _, r := range rows {
			if r == want {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the page does not show %+v; it shows %+v", want, rows)
		}
		p.pause(20 * time.Millisecond)
	}
}

// waitText waits for the text of element id to contain want.
func (p *tab) waitText(id, want string) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		text := evaluate[string](p, `document.getElementById("`+id+`").textContent`)
		if strings.Contains(text, want) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("#%s shows %q; want it to contain %q", id, text, want)
		}
		p.pause(20 * time.Millisecond)
	}
}

// screenshot writes a picture of the page into this package's directory.
func (p *tab) screenshot(name string) {
	p.t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100)) // quality 100: a PNG
	if err != nil {
		p.t.Fatal(err)
	}
	path, err := filepath.Abs(name)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot of the page: %s", path)
}

// connectNative connects a native client with a persistent session.
func connectNative(t *testing.T, ctx context.Context, server, id string) *mqtt.Client {
	t.Helper()
	c, err := mqtt.Connect(ctx, mqtt.Config{
		Servers:       []string{server},
		ClientID:      strings.NewReplacer("/", "-").Replace(id),
		SessionExpiry: time.Hour,
		Reconnect:     mqtt.ReconnectConfig{MinDelay: 100 * time.Millisecond, MaxDelay: time.Second},
	})
	if err != nil {
		t.Fatalf("Connect %s: %v", server, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func expectMessage(t *testing.T, ctx context.Context, ch <-chan mqtt.Message, want mqtt.Message) {
	t.Helper()
	select {
	case m := <-ch:
		if m.Topic != want.Topic || !bytes.Equal(m.Payload, want.Payload) || m.QoS != want.QoS {
			t.Fatalf("native client received %s %q at QoS %d; want %s %q at QoS %d", m.Topic, m.Payload, m.QoS, want.Topic, want.Payload, want.QoS)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("native client: no message %s", want.Topic)
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
}
