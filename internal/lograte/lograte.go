// Package lograte keeps background loops from flooding the log with one
// failure repeated: a Limiter lets one line through per interval and counts
// the lines it held back.
package lograte

import "time"

// Limiter lets one log line through per Every. It is used by one goroutine.
type Limiter struct {
	Every      time.Duration
	last       time.Time
	suppressed int
}

// Allow reports whether to log now, and how many lines were held back since
// the last one that was.
func (l *Limiter) Allow(now time.Time) (suppressed int, ok bool) {
	if !l.last.IsZero() && now.Sub(l.last) < l.Every {
		l.suppressed++
		return 0, false
	}
	suppressed, l.suppressed, l.last = l.suppressed, 0, now
	return suppressed, true
}
