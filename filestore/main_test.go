//go:build unix

package filestore_test

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/b4e21b16/mqtt/internal/brokertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(stopExampleBroker{m}) }

// The mosquitto that the runnable examples share. It is started on first
// use, so that test runs without examples (the crash test's child
// processes, fuzzing workers) start none.
var (
	exampleOnce sync.Once
	exampleURL  string
	exampleStop func() error
)

// exampleServer returns the URL of the examples' broker, starting it on
// first use.
func exampleServer() string {
	exampleOnce.Do(func() {
		b, stop, err := brokertest.Launch(brokertest.Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, "examples need mosquitto:", err)
			exampleURL = "mqtt://127.0.0.1:1"
			return
		}
		exampleURL, exampleStop = b.URL(), stop
	})
	return exampleURL
}

// stopExampleBroker stops the examples' broker, if one was started, after
// the tests and before goleak looks for leaks.
type stopExampleBroker struct{ m *testing.M }

func (s stopExampleBroker) Run() int {
	code := s.m.Run()
	if exampleStop != nil {
		if err := exampleStop(); err != nil {
			fmt.Fprintln(os.Stderr, "example broker:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// must fails the test if err is not nil.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
