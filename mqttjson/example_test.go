package mqttjson_test

import (
	"context"
	"fmt"
	"time"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/mqttjson"
)

// Publish and All encode and decode typed payloads.
func ExampleAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.Config{Servers: []string{server}, ClientID: "example-json", Version: mqtt.Version5})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Disconnect(ctx)
	type reading struct {
		Sensor  string
		Celsius float64
	}
	sub, err := c.Subscribe(ctx, "example/json", mqtt.AtLeastOnce)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := mqttjson.Publish(ctx, c, mqtt.Message{Topic: "example/json", QoS: mqtt.AtLeastOnce}, reading{"kitchen", 21.5}); err != nil {
		fmt.Println(err)
		return
	}
	for d, err := range mqttjson.All[reading](ctx, sub) {
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s: %.1f °C (%s)\n", d.Value.Sensor, d.Value.Celsius, d.Message.ContentType)
		break
	}
	// Output: kitchen: 21.5 °C (application/json)
}
