package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// controlPlane is the benchmark's handle on the control plane child. Its
// methods may be called from one goroutine at a time.
type controlPlane struct {
	// pid is the child's process id, 0 when it runs in this process (the
	// tests).
	pid    int
	addr   string
	bundle []byte

	enc   *json.Encoder
	dec   *json.Decoder
	close func() error
	once  sync.Once
	err   error
}

// childStopWait bounds the wait for the child to exit once its stdin is
// closed; then it is killed.
const childStopWait = 15 * time.Second

// launchControlPlane starts this command again as the control plane child
// and starts its server for apps apps.
func launchControlPlane(apps int) (*controlPlane, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this command's executable: %w", err)
	}
	cmd := exec.Command(self, childArg)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() error {
		stdin.Close()
		select {
		case err := <-exited:
			return err
		case <-time.After(childStopWait):
			_ = cmd.Process.Kill()
			<-exited
			return errors.New("the control plane did not exit when asked; killed")
		}
	}
	cp, err := connectControlPlane(stdin, stdout, apps, stop)
	if err != nil {
		return nil, err
	}
	cp.pid = cmd.Process.Pid
	return cp, nil
}

// connectControlPlane starts the server of a control plane that reads
// commands from w and answers on r; stop ends it.
func connectControlPlane(w io.Writer, r io.Reader, apps int, stop func() error) (*controlPlane, error) {
	cp := &controlPlane{enc: json.NewEncoder(w), dec: json.NewDecoder(bufio.NewReader(r)), close: stop}
	rep, err := cp.call(request{Op: opStart, Apps: apps})
	if err != nil {
		cp.Close()
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	cp.addr, cp.bundle = rep.Addr, rep.BundlePEM
	return cp, nil
}

// call sends a command and reads its answer.
func (c *controlPlane) call(req request) (reply, error) {
	if err := c.enc.Encode(req); err != nil {
		return reply{}, fmt.Errorf("sending %q to the control plane: %w", req.Op, err)
	}
	var rep reply
	if err := c.dec.Decode(&rep); err != nil {
		return reply{}, fmt.Errorf("reading the control plane's answer to %q: %w", req.Op, err)
	}
	if rep.Err != "" {
		return rep, fmt.Errorf("control plane: %s: %s", req.Op, rep.Err)
	}
	return rep, nil
}

// mem measures the control plane's memory after a GC, and its nodes.
func (c *controlPlane) mem() (memStats, int, error) {
	rep, err := c.call(request{Op: opMem})
	if err != nil {
		return memStats{}, 0, err
	}
	if rep.Mem == nil {
		return memStats{}, 0, errors.New("control plane: no memory statistics")
	}
	return *rep.Mem, rep.Nodes, nil
}

// nodes is how many nodes the control plane lists as connected, and how
// many goroutines it has.
func (c *controlPlane) nodes() (nodes, goroutines int, err error) {
	rep, err := c.call(request{Op: opNodes})
	return rep.Nodes, rep.Goroutines, err
}

// change adds an instance to the changed app and refreshes the tenant; it
// returns when Refresh was called, and the app's endpoints now.
func (c *controlPlane) change() (time.Time, int, error) {
	rep, err := c.call(request{Op: opChange})
	if err != nil {
		return time.Time{}, 0, err
	}
	return time.Unix(0, rep.RefreshAt), rep.Endpoints, nil
}

// Close stops the control plane. It is idempotent.
func (c *controlPlane) Close() error {
	c.once.Do(func() { c.err = c.close() })
	return c.err
}
