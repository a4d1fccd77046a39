package mqtttest_test

import (
	"context"
	"fmt"
	"log"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/mqtttest"
)

// A broker started outside a test (for a TestMain, or as here, an example)
// is closed by the caller.
func ExampleStart() {
	b, err := mqtttest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{b.URL()}, ClientID: "example"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	sub, err := c.Subscribe(ctx, "greetings/#", mqtt.AtLeastOnce)
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Publish(ctx, mqtt.Message{Topic: "greetings/world", Payload: []byte("hello"), QoS: mqtt.AtLeastOnce}); err != nil {
		log.Fatal(err)
	}
	select {
	case m := <-sub.Messages():
		fmt.Printf("%s: %s\n", m.Topic, m.Payload)
	case <-ctx.Done():
		log.Fatal("no message")
	}
	// Output: greetings/world: hello
}

// In a test, the broker and the clients are stopped by the test's cleanup,
// and the wait helpers fail the test with a clear message on timeout.
func ExampleNewBroker() {
	testGreeting := func(t *testing.T) {
		b := mqtttest.NewBroker(t)
		c := mqtttest.Connect(t, b.URL())

		sub, err := c.Subscribe(t.Context(), "greetings/#", mqtt.AtLeastOnce)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Publish(t.Context(), mqtt.Message{Topic: "greetings/world", Payload: []byte("hello"), QoS: mqtt.AtLeastOnce}); err != nil {
			t.Fatal(err)
		}
		m := mqtttest.WaitMessage(t, sub.Messages(), 5*time.Second)
		if string(m.Payload) != "hello" {
			t.Errorf("payload %q, want hello", m.Payload)
		}
		mqtttest.ExpectNoMessage(t, sub.Messages(), 100*time.Millisecond)
	}
	_ = testGreeting
}

// A Dialer lets a test break the connection under a client and watch it
// reconnect.
func ExampleDialer() {
	testReconnect := func(t *testing.T) {
		b := mqtttest.NewBroker(t)
		d := mqtttest.NewDialer()
		c := mqtttest.Connect(t, b.URL(), mqtt.Config{
			Dialer:    d.Dial,
			Reconnect: mqtt.ReconnectConfig{MinDelay: 10 * time.Millisecond},
		})

		d.Last().Cut()
		mqtttest.WaitEvent(t, c.Events(), mqtt.EventConnectionLost, 5*time.Second)
		mqtttest.WaitEvent(t, c.Events(), mqtt.EventConnected, 5*time.Second)
		if d.Dials() != 2 {
			t.Errorf("%d dials, want 2", d.Dials())
		}
	}
	_ = testReconnect
}

// The broker can be restricted to one protocol version, to test how a
// client behaves against an older broker.
func ExampleWithVersion() {
	b, err := mqtttest.Start(mqtttest.WithVersion(mqtt.Version311))
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err = mqtt.Connect(ctx, mqtt.Config{Servers: []string{b.URL()}, ClientID: "v5", Version: mqtt.Version5})
	fmt.Println("5.0 refused:", err != nil)

	c, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{b.URL()}, ClientID: "auto"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println("VersionAuto connected with 3.1.1:", c.Connection().Version == mqtt.Version311)
	// Output:
	// 5.0 refused: true
	// VersionAuto connected with 3.1.1: true
}
