package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// phaseGrace is how long a phase may overrun its duration before its
// requests are cancelled: a hung gateway fails the run instead of hanging it.
const phaseGrace = 30 * time.Second

// opFunc is a target's save or get.
type opFunc func(ctx context.Context, worker, key int) error

// sample is what one phase measured.
type sample struct {
	ops     int
	elapsed time.Duration
	lat     []time.Duration // every operation's latency, sorted
	cpu     cpuUsage
	cpuOK   bool
}

// measure runs op from clients workers for d, each picking keys uniformly
// at random from [0, keys) with a generator seeded by seed and its index, so
// that both sides of a comparison see the same keys in the same order. The
// first error ends the phase and is returned.
func measure(ctx context.Context, op opFunc, clients, keys int, d time.Duration, seed uint64, meter *cpuMeter) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, d+phaseGrace)
	defer cancel()
	lats := make([][]time.Duration, clients)
	ends := make([]time.Time, clients)
	start := make(chan struct{})
	var begin, deadline time.Time
	g, ctx := errgroup.WithContext(ctx)
	for w := range clients {
		g.Go(func() error {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			// Room for about 20k ops/s per worker for d without growing.
			lat := make([]time.Duration, 0, min(int(d/(50*time.Microsecond)), 1<<22))
			<-start
			t0 := time.Now()
			for t0.Before(deadline) {
				k := rng.IntN(keys)
				if err := op(ctx, w, k); err != nil {
					return fmt.Errorf("client %d: %w", w, err)
				}
				t1 := time.Now()
				lat = append(lat, t1.Sub(t0))
				t0 = t1
			}
			lats[w], ends[w] = lat, t0
			return nil
		})
	}
	before := meter.sample()
	begin = time.Now()
	deadline = begin.Add(d)
	close(start)
	if err := g.Wait(); err != nil {
		return sample{}, err
	}
	after := meter.sample()
	var s sample
	s.cpu, s.cpuOK = before.until(after)
	s.elapsed = slices.MaxFunc(ends, time.Time.Compare).Sub(begin)
	s.lat = slices.Concat(lats...)
	slices.Sort(s.lat)
	s.ops = len(s.lat)
	return s, nil
}

// preload writes every key once with save, from clients workers, unmeasured.
func preload(ctx context.Context, save opFunc, clients, keys int) error {
	var next atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for w := range clients {
		g.Go(func() error {
			for {
				k := int(next.Add(1) - 1)
				if k >= keys {
					return nil
				}
				if err := save(ctx, w, k); err != nil {
					return fmt.Errorf("client %d: %w", w, err)
				}
			}
		})
	}
	return g.Wait()
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value with at least p% of the values
// at or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// ceil(n·p/100), minus a hair so that float error in an exact product
	// (1000 × 99.9) does not push the rank up by one.
	rank := int(math.Ceil(float64(len(sorted))*p/100 - 1e-9))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}
