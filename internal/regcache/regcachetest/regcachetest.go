// Package regcachetest helps test the caches built on regcache: a clock
// that moves only when told to, and a wait for what a background reload
// brings.
package regcachetest

import (
	"sync/atomic"
	"testing"
	"time"
)

// Clock is a clock for a cache's Now that moves only when told to. It is
// safe for concurrent use: background reloads read it.
type Clock struct{ ns atomic.Int64 }

// NewClock returns a Clock at an arbitrary fixed time.
func NewClock() *Clock {
	c := &Clock{}
	c.ns.Store(time.Unix(1000, 0).UnixNano())
	return c
}

// Now is the clock's time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Add moves the clock on by d.
func (c *Clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// Eventually polls cond until it holds, failing the test after 5 s: a
// reload in the background ends at a moment the test cannot know.
func Eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
