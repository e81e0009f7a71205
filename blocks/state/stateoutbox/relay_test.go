package stateoutbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blockgate/blockgate/internal/syncbuf"

	"github.com/blockgate/blockgate/blocks/pubsub"
)

func TestRetryDelay(t *testing.T) {
	tests := []struct {
		attempts int
		want     time.Duration
	}{
		{0, time.Second},
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{6, 32 * time.Second},
		{7, time.Minute},
		{8, time.Minute},
		{1000, time.Minute},
	}
	for _, tc := range tests {
		if got := RetryDelay(tc.attempts); got != tc.want {
			t.Errorf("RetryDelay(%d) = %v, want %v", tc.attempts, got, tc.want)
		}
	}
}

// queue is a fake Queue: a list of messages, each claimed by one claim at
// a time. claimErr and claimPanic make the next claims fail.
type queue struct {
	mu         sync.Mutex
	msgs       []pubsub.Message
	claimed    map[string]bool
	failures   map[string]int
	claims     int
	claimErr   error
	claimPanic bool
}

func newQueue(ids ...string) *queue {
	q := &queue{claimed: map[string]bool{}, failures: map[string]int{}}
	for _, id := range ids {
		q.add(pubsub.Message{Tenant: "acme", Pubsub: "pubsub", Topic: "t", ID: id})
	}
	return q
}

func (q *queue) add(m pubsub.Message) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, m)
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs)
}

func (q *queue) Claim(_ context.Context, max int) (Claim, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.claims++
	if q.claimPanic {
		panic("queue on fire")
	}
	if q.claimErr != nil {
		return nil, q.claimErr
	}
	c := &claim{q: q}
	for _, m := range q.msgs {
		if len(c.msgs) < max && !q.claimed[m.ID] {
			q.claimed[m.ID] = true
			c.msgs = append(c.msgs, m)
		}
	}
	return c, nil
}

type claim struct {
	q    *queue
	msgs []pubsub.Message
	done bool
}

func (c *claim) Messages() []pubsub.Message { return c.msgs }

func (c *claim) Settle(_ context.Context, published []bool) error {
	c.q.mu.Lock()
	defer c.q.mu.Unlock()
	drop := map[string]bool{}
	for i, m := range c.msgs {
		if published[i] {
			drop[m.ID] = true
		} else {
			c.q.failures[m.ID]++
		}
	}
	kept := c.q.msgs[:0]
	for _, m := range c.q.msgs {
		if !drop[m.ID] {
			kept = append(kept, m)
		}
	}
	c.q.msgs = kept
	c.release()
	return nil
}

func (c *claim) Release() {
	c.q.mu.Lock()
	defer c.q.mu.Unlock()
	c.release()
}

func (c *claim) release() {
	if c.done {
		return
	}
	c.done = true
	for _, m := range c.msgs {
		delete(c.q.claimed, m.ID)
	}
}

// broker records publishes; fail decides per message whether it fails.
type broker struct {
	mu    sync.Mutex
	got   []string
	calls int
	fail  func(pubsub.Message) error
}

func (b *broker) publish(_ context.Context, msgs []pubsub.Message) []error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		if b.fail != nil {
			if errs[i] = b.fail(m); errs[i] != nil {
				continue
			}
		}
		b.got = append(b.got, m.ID)
	}
	return errs
}

func (b *broker) ids() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.got...)
}

// run starts Run in the background and stops it when the test ends.
func run(t *testing.T, q Queue, wake <-chan struct{}, publish Publish, cfg Config) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, q, wake, publish, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v after cancel, want nil", err)
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestRunDrainsBacklogInBatches(t *testing.T) {
	var ids []string
	for i := range 25 {
		ids = append(ids, fmt.Sprintf("m%02d", i))
	}
	q := newQueue(ids...)
	b := &broker{}
	// An hour's poll: the backlog must drain without waiting.
	run(t, q, nil, b.publish, Config{Batch: 10, Poll: time.Hour})
	waitFor(t, "the backlog to drain", func() bool { return q.len() == 0 })
	if got := b.ids(); strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("published %v, want %v in order", got, ids)
	}
	if b.calls != 3 {
		t.Fatalf("%d publish calls for 25 messages in batches of 10, want 3", b.calls)
	}
}

func TestRunWakes(t *testing.T) {
	q := newQueue()
	b := &broker{}
	wake := make(chan struct{}, 1)
	run(t, q, wake, b.publish, Config{Poll: time.Hour})
	waitFor(t, "the first claim", func() bool { q.mu.Lock(); defer q.mu.Unlock(); return q.claims >= 1 })
	q.add(pubsub.Message{Tenant: "acme", ID: "late"})
	wake <- struct{}{}
	waitFor(t, "the woken relay to publish", func() bool { return len(b.ids()) == 1 })
}

func TestRunRetriesFailures(t *testing.T) {
	q := newQueue("ok", "bad")
	var logs syncbuf.Buffer
	var mu sync.Mutex
	failing := true
	b := &broker{fail: func(m pubsub.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if m.ID == "bad" && failing {
			return pubsub.ErrUnavailable
		}
		return nil
	}}
	run(t, q, nil, b.publish, Config{Poll: time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	waitFor(t, "bad to fail a few times", func() bool { q.mu.Lock(); defer q.mu.Unlock(); return q.failures["bad"] >= 3 })
	if got := b.ids(); len(got) != 1 || got[0] != "ok" {
		t.Fatalf("published %v, want [ok]", got)
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	waitFor(t, "bad to be published", func() bool { return q.len() == 0 })
	out := logs.String()
	if n := strings.Count(out, "outbox relay could not publish"); n != 1 {
		t.Fatalf("%d failure lines, want 1 (rate-limited):\n%s", n, out)
	}
	if !strings.Contains(out, "id=bad") || !strings.Contains(out, errUnavailableText) {
		t.Fatalf("the failure line lacks the message or the error:\n%s", out)
	}
}

// errUnavailableText is how pubsub.ErrUnavailable reads in a log line.
var errUnavailableText = pubsub.ErrUnavailable.Error()

func TestRunDropsExpired(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	q := newQueue()
	q.add(pubsub.Message{ID: "expired", Expires: now})
	q.add(pubsub.Message{ID: "live", Expires: now.Add(time.Second)})
	b := &broker{}
	run(t, q, nil, b.publish, Config{Poll: time.Millisecond, Now: func() time.Time { return now }})
	waitFor(t, "the queue to empty", func() bool { return q.len() == 0 })
	if got := b.ids(); len(got) != 1 || got[0] != "live" {
		t.Fatalf("published %v, want only the live message", got)
	}
}

func TestRunSurvivesQueueFailuresAndPanics(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(q *queue)
		log   string
	}{
		{"claim error", func(q *queue) { q.claimErr = errors.New("database on fire") }, "database on fire"},
		{"claim panic", func(q *queue) { q.claimPanic = true }, "queue on fire"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue("m1")
			tc.setup(q)
			var logs syncbuf.Buffer
			b := &broker{}
			run(t, q, nil, b.publish, Config{Poll: time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			waitFor(t, "a second claim after the failure", func() bool { q.mu.Lock(); defer q.mu.Unlock(); return q.claims >= 2 })
			q.mu.Lock()
			q.claimErr, q.claimPanic = nil, false
			q.mu.Unlock()
			waitFor(t, "m1 once the queue recovers", func() bool { return len(b.ids()) == 1 })
			if !strings.Contains(logs.String(), tc.log) {
				t.Fatalf("the failure was not logged:\n%s", logs.String())
			}
		})
	}
}

func TestRunPublishPanic(t *testing.T) {
	q := newQueue("m1")
	var once sync.Once
	b := &broker{}
	var logs syncbuf.Buffer
	run(t, q, nil, func(ctx context.Context, msgs []pubsub.Message) []error {
		once.Do(func() { panic("broker on fire") })
		return b.publish(ctx, msgs)
	}, Config{Poll: time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	waitFor(t, "m1 after the panic", func() bool { return q.len() == 0 })
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failures["m1"] != 1 || !strings.Contains(logs.String(), "broker on fire") {
		t.Fatalf("failures = %v; log:\n%s", q.failures, logs.String())
	}
}

func TestRunArguments(t *testing.T) {
	if err := Run(t.Context(), nil, nil, (&broker{}).publish, Config{}); err == nil {
		t.Fatal("Run without a queue = nil")
	}
	if err := Run(t.Context(), newQueue(), nil, nil, Config{}); err == nil {
		t.Fatal("Run without publish = nil")
	}
}
