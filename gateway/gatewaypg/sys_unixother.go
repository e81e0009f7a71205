//go:build unix && !linux

package gatewaypg

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// setParentDeathSignal does nothing: only Linux has a parent-death signal,
// so elsewhere a postgres outlives a gateway that dies without Close. The
// next start finds it through postmaster.pid and says so.
func setParentDeathSignal(*syscall.SysProcAttr) {}

// processName is the command name of a running process.
func processName(pid int) (string, error) {
	out, err := exec.Command("ps", "-o", "comm=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		return "", err
	}
	return filepath.Base(strings.TrimSpace(string(out))), nil
}
