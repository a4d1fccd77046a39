package mqtt_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/b4e21b16/mqtt/internal/brokertest"
	"go.uber.org/goleak"
)

// exampleServer is the URL of a mosquitto shared by the runnable examples.
var exampleServer string

func TestMain(m *testing.M) {
	if floodChild() || sharedConsumer() {
		return
	}
	b, stop, err := brokertest.Launch(brokertest.Options{})
	if err != nil {
		// Examples cannot run without a broker; tests start their own and
		// report (or skip) on their own terms.
		fmt.Fprintln(os.Stderr, "examples need mosquitto:", err)
		if os.Getenv("CI") != "" {
			os.Exit(1)
		}
		exampleServer = "mqtt://127.0.0.1:1"
	} else {
		exampleServer = b.URL()
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
			fmt.Fprintln(os.Stderr, "example broker:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}
