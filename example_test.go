package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/b4e21b16/mqtt"
)

func ExampleConnect() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.Config{
		Servers:    []string{exampleServer}, // e.g. "mqtt://127.0.0.1:1883"
		ClientID:   "example-connect",
		KeepAlive:  30 * time.Second,
		CleanStart: true,
		Will:       &mqtt.Message{Topic: "example/status", Payload: []byte("gone"), QoS: mqtt.AtLeastOnce},
	})
	if err != nil {
		var refused *mqtt.ConnectError
		if errors.As(err, &refused) {
			fmt.Println("refused:", refused.Code)
		}
		return
	}
	defer c.Close()
	fmt.Println("connected, session present:", c.SessionPresent())
	// Output: connected, session present: false
}

func ExampleClient_Subscribe() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{exampleServer}, ClientID: "example-subscribe"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Disconnect(ctx)

	sub, err := c.Subscribe(ctx, "example/sensors/+/temp", mqtt.AtLeastOnce)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := c.Publish(ctx, mqtt.Message{Topic: "example/sensors/kitchen/temp", Payload: []byte("21.5"), QoS: mqtt.AtLeastOnce}); err != nil {
		fmt.Println(err)
		return
	}
	// A select loop: a blocking receive is umqtt's wait_msg; adding a
	// default case makes it check_msg.
	select {
	case m := <-sub.Messages():
		fmt.Printf("%s: %s\n", m.Topic, m.Payload)
	case <-c.Done():
		fmt.Println("connection lost:", c.Err())
	case <-ctx.Done():
		fmt.Println(ctx.Err())
	}
	// Output: example/sensors/kitchen/temp: 21.5
}

func ExampleClient_PublishAsync() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{exampleServer}, ClientID: "example-async"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Disconnect(ctx)

	// Start many publishes at once; each completes when the broker
	// acknowledges it (PUBCOMP for QoS 2).
	var pending []*mqtt.Pending
	for i := range 3 {
		pending = append(pending, c.PublishAsync(mqtt.Message{
			Topic: "example/batch", Payload: fmt.Appendf(nil, "item %d", i), QoS: mqtt.ExactlyOnce,
		}))
	}
	for i, p := range pending {
		select {
		case <-p.Done():
			fmt.Println(i, "done, err:", p.Err())
		case <-ctx.Done():
			fmt.Println(ctx.Err())
		}
	}
	// Output:
	// 0 done, err: <nil>
	// 1 done, err: <nil>
	// 2 done, err: <nil>
}

func ExampleClient_Ping() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{exampleServer}, ClientID: "example-ping"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	rtt, err := c.Ping(ctx)
	fmt.Println(err == nil && rtt > 0)
	// Output: true
}
