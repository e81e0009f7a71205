package benchkit

import (
	"context"
	"testing"
	"time"
)

func TestOpenPacesCalls(t *testing.T) {
	s, err := Open(t.Context(), 1000, 200*time.Millisecond, 4, nil, func(int) Op {
		return func(context.Context) (int, error) { return 1, nil }
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Ops != 200 || len(s.Lat) != 200 {
		t.Fatalf("Ops = %d, %d latencies, want 200", s.Ops, len(s.Lat))
	}
	if s.Elapsed < 190*time.Millisecond {
		t.Errorf("Elapsed = %s: the calls were not paced", s.Elapsed)
	}
}

func TestOpenCountsQueueingFromTheSchedule(t *testing.T) {
	// One worker, and the first call stalls for 50 ms: the calls scheduled
	// meanwhile (half of them, from 50 ms down to 1 ms late) wait for it,
	// and their latency must say so.
	first := true
	s, err := Open(t.Context(), 1000, 100*time.Millisecond, 1, nil, func(int) Op {
		return func(context.Context) (int, error) {
			if first {
				first = false
				time.Sleep(50 * time.Millisecond)
			}
			return 1, nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if p75 := Percentile(s.Lat, 75); p75 < 10*time.Millisecond {
		t.Errorf("p75 = %s: the queueing behind the stalled call was not counted", p75)
	}
}
