//go:build !js

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"go.uber.org/goleak"
)

// netnsEnv marks a test process that runs in a network namespace of its
// own.
const netnsEnv = "MQTT_BROWSER_NETNS"

// TestMain runs the tests in a private network namespace with only a
// loopback interface when it can (as root, with unshare and ip): mosquitto
// 2.0 binds its WebSocket listeners to every interface whatever address
// its configuration gives, and there they are reachable from this machine
// only. Elsewhere the tests that need mosquitto's WebSocket listener are
// skipped, or fail when the CI environment variable is set.
func TestMain(m *testing.M) {
	if os.Getenv(netnsEnv) == "" && netnsAvailable() == nil {
		os.Exit(inNetns())
	}
	goleak.VerifyTestMain(m)
}

// netnsAvailable says why the tests cannot enter a network namespace, or
// returns nil.
func netnsAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("creating a network namespace needs root")
	}
	for _, cmd := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(cmd); err != nil {
			return err
		}
	}
	return nil
}

// inNetns runs this test binary again, with the same arguments, in a new
// network namespace whose loopback interface is up, and returns its exit
// code.
func inNetns() int {
	args := append([]string{"--net", "--", "sh", "-c", `ip link set lo up && exec "$0" "$@"`, os.Args[0]}, os.Args[1:]...)
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "running the tests in a network namespace:", err)
		return 1
	}
	return 0
}
