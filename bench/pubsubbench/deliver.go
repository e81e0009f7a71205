package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/blockgate/blockgate/bench/benchkit"
)

// A deliver payload is a JSON object of exactly the payload size whose
// first fields are fixed-width decimal strings: the run, the message's
// sequence number and its send time in Unix nanoseconds, then
// benchkit.JSONValue's filler:
//
//	{"r":"07","s":"0000001234","t":"1763772000123456789","v":"…"}
//
// The digits are written in place, so the size never changes.
const (
	payloadHead    = `{"r":"00","s":"0000000000","t":"0000000000000000000",`
	runAt, runLen  = len(`{"r":"`), 2
	seqAt, seqLen  = runAt + runLen + len(`","s":"`), 10
	timeAt, timeLn = seqAt + seqLen + len(`","t":"`), 19
	minPayloadSize = len(payloadHead) + len(`"v":""}`)
)

// maxDeliverMessages bounds the messages of one deliver phase (the
// sequence numbers' width, and the collector's memory).
const maxDeliverMessages = 10_000_000

// drainTimeout is how long a deliver phase waits, after its last publish,
// for the messages still on their way.
const drainTimeout = 15 * time.Second

// deliverTemplate returns a deliver payload of size bytes with zero numbers.
func deliverTemplate(size int) []byte {
	v := benchkit.JSONValue(size - len(payloadHead) + 1) // {"v":"…"}
	return append([]byte(payloadHead), v[1:]...)
}

// stamp returns a copy of tmpl with run, seq and the send time filled in.
func stamp(tmpl []byte, run, seq int, sent time.Time) []byte {
	p := slices.Clone(tmpl)
	putDigits(p[runAt:runAt+runLen], uint64(run))
	putDigits(p[seqAt:seqAt+seqLen], uint64(seq))
	putDigits(p[timeAt:timeAt+timeLn], uint64(sent.UnixNano()))
	return p
}

// putDigits writes n in decimal, zero-padded to fill b.
func putDigits(b []byte, n uint64) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
}

// parseStamp reads run, seq and the send time from a delivered payload.
// It decodes the JSON rather than reading fixed offsets, so that a
// payload re-encoded on the way still counts.
func parseStamp(p []byte) (run, seq int, sent time.Time, err error) {
	var v struct{ R, S, T string }
	if err := json.Unmarshal(p, &v); err != nil {
		return 0, 0, time.Time{}, fmt.Errorf("delivered payload: %w", err)
	}
	r, err1 := strconv.Atoi(v.R)
	s, err2 := strconv.Atoi(v.S)
	t, err3 := strconv.ParseInt(v.T, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, time.Time{}, fmt.Errorf("delivered payload has no run, sequence and time: %.60q", p)
	}
	return r, s, time.Unix(0, t), nil
}

// collector gathers the latencies of one run's messages, each counted
// once however often it is delivered.
type collector struct {
	run int
	n   int

	mu      sync.Mutex
	seen    []bool
	lat     []time.Duration
	last    time.Time
	bad     error // the first undecodable payload
	done    chan struct{}
	repeats int // deliveries of a message already counted
}

func newCollector(run, n int) *collector {
	return &collector{run: run, n: n, seen: make([]bool, n), lat: make([]time.Duration, 0, n), done: make(chan struct{})}
}

// got records one delivered payload; messages of other runs are ignored.
func (c *collector) got(p []byte) {
	now := time.Now()
	run, seq, sent, err := parseStamp(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil:
		if c.bad == nil {
			c.bad = err
		}
	case run != c.run%100:
		// a straggler of an earlier run
	case seq < 0 || seq >= c.n:
		if c.bad == nil {
			c.bad = fmt.Errorf("delivered sequence number %d is not in [0, %d)", seq, c.n)
		}
	case c.seen[seq]:
		c.repeats++
	default:
		c.seen[seq] = true
		c.lat = append(c.lat, now.Sub(sent))
		c.last = now
		if len(c.lat) == c.n {
			close(c.done)
		}
	}
}

// deliverResult is one deliver phase.
type deliverResult struct {
	benchkit.Sample
	PublishRate float64 // messages/s the publishers achieved
	Repeats     int     // messages delivered more than once (counted once)
	// PublishLat is every publish call's latency, sorted: the part of the
	// publish→deliver latency until the publish was acknowledged.
	PublishLat []time.Duration
}

// measureDelivery publishes n = rate × d messages through pub, paced at
// rate by one goroutine and sent by workers publishers, and measures how
// long each takes to reach the subscription (cur, which the subscriber
// calls). The CPU meter is sampled when the first message is due and when
// the last one has arrived.
func measureDelivery(ctx context.Context, pub publisher, topic string, cur *atomic.Pointer[collector],
	run, workers int, rate float64, d time.Duration, tmpl []byte, meter *benchkit.CPUMeter) (deliverResult, error) {
	n := int(rate * d.Seconds())
	if n < 1 {
		return deliverResult{}, nil
	}
	c := newCollector(run, n)
	cur.Store(c)
	defer cur.Store(nil)

	ctx, cancel := context.WithTimeout(ctx, d+drainTimeout+benchkit.PhaseGrace)
	defer cancel()
	seqs := make(chan int)
	calls := make([][]time.Duration, workers) // each publish call's latency
	g, gctx := errgroup.WithContext(ctx)
	for w := range workers {
		g.Go(func() error {
			for seq := range seqs {
				t0 := time.Now()
				if err := pub.publish(gctx, w, topic, stamp(tmpl, run%100, seq, t0)); err != nil {
					return fmt.Errorf("publisher %d: %w", w, err)
				}
				calls[w] = append(calls[w], time.Since(t0))
			}
			return nil
		})
	}
	before := meter.Sample()
	begin := time.Now()
	interval := float64(time.Second) / rate
pace:
	for i := range n {
		if wait := time.Until(begin.Add(time.Duration(float64(i) * interval))); wait > 0 {
			time.Sleep(wait)
		}
		select {
		case seqs <- i: // blocks while every publisher is busy: the rate then falls behind
		case <-gctx.Done():
			break pace
		}
	}
	close(seqs)
	if err := g.Wait(); err != nil {
		return deliverResult{}, err
	}
	published := time.Since(begin)

	select {
	case <-c.done:
	case <-time.After(drainTimeout):
	case <-ctx.Done():
	}
	after := meter.Sample()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bad != nil {
		return deliverResult{}, c.bad
	}
	if len(c.lat) < n {
		return deliverResult{}, fmt.Errorf("only %d of %d messages were delivered within %s of the last publish", len(c.lat), n, drainTimeout)
	}
	res := deliverResult{PublishRate: float64(n) / published.Seconds(), Repeats: c.repeats, PublishLat: slices.Concat(calls...)}
	slices.Sort(res.PublishLat)
	res.CPU, res.CPUOK = before.Until(after)
	res.Ops = n
	res.Elapsed = c.last.Sub(begin)
	res.Lat = slices.Clone(c.lat)
	slices.Sort(res.Lat)
	return res, nil
}
