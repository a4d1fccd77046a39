//go:build linux

package brokertest

import "syscall"

// sysProcAttr makes the kernel kill the broker if the test binary dies
// without running its cleanups (for example on a test timeout panic).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
