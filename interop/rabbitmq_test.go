package interop

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// rabbitMaxMessage is the max_message_size RabbitMQ is given.
const rabbitMaxMessage = 1 << 20

var rabbitBroker = newLazy("RabbitMQ", startRabbitMQ)

// rabbitServerScript finds the rabbitmq-server script that runs the node
// in the foreground as the calling user. Debian's /usr/sbin/rabbitmq-server
// is a wrapper that switches to the rabbitmq user and the system node's
// settings, so the script it wraps is preferred.
func rabbitServerScript() (string, error) {
	cands := []string{"/usr/lib/rabbitmq/bin/rabbitmq-server"}
	globbed, _ := filepath.Glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server")
	cands = append(cands, globbed...)
	for _, c := range cands {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c, nil
		}
	}
	return findBinary("rabbitmq-server")
}

var rabbitVersionRE = regexp.MustCompile(`Starting RabbitMQ ([0-9][^ ]*) on Erlang ([0-9][^ ]*)`)

// startRabbitMQ runs a RabbitMQ node of its own (own node name, ports,
// database, logs, configuration and plugins file) with the MQTT plugin on
// a free loopback port. Anonymous MQTT clients log in as guest; the
// credentials scenario uses guest with a wrong password.
func startRabbitMQ(dir string) (*broker, error) {
	bin, err := rabbitServerScript()
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(3) // AMQP, Erlang distribution, MQTT
	if err != nil {
		return nil, err
	}
	suffix := make([]byte, 4)
	rand.Read(suffix)
	node := "interop-" + hex.EncodeToString(suffix) + "@localhost"

	conf := fmt.Sprintf(`mqtt.listeners.tcp.default = 127.0.0.1:%d
mqtt.allow_anonymous = true
mqtt.default_user = guest
mqtt.default_pass = guest
mqtt.vhost = /
mqtt.exchange = amq.topic
max_message_size = %d
log.console = true
log.console.level = info
log.file = false
`, ports[2], rabbitMaxMessage)
	files := map[string]string{
		"rabbitmq.conf":     conf,
		"enabled_plugins":   "[rabbitmq_mqtt].\n",
		"rabbitmq-env.conf": "", // instead of the system node's /etc/rabbitmq/rabbitmq-env.conf
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	env := []string{
		"HOME=" + dir, // the Erlang cookie is created here
		"RABBITMQ_NODENAME=" + node,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		fmt.Sprintf("RABBITMQ_NODE_PORT=%d", ports[0]),
		fmt.Sprintf("RABBITMQ_DIST_PORT=%d", ports[1]),
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(dir, "log"),
		"RABBITMQ_LOGS=-",
		"RABBITMQ_CONFIG_FILE=" + filepath.Join(dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE=" + filepath.Join(dir, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(dir, "rabbitmq-env.conf"),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
		"ERL_EPMD_ADDRESS=127.0.0.1",
		// Run the VM in place of the script, reading standard input: the
		// node then is this process's child and halts when its input ends,
		// also when the test binary dies.
		"RABBITMQ_ALLOW_INPUT=1",
	}
	p, err := startProcess("rabbitmq-server", dir, filepath.Join(dir, "rabbitmq.log"), env, true, bin)
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[2])
	if err := p.waitReady(addr, readyTimeout); err != nil {
		p.kill()
		return nil, fmt.Errorf("%w: %v\n%s", errStartup, err, p.logTail(3000))
	}
	version := "unknown"
	if m := rabbitVersionRE.FindStringSubmatch(p.log()); m != nil {
		version = m[1] + " (Erlang " + strings.TrimSpace(m[2]) + ")"
	}
	return &broker{
		name: "RabbitMQ", version: version, url: "mqtt://" + addr,
		user: "guest", pass: "guest",
		stop: p.stop, log: p.log,
	}, nil
}
