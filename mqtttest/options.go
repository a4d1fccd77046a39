package mqtttest

import (
	"fmt"
	"log/slog"

	"github.com/b4e21b16/mqtt"
	mochi "github.com/mochi-mqtt/server/v2"
)

// Option configures a broker started by NewBroker or Start.
type Option func(*options)

type options struct {
	webSocket    bool
	version      mqtt.ProtocolVersion
	users        map[string]string
	logger       *slog.Logger
	capabilities []func(*mochi.Capabilities)
}

// WithWebSocket adds an MQTT over WebSocket listener, see
// Broker.WebSocketURL. A client needs the WebSocket transport to connect to
// it: the program under test (or the test) imports
// github.com/b4e21b16/mqtt/websocket. This package does not, so that a
// program that forgets the import fails its tests.
func WithWebSocket() Option {
	return func(o *options) { o.webSocket = true }
}

// WithVersion restricts the broker to one protocol version:
// mqtt.Version311 refuses MQTT 5.0 connections as a 3.1.1 broker does
// (CONNACK return code 0x01, so a client using mqtt.VersionAuto falls back),
// and mqtt.Version5 refuses older ones (reason code 0x84). mqtt.VersionAuto,
// the default, accepts 3.1, 3.1.1 and 5.0.
func WithVersion(v mqtt.ProtocolVersion) Option {
	return func(o *options) { o.version = v }
}

// WithUser adds a user name and password the broker accepts. Once a user is
// added, connections without a listed user name and its password are
// refused: MQTT 5.0 with CONNACK reason code 0x86 (bad user name or
// password), 3.1.1 with return code 0x05 (not authorized). By default
// anyone may connect.
func WithUser(name, password string) Option {
	return func(o *options) {
		if o.users == nil {
			o.users = make(map[string]string)
		}
		o.users[name] = password
	}
}

// WithLogger sends the broker's log to l. By default it is discarded.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithCapabilities lets f adjust the broker's capabilities (maximum QoS,
// Receive Maximum, maximum packet size, and so on) before it starts.
func WithCapabilities(f func(*mochi.Capabilities)) Option {
	return func(o *options) { o.capabilities = append(o.capabilities, f) }
}

func (o *options) check() error {
	switch o.version {
	case mqtt.VersionAuto, mqtt.Version311, mqtt.Version5:
		return nil
	}
	return fmt.Errorf("mqtttest: WithVersion(%d): want mqtt.VersionAuto, mqtt.Version311 or mqtt.Version5", o.version)
}
