package benchkit

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"
)

// PhaseGrace is how long a phase may overrun its duration before its
// requests are cancelled: a hung gateway fails the run instead of hanging it.
const PhaseGrace = 30 * time.Second

// Op is one call of a closed-loop worker. It returns how many operations
// the call counts for (1 for a single request, the batch size for a batch),
// which is what throughput and CPU per operation are counted in.
type Op func(ctx context.Context) (n int, err error)

// Sample is what one phase measured.
type Sample struct {
	Ops     int             // operations done (the sum of the calls' n)
	Elapsed time.Duration   // from the start to the last worker's end
	Lat     []time.Duration // every call's latency, sorted
	CPU     CPUUsage
	CPUOK   bool // false where CPU time cannot be measured
}

// Closed runs workers closed-loop workers for d: each calls its Op, made by
// newOp(worker) before the phase starts, again as soon as the last call
// returns, and records every call's latency. The meter is sampled just
// before the workers start and after the last one ends. The first error
// ends the phase and is returned.
func Closed(ctx context.Context, workers int, d time.Duration, meter *CPUMeter, newOp func(worker int) Op) (Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, d+PhaseGrace)
	defer cancel()
	lats := make([][]time.Duration, workers)
	ops := make([]int, workers)
	ends := make([]time.Time, workers)
	start := make(chan struct{})
	var begin, deadline time.Time
	g, ctx := errgroup.WithContext(ctx)
	for w := range workers {
		op := newOp(w)
		g.Go(func() error {
			// Room for about 20k calls/s per worker for d without growing.
			lat := make([]time.Duration, 0, min(int(d/(50*time.Microsecond)), 1<<22))
			n := 0
			<-start
			t0 := time.Now()
			for t0.Before(deadline) {
				k, err := op(ctx)
				if err != nil {
					return fmt.Errorf("worker %d: %w", w, err)
				}
				t1 := time.Now()
				lat = append(lat, t1.Sub(t0))
				n += k
				t0 = t1
			}
			lats[w], ops[w], ends[w] = lat, n, t0
			return nil
		})
	}
	before := meter.Sample()
	begin = time.Now()
	deadline = begin.Add(d)
	close(start)
	if err := g.Wait(); err != nil {
		return Sample{}, err
	}
	return newSample(before, meter.Sample(), begin, ends, lats, ops), nil
}

// newSample gathers what the workers of one phase recorded.
func newSample(before, after CPUSample, begin time.Time, ends []time.Time, lats [][]time.Duration, ops []int) Sample {
	var s Sample
	s.CPU, s.CPUOK = before.Until(after)
	s.Elapsed = slices.MaxFunc(ends, time.Time.Compare).Sub(begin)
	s.Lat = slices.Concat(lats...)
	slices.Sort(s.Lat)
	for _, n := range ops {
		s.Ops += n
	}
	return s
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value with at least p% of the values
// at or below it.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// ceil(n·p/100), minus a hair so that float error in an exact product
	// (1000 × 99.9) does not push the rank up by one.
	rank := int(math.Ceil(float64(len(sorted))*p/100 - 1e-9))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Merge joins samples of the same side taken in several slices of time
// into one: calls, time and CPU add up, latencies are pooled. CPU is
// measured only if it was in every slice.
func Merge(samples ...Sample) Sample {
	var m Sample
	m.CPUOK = len(samples) > 0
	lats := make([][]time.Duration, 0, len(samples))
	for _, s := range samples {
		m.Ops += s.Ops
		m.Elapsed += s.Elapsed
		m.CPU.Client += s.CPU.Client
		m.CPU.Gateway += s.CPU.Gateway
		m.CPU.Postgres += s.CPU.Postgres
		m.CPU.Other += s.CPU.Other
		m.CPUOK = m.CPUOK && s.CPUOK
		lats = append(lats, s.Lat)
	}
	if !m.CPUOK {
		m.CPU = CPUUsage{}
	}
	m.Lat = slices.Concat(lats...)
	slices.Sort(m.Lat)
	return m
}
