package mqtttest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/b4e21b16/mqtt"
)

// clientSeq numbers the client identifiers Connect makes up.
var clientSeq atomic.Uint64

// Connect connects a client to the broker at url and registers a cleanup
// with tb that closes it. It fails the test if the connection cannot be
// made within DefaultTimeout (or cfg's ConnectTimeout, if shorter).
//
// At most one cfg may be given; its Servers field is replaced by url. An
// empty ClientID is replaced by a name unique in the process, so that MQTT
// 3.1.1 sessions without CleanStart work too.
func Connect(tb testing.TB, url string, cfg ...mqtt.Config) *mqtt.Client {
	tb.Helper()
	if len(cfg) > 1 {
		tb.Fatalf("mqtttest: Connect takes at most one mqtt.Config, got %d", len(cfg))
	}
	var c mqtt.Config
	if len(cfg) == 1 {
		c = cfg[0]
	}
	c.Servers = []string{url}
	if c.ClientID == "" {
		c.ClientID = fmt.Sprintf("mqtttest-%d", clientSeq.Add(1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	client, err := mqtt.Connect(ctx, c)
	if err != nil {
		tb.Fatalf("mqtttest: connect to %s: %v", url, err)
	}
	tb.Cleanup(func() { _ = client.Close() })
	return client
}
