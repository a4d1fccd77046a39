package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func startMosquitto() (*mosquittoBroker, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mqttbench-mosquitto")
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 0\nmax_queued_messages 1000000\npersistence false\nmax_connections -1\nlog_dest none\n", port)
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
	m := &mosquittoBroker{cmd: cmd, dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", port)}
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
