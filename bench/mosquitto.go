package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

const mosquittoBin = "/usr/sbin/mosquitto"

// mosquittoBroker is a mosquitto child process on a free loopback port.
type mosquittoBroker struct {
	cmd  *exec.Cmd
	dir  string
	addr string
}

func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func startMosquitto() (*mosquittoBroker, error) {
	return startMosquittoOn("127.0.0.1", -1)
}

// startMosquittoOn starts mosquitto listening on a free port of host (a
// loopback address), accepting at most maxConns clients (-1: no limit of
// its own; the open-file limit it inherits still applies).
func startMosquittoOn(host string, maxConns int) (*mosquittoBroker, error) {
	port, err := freePort(host)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mqttbench-mosquitto")
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf("listener %d %s\nallow_anonymous true\nmax_inflight_messages 0\nmax_queued_messages 1000000\npersistence false\nmax_connections %d\nlog_dest none\n", port, host, maxConns)
	if os.Geteuid() == 0 {
		conf += "user root\n"
	}
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(mosquittoBin, "-c", path)
	cmd.Stdout = nil
	cmd.Stderr = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	m := &mosquittoBroker{cmd: cmd, dir: dir, addr: net.JoinHostPort(host, strconv.Itoa(port))}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", m.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return m, nil
		}
		if time.Now().After(deadline) {
			m.Close()
			return nil, fmt.Errorf("mosquitto did not listen on %s: %w", m.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (m *mosquittoBroker) Addr() string { return m.addr }

// PID returns the broker's process id.
func (m *mosquittoBroker) PID() int { return m.cmd.Process.Pid }

func (m *mosquittoBroker) Close() error {
	m.cmd.Process.Kill()
	m.cmd.Wait()
	return os.RemoveAll(m.dir)
}
