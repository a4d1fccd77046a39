package mqtttest

import (
	"crypto/subtle"

	"github.com/b4e21b16/mqtt"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// gate is the broker hook that decides who may connect: it refuses MQTT 5.0
// when the broker is restricted to 3.1.1, checks credentials when users are
// configured, and allows every topic to everyone connected.
type gate struct {
	mochi.HookBase
	srv     *mochi.Server
	version mqtt.ProtocolVersion
	users   map[string]string // user name → password; empty: anyone
}

// ID names the hook in the broker's log.
func (g *gate) ID() string { return "mqtttest-gate" }

// Provides tells the broker which events the hook handles.
func (g *gate) Provides(b byte) bool {
	return b == mochi.OnConnect || b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

// OnConnect refuses an MQTT 5.0 CONNECT when the broker speaks only 3.1.1,
// the way a 3.1.1 broker does: a 3.1.1 CONNACK with return code 0x01
// (unacceptable protocol level), then the connection is closed [MQTT-3.1.2-2].
func (g *gate) OnConnect(cl *mochi.Client, _ packets.Packet) error {
	if g.version != mqtt.Version311 || cl.Properties.ProtocolVersion < 5 {
		return nil
	}
	cl.Properties.ProtocolVersion = 4 // answer in 3.1.1 encoding
	_ = g.srv.SendConnack(cl, packets.ErrUnsupportedProtocolVersion, false, nil)
	return packets.ErrUnsupportedProtocolVersion
}

// OnConnectAuthenticate accepts anyone when no users are configured, and
// otherwise only a configured user name with its password.
func (g *gate) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	if len(g.users) == 0 {
		return true
	}
	want, ok := g.users[string(cl.Properties.Username)]
	return ok && subtle.ConstantTimeCompare([]byte(want), pk.Connect.Password) == 1
}

// OnACLCheck allows every topic.
func (g *gate) OnACLCheck(*mochi.Client, string, bool) bool { return true }
