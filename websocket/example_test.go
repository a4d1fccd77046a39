//go:build !js

package websocket_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/websocket"
)

// Importing the package (import _ "github.com/b4e21b16/mqtt/websocket")
// makes ws:// and wss:// URLs work like any other.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.Config{
		Servers: []string{exampleServer}, // such as "ws://127.0.0.1:8080/mqtt"
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	sub, err := c.Subscribe(ctx, "example/ws", mqtt.AtLeastOnce)
	if err != nil {
		log.Fatal(err)
	}
	err = c.Publish(ctx, mqtt.Message{Topic: "example/ws", Payload: []byte("hello over WebSocket"), QoS: mqtt.AtLeastOnce})
	if err != nil {
		log.Fatal(err)
	}
	m := <-sub.Messages()
	fmt.Printf("%s: %s\n", m.Topic, m.Payload)
	if err := c.Disconnect(ctx); err != nil {
		log.Fatal(err)
	}
	// Output: example/ws: hello over WebSocket
}

// A Transport of one's own sends header fields with the upgrade request,
// here for one client; mqtt.RegisterTransport would make it serve every
// client.
func ExampleTransport() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t := &websocket.Transport{Header: http.Header{"Authorization": {"Bearer example-token"}}}
	c, err := mqtt.Connect(ctx, mqtt.Config{
		Servers:    []string{exampleServer},
		Transports: map[string]mqtt.Transport{"ws": t, "wss": t},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Ping(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("connected, with an Authorization header")
	// Output: connected, with an Authorization header
}
