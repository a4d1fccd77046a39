package mqtt_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/packet"
)

// syncBuffer is a bytes.Buffer safe for the client's goroutines to log to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestFakeLogging checks Config.Logger: the connection lifecycle at Info,
// every packet at Debug (type, identifier, topic, size, never the payload),
// and never the credentials.
func TestFakeLogging(t *testing.T) {
	fakeBubble(t, func(t *testing.T) {
		var out syncBuffer
		log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c, fc, _ := fakeClient(t, mqtt.Config{ClientID: "l", Version: mqtt.Version5, Logger: log,
			Username: "alice", Password: []byte("pa55word-secret")}, &packet.Connack{})
		ctx := context.Background()
		if err := c.Publish(ctx, mqtt.Message{Topic: "log/q0", Payload: []byte("payload-zero")}); err != nil {
			t.Fatal(err)
		}
		fc.expectPublish()
		p := c.PublishAsync(mqtt.Message{Topic: "log/q1", Payload: []byte("payload-one"), QoS: 1})
		pub := fc.expectPublish()
		fc.send(&packet.Ack{PacketType: packet.PUBACK, PacketID: pub.PacketID})
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Disconnect(ctx); err != nil {
			t.Fatal(err)
		}
		logged := out.String()
		for _, want := range []string{
			`level=INFO msg="mqtt: connected"`,
			`level=DEBUG msg="mqtt: send" packet=PUBLISH topic=log/q0 qos=0 bytes=12`,
			`level=DEBUG msg="mqtt: send" packet=PUBLISH topic=log/q1 qos=1 bytes=11 id=1`,
			`level=DEBUG msg="mqtt: received" packet=PUBACK id=1`,
			`level=INFO msg="mqtt: disconnected"`,
		} {
			if !strings.Contains(logged, want) {
				t.Errorf("log lacks %s", want)
			}
		}
		for _, secret := range []string{"pa55word-secret", "payload-zero", "payload-one"} {
			if strings.Contains(logged, secret) {
				t.Errorf("log contains %q", secret)
			}
		}
		if t.Failed() {
			t.Log(logged)
		}
	})
}
