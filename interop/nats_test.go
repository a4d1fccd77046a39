package interop

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// natsMaxPayload is the max_payload the NATS server is given (its default).
const natsMaxPayload = 1 << 20

var natsBroker = newLazy("NATS", startNATS)

// startNATS runs nats-server with its MQTT listener on a free loopback
// port. MQTT needs JetStream, which needs a server name and a store
// directory. One account holds the password user and, through
// no_auth_user, the anonymous clients.
func startNATS(dir string) (*broker, error) {
	bin, err := findBinary("nats-server")
	if err != nil {
		return nil, err
	}
	version := "unknown"
	if out, _ := exec.Command(bin, "--version").Output(); len(out) > 0 {
		// "nats-server: v2.9.10"
		_, v, _ := strings.Cut(strings.TrimSpace(string(out)), ": v")
		if v != "" {
			version = v
		}
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`server_name: interop_%d
listen: 127.0.0.1:%d
max_payload: %d
jetstream {
  store_dir: %q
  max_memory_store: 256MB
  max_file_store: 1GB
}
accounts {
  MQTT: {
    jetstream: enabled
    users: [ { user: %q, password: %q } ]
  }
}
no_auth_user: %q
mqtt {
  listen: 127.0.0.1:%d
}
`, ports[1], ports[0], natsMaxPayload, filepath.Join(dir, "jetstream"), testUser, testPassword, testUser, ports[1])
	confPath := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p, err := startProcess("nats-server", dir, filepath.Join(dir, "nats.log"), nil, false, bin, "-c", confPath)
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	if err := p.waitReady(addr, readyTimeout); err != nil {
		p.kill()
		return nil, fmt.Errorf("%w: %v\n%s", errStartup, err, p.logTail(2000))
	}
	return &broker{
		name: "NATS", version: version, url: "mqtt://" + addr,
		user: testUser, pass: testPassword,
		stop: p.stop, log: p.log,
	}, nil
}
