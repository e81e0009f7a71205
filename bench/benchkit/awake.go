package benchkit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// Keeping the CPUs awake. On a virtual machine whose idle virtual CPUs
// halt (as a Firecracker guest's do here), waking a halted one takes up to
// tens of milliseconds: a 1 ms sleep in an idle process overshoots by up
// to 50 ms, and a loopback request waits as long when the thread it wakes
// sleeps on a halted CPU. Those stalls land on the benchmark's sides by
// chance and swamp a p99. KeepAwake runs one busy thread per CPU under
// Linux's SCHED_IDLE policy, which runs only when nothing else wants the
// CPU and gives way at once, so the CPUs never halt while the benchmark
// runs. It takes no CPU time from the measured processes, but it is not
// how a real deployment's machines idle: reports say when it was on.

// spinnerEnv, set in a child's environment, makes the child (this same
// binary) spin instead of running its benchmark; see init.
const spinnerEnv = "BENCHKIT_IDLE_SPINNERS"

func init() {
	if n, err := strconv.Atoi(os.Getenv(spinnerEnv)); err == nil && n > 0 {
		// The child: spin until the parent closes stdin, then exit before
		// the benchmark's main runs.
		if err := spin(n, os.Stdin); err != nil {
			fmt.Fprintln(os.Stderr, "idle spinners:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// Spinners is a running child process of idle spinners.
type Spinners struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// KeepAwake starts n idle spinners (SCHED_IDLE busy threads) in a child
// process of this binary; Stop ends them. Where SCHED_IDLE does not exist
// it returns an error and starts nothing.
func KeepAwake(n int) (*Spinners, error) {
	if !spinnersSupported {
		return nil, errors.New("idle spinners need Linux's SCHED_IDLE")
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), spinnerEnv+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the idle spinners: %w", err)
	}
	return &Spinners{cmd: cmd, stdin: stdin}, nil
}

// PID is the spinners' process, for CPUMeter.ExcludePID.
func (s *Spinners) PID() int { return s.cmd.Process.Pid }

// Stop ends the spinners and waits for their process, killing it if it
// lingers.
func (s *Spinners) Stop() {
	s.stdin.Close()
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}
