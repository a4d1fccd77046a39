package interop

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// parallelScenarios is how many scenarios run at once unless -test.parallel
// is given: they mostly wait on brokers and timers, not on the CPU.
const parallelScenarios = 16

func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		flag.Set("test.parallel", fmt.Sprint(parallelScenarios))
	}
	goleak.VerifyTestMain(stopBrokersAfter{m})
}

// stopBrokersAfter runs the tests, then stops the brokers they started,
// before goleak looks for goroutines left behind.
type stopBrokersAfter struct{ m *testing.M }

func (s stopBrokersAfter) Run() int {
	code := s.m.Run()
	if err := stopAll(); err != nil {
		fmt.Fprintln(os.Stderr, "interop: stopping brokers:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
