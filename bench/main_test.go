package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The scale command re-executes its own binary as client processes;
	// in a test that binary is the test binary.
	if len(os.Args) > 1 && os.Args[1] == scaleWorkerCmd {
		raiseFileLimit()
		os.Exit(scaleWorkerMain(os.Args[2:]))
	}
	goleak.VerifyTestMain(m)
}
