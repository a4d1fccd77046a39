package mqtt_test

import (
	"testing"
	"github.com/b4e21b16/mqtt"
)

func TestDbgTransport(t *testing.T) {
	tb := startTransportBroker(t)
	t.Run("g", func(t *testing.T) {
	for _, q := range []mqtt.QoS{0,1,2} {
		t.Run("x", func(t *testing.T) {
			t.Parallel()
			cfg := tb.config("ws"); cfg.Version = mqtt.Version5; pubSubSuite(t, cfg, q)
		})
	}
	})
	if t.Failed() { t.Log(tb.Log()) }
}
