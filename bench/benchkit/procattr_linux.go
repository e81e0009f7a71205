package benchkit

import "syscall"

// childProcAttr puts the gateway in its own process group, so that a Ctrl-C
// reaches only the benchmark, which then stops the gateway in order; and
// has Linux send it SIGTERM should the benchmark die without stopping it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
