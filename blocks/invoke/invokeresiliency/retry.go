package invokeresiliency

import (
	"fmt"
	"time"
)

// Backoff is a retry policy's schedule.
type Backoff uint8

const (
	// Constant waits Duration between attempts.
	Constant Backoff = iota
	// Exponential waits 500ms, then about 1.5 times longer each time, with
	// ±50% jitter, never more than MaxInterval.
	Exponential
)

func (b Backoff) String() string {
	if b == Exponential {
		return "exponential"
	}
	return "constant"
}

// Retry is a retry policy (spec.policies.retries). The values Parse fills
// in for absent fields are daprd's: constant, duration 5s, maxInterval 60s,
// maxRetries -1.
type Retry struct {
	Policy Backoff
	// Duration is the wait between attempts of a Constant policy.
	Duration time.Duration
	// MaxInterval caps the wait of an Exponential policy.
	MaxInterval time.Duration
	// MaxRetries is the number of retries after the first attempt; -1
	// means no limit but the caller's context (and, for Exponential, 15
	// minutes in all, as daprd's backoff stops there).
	MaxRetries int
	// Matching chooses the failing statuses that are retried.
	Matching Matching

	// The exponential schedule; zero means daprd's values for a resource's
	// policy (500ms, 15m). Only the built-in policies set them.
	initialInterval time.Duration
	maxElapsed      time.Duration
	// connectOnly retries only attempts that never reached the app, as
	// daprd's built-in service invocation retries (for Unavailable between
	// sidecars) do.
	connectOnly bool
}

// daprd's exponential schedule (dapr/kit retry.DefaultConfig and
// cenkalti/backoff's defaults), which a resource cannot change.
const (
	expInitialInterval = 500 * time.Millisecond
	expMultiplier      = 1.5
	expRandomization   = 0.5
	expMaxElapsed      = 15 * time.Minute
)

func (rt Retry) validate(field string) error {
	switch rt.Policy {
	case Constant, Exponential:
	default:
		return fmt.Errorf("%s.policy: unknown retry policy %d", field, rt.Policy)
	}
	if rt.Duration < 0 {
		return fmt.Errorf("%s.duration is negative", field)
	}
	if rt.MaxInterval < 0 {
		return fmt.Errorf("%s.maxInterval is negative", field)
	}
	if rt.Policy == Exponential && rt.MaxInterval == 0 {
		return fmt.Errorf("%s.maxInterval: an exponential policy needs a maximum interval above 0", field)
	}
	if rt.MaxRetries < -1 {
		return fmt.Errorf("%s.maxRetries: %d is not a count; use -1 for no limit, 0 for no retries, or more", field, rt.MaxRetries)
	}
	for _, m := range []struct {
		name   string
		ranges []CodeRange
		valid  CodeRange
	}{{"httpStatusCodes", rt.Matching.HTTP, httpCodes}, {"gRPCStatusCodes", rt.Matching.GRPC, grpcCodes}} {
		if m.ranges != nil && len(m.ranges) == 0 {
			return fmt.Errorf("%s.matching.%s lists no codes", field, m.name)
		}
		for _, r := range m.ranges {
			if r.From < m.valid.From || r.To > m.valid.To || r.To < r.From {
				return fmt.Errorf("%s.matching.%s: %d-%d is not a range within %d-%d", field, m.name, r.From, r.To, m.valid.From, m.valid.To)
			}
		}
	}
	return nil
}

// schedule yields the waits of one Run. It is not safe for concurrent use;
// each Run has its own.
type schedule struct {
	rt      Retry
	rand    func() float64
	retries int           // retries made so far
	current time.Duration // exponential: the interval before jitter
}

// next returns the wait before the next retry, given the time spent so
// far, or false when the policy allows no more.
func (s *schedule) next(elapsed time.Duration) (time.Duration, bool) {
	if s.rt.MaxRetries >= 0 && s.retries >= s.rt.MaxRetries {
		return 0, false
	}
	var d time.Duration
	switch s.rt.Policy {
	case Exponential:
		if s.current == 0 {
			s.current = s.rt.initialInterval
			if s.current == 0 {
				s.current = expInitialInterval
			}
		}
		// current ± 50%, as backoff.ExponentialBackOff, capped as Dapr
		// documents: "if BackOffDuration > maxInterval, maxInterval".
		delta := expRandomization * float64(s.current)
		d = time.Duration(float64(s.current) - delta + s.rand()*2*delta)
		d = min(d, s.rt.MaxInterval)
		if float64(s.current) >= float64(s.rt.MaxInterval)/expMultiplier {
			s.current = s.rt.MaxInterval
		} else {
			s.current = time.Duration(float64(s.current) * expMultiplier)
		}
		maxElapsed := s.rt.maxElapsed
		if maxElapsed == 0 {
			maxElapsed = expMaxElapsed
		}
		if elapsed+d > maxElapsed {
			return 0, false
		}
	default:
		d = s.rt.Duration
	}
	s.retries++
	return d, true
}
