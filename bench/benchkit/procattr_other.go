//go:build !linux

package benchkit

import "syscall"

// childProcAttr leaves the gateway's process attributes at their defaults
// where there is no parent-death signal.
func childProcAttr() *syscall.SysProcAttr { return nil }
