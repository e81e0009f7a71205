package invokeresiliency

import (
	"context"
	"time"
)

// Clock is the engine's time: circuit breaker periods and the waits between
// retries read it, so that tests can inject a fake. Per-attempt timeouts
// always use real time, through context.WithTimeout, so that the deadline
// travels with the request to the app.
type Clock interface {
	Now() time.Time
	// Sleep waits for d, or until ctx is done, in which case it returns
	// ctx's error.
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the wall clock.
type RealClock struct{}

func (RealClock) Now() time.Time { return time.Now() }

func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
