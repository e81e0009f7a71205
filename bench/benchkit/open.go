package benchkit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
)

// Open runs an open-loop phase: it schedules one call every 1/rate seconds
// for d, whatever the earlier calls are doing, and hands each scheduled
// call to the first of workers idle workers, each calling its Op (made by
// newOp(worker) before the phase starts). A call's latency runs from its
// scheduled time, not from when a worker got to it, so a slow call also
// counts against the calls queued behind it and the percentiles do not
// suffer from coordinated omission. Calls that are late to start because
// every worker is busy therefore show up as latency; Sample.Ops counts the
// calls made. The meter is sampled just before the first slot and after the
// last call ends. The first error ends the phase and is returned.
func Open(ctx context.Context, rate float64, d time.Duration, workers int, meter *CPUMeter, newOp func(worker int) Op) (Sample, error) {
	if rate <= 0 || workers < 1 {
		return Sample{}, errors.New("open loop: rate and workers must be positive")
	}
	n := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	ctx, cancel := context.WithTimeout(ctx, d+PhaseGrace)
	defer cancel()

	// Every slot fits, so the scheduler never blocks on busy workers.
	slots := make(chan time.Time, n)
	lats := make([][]time.Duration, workers)
	ops := make([]int, workers)
	ends := make([]time.Time, workers)
	g, ctx := errgroup.WithContext(ctx)
	for w := range workers {
		op := newOp(w)
		g.Go(func() error {
			lat := make([]time.Duration, 0, n/workers+16)
			k := 0
			var end time.Time
			for at := range slots {
				m, err := op(ctx)
				if err != nil {
					return fmt.Errorf("worker %d: %w", w, err)
				}
				end = time.Now()
				lat = append(lat, end.Sub(at))
				k += m
			}
			lats[w], ops[w], ends[w] = lat, k, end
			return nil
		})
	}

	before := meter.Sample()
	begin := time.Now()
	g.Go(func() error {
		defer close(slots)
		for i := range n {
			at := begin.Add(time.Duration(i) * interval)
			if wait := time.Until(at); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
			}
			slots <- at
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return Sample{}, err
	}
	return newSample(before, meter.Sample(), begin, ends, lats, ops), nil
}
