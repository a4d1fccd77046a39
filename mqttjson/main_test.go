package mqttjson_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/b4e21b16/mqtt/internal/brokertest"
	"go.uber.org/goleak"
)

// server is the URL of a mosquitto shared by the tests and the runnable
// examples, or "" when none could be started.
var server string

func TestMain(m *testing.M) {
	b, stop, err := brokertest.Launch(brokertest.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "the tests need mosquitto:", err)
		if os.Getenv("CI") != "" {
			os.Exit(1)
		}
		server = ""
	} else {
		server = b.URL()
	}
	goleak.VerifyTestMain(withCleanup{m, stop})
}

// withCleanup runs stop after the tests and before goleak looks for leaks.
type withCleanup struct {
	m    *testing.M
	stop func() error
}

func (w withCleanup) Run() int {
	code := w.m.Run()
	if w.stop != nil {
		if err := w.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "broker:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}
