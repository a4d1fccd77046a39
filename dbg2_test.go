package mqtt_test

import (
	"testing"
	"github.com/b4e21b16/mqtt"
)

func mqttConnect(t *testing.T, cfg mqtt.Config) (*mqtt.Client, error) {
	return mqtt.Connect(testContext(t), cfg)
}
