//go:build unix

package filestore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/filestore"
)

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "filestore-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "mqtt.store")

	st, err := filestore.Open(path, nil) // nil: the defaults (SyncAlways)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.Config{
		Servers:       []string{exampleServer()}, // e.g. "mqtt://127.0.0.1:1883"
		ClientID:      "example-filestore",
		SessionExpiry: time.Hour, // the broker's half of the session outlives a crash too
		Store:         st,
	})
	if err != nil {
		st.Close() // the client closes its store, but there is no client
		fmt.Println(err)
		return
	}
	// Messages that an earlier process left in the store are sent again
	// now; their Pendings are in c.Restored().

	// PublishDurable returns once the message is in the store: from then
	// on it survives a crash of this process.
	p, err := c.PublishDurable(ctx, mqtt.Message{Topic: "example/durable", Payload: []byte("hello"), QoS: mqtt.AtLeastOnce})
	if err != nil {
		fmt.Println(err)
		c.Close()
		return
	}
	fmt.Println("delivered:", p.ID() != 0, p.Wait(ctx))
	if err := c.Disconnect(ctx); err != nil { // closes the store as well
		fmt.Println(err)
	}

	// The broker acknowledged the message: the store no longer holds it.
	st, err = filestore.Open(path, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	out, in, err := st.Load()
	st.Close()
	fmt.Println("left in the store:", len(out), len(in), err)
	// Output:
	// delivered: true <nil>
	// left in the store: 0 0 <nil>
}
