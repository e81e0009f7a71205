package pubsubjs

import (
	"sync/atomic"
	"time"
)

// warnInterval is how often a subscription may log a warning that could
// otherwise come with every message.
const warnInterval = 10 * time.Second

// throttle lets an event through at most once per interval; it is safe for
// concurrent use.
type throttle struct {
	interval time.Duration
	next     atomic.Int64 // unix nanoseconds of the next allowed event
}

// allow reports whether the event at now may pass.
func (t *throttle) allow(now time.Time) bool {
	next := t.next.Load()
	if now.UnixNano() < next {
		return false
	}
	return t.next.CompareAndSwap(next, now.Add(t.interval).UnixNano())
}
