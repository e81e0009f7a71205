package gatewaypg

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// setParentDeathSignal has the kernel send the postmaster SIGINT, a fast
// shutdown, when the gateway dies without stopping it: the same clean stop
// Close would have made, so the next start needs no crash recovery. The
// kernel sends it when the forking thread exits, see Server.launch. Go sets it
// after switching user, which would otherwise clear it.
func setParentDeathSignal(attr *syscall.SysProcAttr) {
	attr.Pdeathsig = syscall.SIGINT
}

// processName is the command name of a running process.
func processName(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
