// Package pipeline publishes a run of messages with a bounded number in
// flight, for the example's throughput measurements in the browser and
// natively alike.
package pipeline

import (
	"context"

	"github.com/b4e21b16/mqtt"
)

// Window is the number of publishes Publish keeps in flight.
const Window = 256

// PayloadSize is the size of each message Publish sends.
const PayloadSize = 64

// Publish publishes n messages of PayloadSize bytes to topic at qos, with
// up to Window in flight, and returns once all have completed.
func Publish(ctx context.Context, c *mqtt.Client, topic string, n int, qos mqtt.QoS) error {
	payload := make([]byte, PayloadSize)
	var window [Window]*mqtt.Pending
	for i := range n {
		if p := window[i%Window]; p != nil {
			if err := p.Wait(ctx); err != nil {
				return err
			}
		}
		window[i%Window] = c.PublishAsync(mqtt.Message{Topic: topic, Payload: payload, QoS: qos})
	}
	for _, p := range window {
		if p != nil {
			if err := p.Wait(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}
