package benchkit

import (
	"io"
	"runtime"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

const spinnersSupported = true

// spin runs n busy threads under SCHED_IDLE until stop is closed or
// reaches its end.
func spin(n int, stop io.Reader) error {
	var done atomic.Bool
	errs := make(chan error, n)
	for range n {
		go func() {
			// The thread stays locked and dies with the goroutine: it never
			// goes back to the runtime with the idle policy.
			runtime.LockOSThread()
			attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}
			if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
				errs <- err
				return
			}
			errs <- nil
			for !done.Load() {
			}
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			done.Store(true)
			return err
		}
	}
	_, _ = io.Copy(io.Discard, stop)
	done.Store(true)
	return nil
}
