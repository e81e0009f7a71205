//go:build !unix

package gatewaypg

import (
	"errors"
	"os"
	"syscall"
)

// errUnsupported is returned by Start on systems without Unix sockets,
// process groups and file ownership as this package needs them.
var errUnsupported = errors.New("a private PostgreSQL needs a Unix-like system; pass --postgres-url")

func runAccount() (account, error)                   { return account{}, errUnsupported }
func sysProcAttr(account, bool) *syscall.SysProcAttr { return nil }
func lockFile(string) (*os.File, error)              { return nil, errUnsupported }
func checkReachable(string, account) error           { return errUnsupported }
func checkOwner(string, account) error               { return errUnsupported }
func killGroup(int) error                            { return errUnsupported }
func processExists(int) bool                         { return false }
func processName(int) (string, error)                { return "", errUnsupported }
