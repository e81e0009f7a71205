package lograte

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := Limiter{Every: time.Minute}
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at             time.Duration
		ok             bool
		wantSuppressed int
	}{
		{0, true, 0},
		{time.Second, false, 0},
		{30 * time.Second, false, 0},
		{time.Minute, true, 2},
		{time.Minute + time.Second, false, 0},
		{3 * time.Minute, true, 1},
	}
	for _, s := range steps {
		sup, ok := l.Allow(t0.Add(s.at))
		if ok != s.ok || sup != s.wantSuppressed {
			t.Fatalf("at %v: allow = %d, %v; want %d, %v", s.at, sup, ok, s.wantSuppressed, s.ok)
		}
	}
}
