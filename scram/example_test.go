package scram_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/scram"
)

// The Authenticator runs SCRAM-SHA-256 when the client connects, on every
// reconnection and on Reauthenticate. The broker must offer the mechanism
// through MQTT 5.0 enhanced authentication.
func ExampleSHA256() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.Config{
		Servers:       []string{"mqtts://broker.example:8883"},
		ClientID:      "svc-1",
		Version:       mqtt.Version5,
		Authenticator: scram.SHA256("svc-1", []byte(os.Getenv("MQTT_PASSWORD"))),
	})
	var ce *mqtt.ConnectError
	switch {
	case errors.Is(err, mqtt.ErrAuthFailed):
		log.Fatalf("the broker did not prove it knows the password: %v", err)
	case errors.As(err, &ce):
		log.Fatalf("the broker refused the credentials: %v", err)
	case err != nil:
		log.Fatal(err)
	}
	defer c.Disconnect(ctx)

	// Later, on the same connection: present the credentials again.
	if err := c.Reauthenticate(ctx); err != nil {
		log.Print(err)
	}
}

// An Authenticator prints its method and user, never the password.
func ExampleSHA512() {
	auth := scram.SHA512("alice", []byte("correct horse"))
	fmt.Println(auth)
	fmt.Printf("%#v\n", auth)
	// Output:
	// SCRAM-SHA-512 authenticator for user "alice"
	// scram.SHA512("alice", /* password hidden */)
}
