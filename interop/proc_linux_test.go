//go:build linux

package interop

import "syscall"

// sysProcAttr makes the kernel kill a broker if the test binary dies
// without stopping it (for example on a test timeout panic).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
