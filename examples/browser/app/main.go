//go:build js && wasm

// Command app is the browser side of examples/browser, compiled with
// GOOS=js GOARCH=wasm. It connects the MQTT client to a broker's WebSocket
// listener through the browser's own WebSocket (package
// github.com/b4e21b16/mqtt/websocket), subscribes and publishes from the
// page's form, and shows messages live with their QoS.
//
// The page's buttons call into Go through syscall/js. A handler must not
// block the browser's event loop, so each one starts a goroutine; the
// client's channels are read by goroutines of their own, the same select
// loops as in a native program.
//
// window.mqttDemo offers the page's state to scripts (and to the
// example's browser test): state() returns it as JSON, and
// benchPublish(topic, count, qos) publishes count messages of 64 bytes
// with up to 256 in flight and resolves to the milliseconds it took.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall/js"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/examples/browser/internal/pipeline"
	_ "github.com/b4e21b16/mqtt/websocket" // serves ws:// and wss://
)

// benchPrefix starts the topics whose messages are counted, not shown.
const benchPrefix = "bench/"

// maxRows bounds the messages the table keeps.
const maxRows = 200

var document = js.Global().Get("document")

func byID(id string) js.Value { return document.Call("getElementById", id) }

func value(id string) string { return byID(id).Get("value").String() }

// demo is the page's state. Its fields are guarded by mu: handlers and the
// client's reading goroutines update it.
type demo struct {
	mu             sync.Mutex
	client         *mqtt.Client
	readCtx        context.Context    // ends the reading goroutines
	stop           context.CancelFunc // ends readCtx
	readers        sync.WaitGroup
	status         string
	connects       int
	sessionPresent bool
	shown          int // messages shown in the table
	subscriptions  int
	benchReceived  int
	lastError      string
	baseline       int // goroutines when Connect was clicked without a client
}

func main() {
	d := &demo{status: "not connected"}
	go d.refresh()
	byID("broker").Set("value", defaultBroker())
	byID("clientid").Set("value", fmt.Sprintf("browser-%d", time.Now().UnixNano()%1e6))
	byID("connect").Call("addEventListener", "click", js.FuncOf(func(js.Value, []js.Value) any {
		d.noteBaseline()
		go d.connect()
		return nil
	}))
	on("close", d.close)
	on("subscribe", d.subscribe)
	on("publish", d.publish)
	api := js.Global().Get("Object").New()
	api.Set("state", js.FuncOf(func(js.Value, []js.Value) any { return d.state() }))
	api.Set("benchPublish", js.FuncOf(d.benchPublish))
	js.Global().Set("mqttDemo", api)
	d.render()
	byID("app").Get("dataset").Set("ready", "true")
	select {} // handlers run for as long as the page is open
}

// defaultBroker is the page's ?broker= parameter, or the WebSocket
// listener the example's server names.
func defaultBroker() string {
	q := js.Global().Get("URLSearchParams").New(js.Global().Get("location").Get("search"))
	if b := q.Call("get", "broker"); !b.IsNull() {
		return b.String()
	}
	return "ws://127.0.0.1:9001/mqtt"
}

// on runs fn in a goroutine of its own each time the button id is clicked.
func on(id string, fn func()) {
	byID(id).Call("addEventListener", "click", js.FuncOf(func(js.Value, []js.Value) any {
		go fn()
		return nil
	}))
}

func (d *demo) connect() {
	d.mu.Lock()
	if d.client != nil {
		d.mu.Unlock()
		d.log("already connected: Close first")
		return
	}
	d.status = "connecting"
	d.mu.Unlock()
	d.render()
	broker, id := value("broker"), value("clientid")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.Config{
		Servers:       []string{broker},
		ClientID:      id,
		SessionExpiry: time.Hour, // the session outlives a broker restart
		Reconnect:     mqtt.ReconnectConfig{MinDelay: 250 * time.Millisecond, MaxDelay: 2 * time.Second},
	})
	if err != nil {
		d.fail("connect", err)
		d.mu.Lock()
		d.status = "not connected"
		d.mu.Unlock()
		d.render()
		return
	}
	rctx, stop := context.WithCancel(context.Background())
	d.mu.Lock()
	d.client, d.readCtx, d.stop = c, rctx, stop
	d.status = "connected to " + broker
	d.mu.Unlock() // connects and sessionPresent follow EventConnected
	d.log(fmt.Sprintf("connected as %s (session present: %v)", id, c.Connection().SessionPresent))
	d.render()
	d.readers.Add(2)
	go d.readEvents(rctx, c)
	go d.readMessages(rctx, c.Messages())
}

// readEvents follows the connection's state changes.
func (d *demo) readEvents(ctx context.Context, c *mqtt.Client) {
	defer d.readers.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-c.Events():
			if !ok {
				return
			}
			d.mu.Lock()
			switch ev.Kind {
			case mqtt.EventConnected:
				d.connects++
				d.sessionPresent = ev.SessionPresent
				d.status = "connected to " + ev.Server
			case mqtt.EventConnectionLost:
				d.status = "connection lost"
			case mqtt.EventReconnecting:
				d.status = "reconnecting (attempt " + strconv.Itoa(ev.Attempt) + ")"
			case mqtt.EventGaveUp:
				d.status = "gave up"
			}
			d.mu.Unlock()
			d.log(eventText(ev))
			d.render()
		}
	}
}

func eventText(ev mqtt.Event) string {
	switch ev.Kind {
	case mqtt.EventConnected:
		return fmt.Sprintf("connected to %s (session present: %v)", ev.Server, ev.SessionPresent)
	case mqtt.EventConnectionLost:
		return fmt.Sprintf("connection lost: %v", ev.Err)
	case mqtt.EventReconnecting:
		return fmt.Sprintf("reconnecting in %v (attempt %d)", ev.Delay.Round(time.Millisecond), ev.Attempt)
	case mqtt.EventResubscribed:
		return "subscriptions made again"
	case mqtt.EventGaveUp:
		return fmt.Sprintf("gave up: %v", ev.Err)
	}
	return fmt.Sprintf("event %d", ev.Kind)
}

// readMessages shows each message of ch until it closes or ctx ends.
func (d *demo) readMessages(ctx context.Context, ch <-chan mqtt.Message) {
	defer d.readers.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			d.show(m)
		}
	}
}

func (d *demo) subscribe() {
	c := d.current()
	if c == nil {
		d.log("not connected")
		return
	}
	filter := value("filter")
	qos, _ := strconv.Atoi(value("subqos"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.Subscribe(ctx, filter, mqtt.QoS(qos))
	if err != nil {
		d.fail("subscribe "+filter, err)
		return
	}
	d.log(fmt.Sprintf("subscribed to %s, granted QoS %d", filter, s.Granted()[0].Code))
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.client == c {
		d.subscriptions++
		d.readers.Add(1)
		go d.readMessages(d.readCtx, s.Messages())
	}
}

func (d *demo) publish() {
	c := d.current()
	if c == nil {
		d.log("not connected")
		return
	}
	qos, _ := strconv.Atoi(value("qos"))
	m := mqtt.Message{
		Topic:   value("topic"),
		Payload: []byte(value("payload")),
		QoS:     mqtt.QoS(qos),
		Retain:  byID("retain").Get("checked").Bool(),
	}
	// While the client reconnects, the publish waits for the connection.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Publish(ctx, m); err != nil {
		d.fail("publish to "+m.Topic, err)
		return
	}
	d.log(fmt.Sprintf("published %q to %s at QoS %d", m.Payload, m.Topic, m.QoS))
}

// close ends the client and every goroutine it or the page started for it.
func (d *demo) close() {
	d.mu.Lock()
	c, stop := d.client, d.stop
	d.client = nil
	d.mu.Unlock()
	if c == nil {
		d.log("not connected")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.Disconnect(ctx) // returns once the client's goroutines have ended
	stop()
	d.readers.Wait()
	d.mu.Lock()
	d.status = "closed"
	d.mu.Unlock()
	if err != nil {
		d.fail("disconnect", err)
	} else {
		d.log("disconnected")
	}
	d.render()
}

func (d *demo) current() *mqtt.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.client
}

// show adds m to the table, or counts it when its topic is a benchmark's.
func (d *demo) show(m mqtt.Message) {
	d.mu.Lock()
	if strings.HasPrefix(m.Topic, benchPrefix) {
		d.benchReceived++
		d.mu.Unlock()
		return
	}
	d.shown++
	d.mu.Unlock()
	row := document.Call("createElement", "tr")
	row.Set("className", "msg")
	ds := row.Get("dataset")
	ds.Set("topic", m.Topic)
	ds.Set("qos", int(m.QoS))
	ds.Set("retain", m.Retain)
	ds.Set("payload", string(m.Payload))
	for _, text := range []string{time.Now().Format("15:04:05.000"), m.Topic, "QoS " + strconv.Itoa(int(m.QoS)), retainText(m.Retain), string(m.Payload)} {
		cell := document.Call("createElement", "td")
		cell.Set("textContent", text)
		row.Call("appendChild", cell)
	}
	table := byID("messages")
	table.Call("insertBefore", row, table.Get("firstChild"))
	for table.Get("children").Get("length").Int() > maxRows {
		table.Call("removeChild", table.Get("lastChild"))
	}
	d.render()
}

func retainText(retain bool) string {
	if retain {
		return "retained"
	}
	return ""
}

// log adds a line to the page's log.
func (d *demo) log(line string) {
	el := byID("log")
	text := time.Now().Format("15:04:05.000 ") + line + "\n" + el.Get("textContent").String()
	if len(text) > 16<<10 {
		text = text[:16<<10]
	}
	el.Set("textContent", text)
}

func (d *demo) fail(what string, err error) {
	d.mu.Lock()
	d.lastError = what + ": " + err.Error()
	d.mu.Unlock()
	d.log(what + " failed: " + err.Error())
	d.render()
}

// noteBaseline counts the goroutines before a client is connected, from
// the browser's event handler: main, refresh and the runtime's goroutine
// for JavaScript events.
func (d *demo) noteBaseline() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.client == nil {
		d.baseline = runtime.NumGoroutine()
	}
}

// refresh renders the page's state twice a second, so that its goroutine
// count settles once the goroutines of a click have ended.
func (d *demo) refresh() {
	tick := time.NewTicker(500 * time.Millisecond)
	for range tick.C {
		d.render()
	}
}

// render shows the state in the page's status line.
func (d *demo) render() {
	d.mu.Lock()
	text := fmt.Sprintf("%s · connections: %d · session present: %v · messages: %d · goroutines: %d (%d before connecting)",
		d.status, d.connects, d.sessionPresent, d.shown, runtime.NumGoroutine(), d.baseline)
	d.mu.Unlock()
	byID("status").Set("textContent", text)
}

// state returns the page's state as JSON.
func (d *demo) state() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, _ := json.Marshal(map[string]any{
		"status": d.status, "connects": d.connects, "sessionPresent": d.sessionPresent,
		"shown": d.shown, "subscriptions": d.subscriptions, "benchReceived": d.benchReceived, "lastError": d.lastError,
		"goroutines": runtime.NumGoroutine(), "goroutinesBeforeConnect": d.baseline,
	})
	return string(b)
}

// benchPublish publishes args[1] messages to topic args[0] at QoS args[2]
// with pipeline.Publish, and returns a Promise of the
// milliseconds it took until the last was acknowledged.
func (d *demo) benchPublish(_ js.Value, args []js.Value) any {
	topic, n, qos := args[0].String(), args[1].Int(), mqtt.QoS(args[2].Int())
	return js.Global().Get("Promise").New(js.FuncOf(func(_ js.Value, settle []js.Value) any {
		resolve, reject := settle[0], settle[1]
		go func() {
			c := d.current()
			if c == nil {
				reject.Invoke("not connected")
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			start := time.Now()
			if err := pipeline.Publish(ctx, c, topic, n, qos); err != nil {
				reject.Invoke(err.Error())
				return
			}
			resolve.Invoke(float64(time.Since(start).Microseconds()) / 1000)
		}()
		return nil
	}))
}
