package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// tracker collects what the nodes report: when each got its first full
// configuration, when each ACKed the endpoints a change wants, and the
// responses received. Its methods are safe for concurrent use.
type tracker struct {
	mu sync.Mutex
	n  int

	// The connect phase.
	configuredAt  []time.Time
	configuredIn  []time.Duration
	firstAcks     [][numKinds]time.Duration
	nConfigured   int
	allConfigured chan struct{}

	// The current change: the changed app's endpoint count wanted, and when
	// each node ACKed it.
	want     int
	changeAt []time.Time
	nChanged int
	changed  chan struct{}

	responses [numKinds]int
	lastAck   time.Time

	err    error
	failed chan struct{}
}

func newTracker(n int) *tracker {
	return &tracker{
		n:             n,
		configuredAt:  make([]time.Time, n),
		configuredIn:  make([]time.Duration, n),
		firstAcks:     make([][numKinds]time.Duration, n),
		allConfigured: make(chan struct{}),
		failed:        make(chan struct{}),
	}
}

// received counts a response of kind k.
func (t *tracker) received(k kind) {
	t.mu.Lock()
	t.responses[k]++
	t.mu.Unlock()
}

// acked notes that node k sent an ACK at at; endpoints is the changed
// app's endpoint count in an EDS response, -1 for other kinds.
func (t *tracker) acked(k int, at time.Time, endpoints int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastAck = at
	if endpoints >= 0 && t.want > 0 && endpoints == t.want && t.changeAt[k].IsZero() {
		t.changeAt[k] = at
		t.nChanged++
		if t.nChanged == t.n {
			close(t.changed)
		}
	}
}

// configured notes that node k ACKed its first full configuration at at,
// in after from its stream's opening; first is when it first ACKed each
// kind, 0 for those it did not ask for.
func (t *tracker) configured(k int, at time.Time, after time.Duration, first [numKinds]time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.configuredAt[k], t.configuredIn[k], t.firstAcks[k] = at, after, first
	t.nConfigured++
	if t.nConfigured == t.n {
		close(t.allConfigured)
	}
}

// fail records the first error of a node; waits end with it.
func (t *tracker) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err == nil {
		t.err = err
		close(t.failed)
	}
}

// beginChange starts recording the ACKs of the endpoints of a change:
// those where the changed app has want endpoints.
func (t *tracker) beginChange(want int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.want, t.changeAt, t.nChanged, t.changed = want, make([]time.Time, t.n), 0, make(chan struct{})
}

// changeAcks returns when each node ACKed the current change's endpoints,
// the zero time for those that did not.
func (t *tracker) changeAcks() []time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]time.Time(nil), t.changeAt...)
}

// counts returns the responses received by kind and the last ACK's time.
func (t *tracker) counts() ([numKinds]int, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.responses, t.lastAck
}

// progressEvery is how often the waits say how far the nodes are.
const progressEvery = 2 * time.Second

// waitAll waits until done closes, a node fails, timeout passes or ctx
// ends, printing how many of the nodes count says are done as it goes.
func (t *tracker) waitAll(ctx context.Context, what string, done <-chan struct{}, count func() int, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-t.failed:
			t.mu.Lock()
			defer t.mu.Unlock()
			return t.err
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("%s: %d of %d nodes after %s", what, count(), t.n, timeout)
		case <-tick.C:
			progress("  %s: %d of %d nodes", what, count(), t.n)
		}
	}
}

// waitConfigured waits until every node has its first full configuration.
func (t *tracker) waitConfigured(ctx context.Context, timeout time.Duration) error {
	return t.waitAll(ctx, "configured", t.allConfigured, func() int {
		t.mu.Lock()
		defer t.mu.Unlock()
		return t.nConfigured
	}, timeout)
}

// waitChanged waits until every node has ACKed the current change.
func (t *tracker) waitChanged(ctx context.Context, timeout time.Duration) error {
	t.mu.Lock()
	done := t.changed
	t.mu.Unlock()
	return t.waitAll(ctx, "acked the change", done, func() int {
		t.mu.Lock()
		defer t.mu.Unlock()
		return t.nChanged
	}, timeout)
}

// waitQuiet waits until no response has come for quiet, and returns the
// last ACK's time.
func (t *tracker) waitQuiet(ctx context.Context, quiet, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		t.mu.Lock()
		last, err := t.lastAck, t.err
		t.mu.Unlock()
		switch {
		case err != nil:
			return last, err
		case time.Since(last) >= quiet:
			return last, nil
		case time.Now().After(deadline):
			return last, errors.New("the nodes still get responses: no quiet second before the timeout")
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(quiet / 10):
		}
	}
}
