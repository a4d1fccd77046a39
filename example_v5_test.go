package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/b4e21b16/mqtt"
)

// A responder answers requests with Serve; a requester waits for each reply
// with Request. Both sides may run any number of requests at once.
func ExampleClient_Request() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	responder, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{exampleServer}, ClientID: "example-responder", Version: mqtt.Version5})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer responder.Disconnect(ctx)
	requests, err := responder.Subscribe(ctx, "example/upper", mqtt.AtLeastOnce)
	if err != nil {
		fmt.Println(err)
		return
	}
	serving, stop := context.WithCancel(ctx)
	defer stop()
	go mqtt.Serve(serving, responder, requests, func(ctx context.Context, req mqtt.Message) (mqtt.Message, error) {
		return mqtt.Message{Payload: []byte(strings.ToUpper(string(req.Payload)))}, nil
	})

	c, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{exampleServer}, ClientID: "example-requester", Version: mqtt.Version5})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Disconnect(ctx)
	reply, err := c.Request(ctx, mqtt.Message{Topic: "example/upper", Payload: []byte("hello"), QoS: mqtt.AtLeastOnce})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s\n", reply.Payload)
	// Output: HELLO
}

// Ranging over a subscription, and reading the client's counters.
func ExampleSubscription_All() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{exampleServer}, ClientID: "example-all"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Disconnect(ctx)
	sub, err := c.Subscribe(ctx, "example/all/#", mqtt.AtLeastOnce)
	if err != nil {
		fmt.Println(err)
		return
	}
	for i := range 3 {
		if err := c.Publish(ctx, mqtt.Message{Topic: fmt.Sprintf("example/all/%d", i), QoS: mqtt.AtLeastOnce}); err != nil {
			fmt.Println(err)
			return
		}
	}
	n := 0
	for m := range sub.All(ctx) {
		fmt.Println(m.Topic)
		if n++; n == 3 {
			break
		}
	}
	st := c.Stats()
	fmt.Println("sent", st.Sent[mqtt.AtLeastOnce].Messages, "received", st.Received[mqtt.AtLeastOnce].Messages)
	// Output:
	// example/all/0
	// example/all/1
	// example/all/2
	// sent 3 received 3
}

// Publish waits until the broker has the message: for QoS 1 the PUBACK,
// for QoS 2 the PUBCOMP. A refusal is a *ReasonError naming the code.
func ExampleClient_Publish() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{exampleServer}, ClientID: "example-publish"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Disconnect(ctx)
	err = c.Publish(ctx, mqtt.Message{Topic: "example/status", Payload: []byte("up"), QoS: mqtt.ExactlyOnce, Retain: true})
	var refused *mqtt.ReasonError
	switch {
	case errors.As(err, &refused):
		fmt.Println("refused:", refused.Code)
	case err != nil:
		fmt.Println(err)
	default:
		fmt.Println("published")
	}
	// Output: published
}
