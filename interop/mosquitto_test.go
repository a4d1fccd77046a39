package interop

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// mosquittoMaxPacket is the max_packet_size the mosquitto broker is given.
const mosquittoMaxPacket = 1 << 20

var mosquittoBroker = newLazy("mosquitto", startMosquitto)

// startMosquitto runs mosquitto with a listener on a free loopback port,
// anonymous access, one password-file user and a 1 MiB packet limit.
func startMosquitto(dir string) (*broker, error) {
	bin, err := findBinary("mosquitto")
	if err != nil {
		return nil, err
	}
	version := "unknown"
	if out, _ := exec.Command(bin, "-h").Output(); len(out) > 0 {
		// "mosquitto version 2.0.11"
		first, _, _ := strings.Cut(string(out), "\n")
		if _, v, ok := strings.Cut(first, "version "); ok {
			version = strings.TrimSpace(v)
		}
	}
	if strings.ContainsAny(dir, " \t") {
		return nil, fmt.Errorf("mosquitto cannot take the path %q with white space", dir)
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	passwd := filepath.Join(dir, "passwd")
	if err := os.WriteFile(passwd, mosquittoPasswd(testUser, testPassword), 0o644); err != nil {
		return nil, err
	}
	var conf strings.Builder
	for _, l := range []string{
		"per_listener_settings false",
		"allow_anonymous true",
		"password_file " + passwd,
		"persistence false",
		"log_dest stderr",
		"log_type error", "log_type warning", "log_type notice", "log_type information",
		"connection_messages true",
		"max_queued_messages 10000",
		fmt.Sprintf("max_packet_size %d", mosquittoMaxPacket),
		fmt.Sprintf("listener %d 127.0.0.1", ports[0]),
	} {
		conf.WriteString(l + "\n")
	}
	if os.Geteuid() == 0 {
		// Stay root rather than switching to the mosquitto user, which
		// could not read the temporary directory.
		conf.WriteString("user root\n")
	}
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		return nil, err
	}
	p, err := startProcess("mosquitto", dir, filepath.Join(dir, "mosquitto.log"), nil, false, bin, "-c", confPath)
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	if err := p.waitReady(addr, readyTimeout); err != nil {
		p.kill()
		return nil, fmt.Errorf("%w: %v\n%s", errStartup, err, p.logTail(2000))
	}
	return &broker{
		name: "mosquitto", version: version, url: "mqtt://" + addr,
		user: testUser, pass: testPassword,
		stop: p.stop, log: p.log,
	}, nil
}

// mosquittoPasswd returns a password file line with a salted SHA-512 hash,
// the "$6$" format mosquitto reads.
func mosquittoPasswd(user, pass string) []byte {
	salt := make([]byte, 12)
	rand.Read(salt)
	h := sha512.New()
	h.Write([]byte(pass))
	h.Write(salt)
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s:$6$%s$%s\n", user, base64.StdEncoding.EncodeToString(salt), base64.StdEncoding.EncodeToString(h.Sum(nil)))
	return b.Bytes()
}
