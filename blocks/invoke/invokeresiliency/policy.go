package invokeresiliency

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// ErrTimeout marks an attempt that the policy's timeout cut short. The
// error Run returns then also wraps the call's own error (usually
// context.DeadlineExceeded).
var ErrTimeout = errors.New("resiliency timeout")

// Outcome is what one attempt of a call produced, as the caller reports it
// to Run: the app's status and whether the request may be sent again.
//
// The zero Outcome (no answer, not known to be unsent, not replayable) is
// never retried: a caller that is unsure leaves the flags false.
type Outcome struct {
	// Status is the app's answer; the zero Status when there was none.
	Status Status
	// Unsent reports that the attempt failed before any of the request
	// left for the app (see DialFailed), so sending it again cannot apply
	// it twice. Any retry policy retries such a failure, whatever the
	// method.
	Unsent bool
	// Replayable reports that the request may be sent again after it
	// reached the app: its body is empty or buffered (a streamed body that
	// was consumed cannot be sent again) and its method is idempotent (see
	// IdempotentMethod). A request that is not Replayable is retried only
	// when Unsent.
	Replayable bool
	// Release, when set by the caller, frees what the attempt holds,
	// typically by closing its response body. Run calls it when it drops
	// the Outcome to retry. On the Outcome Run returns, Release is never
	// nil: it also ends the attempt's context, which stays alive (under
	// the policy's timeout) so that the caller can stream the response
	// body, and the caller must call it once done with the response.
	Release func()
}

// Policy is the resiliency of calls to one app: from the outside in, each
// attempt passes the circuit breaker, then runs under the timeout, and
// failed attempts are retried by the retry policy. A Policy is a value,
// resolved by Resiliency.ForApp for each call, and safe for concurrent use.
type Policy struct {
	// App is the target app id, for messages.
	App string
	// Timeout bounds each attempt; 0 leaves only the caller's context.
	Timeout     time.Duration
	TimeoutName string
	// Retry retries failed attempts; nil makes one attempt.
	Retry     *Retry
	RetryName string
	// Breaker guards the app; nil for none.
	Breaker     *Breaker
	BreakerName string
	// Clock times the waits between retries; nil means real time.
	Clock Clock

	// rand is the jitter source of exponential waits; nil means
	// math/rand/v2. Tests fix it.
	rand func() float64
}

// ForApp resolves the policy of calls to the app appID, as daprd resolves
// an endpoint policy:
//
//  1. If spec.targets.apps names appID, its timeout, retry and circuit
//     breaker apply, and only those: a kind it leaves out is not applied.
//  2. Otherwise each kind comes from the default policies, if the tenant
//     defined them: DefaultAppTimeoutPolicy else DefaultTimeoutPolicy,
//     DefaultAppRetryPolicy else DefaultRetryPolicy,
//     DefaultAppCircuitBreakerPolicy else DefaultCircuitBreakerPolicy.
//  3. What is still unset takes the built-in defaults: no timeout but the
//     caller's context; no circuit breaker; and the built-in service
//     invocation retries (DaprBuiltInServiceRetries: 3 retries, 1s apart,
//     or the tenant's redefinition), which retry only attempts that never
//     reached the app, so a non-idempotent call is never repeated.
func (r Resiliency) ForApp(appID string) Policy {
	p := Policy{App: appID}
	names, named := r.Apps[appID]
	if !named {
		names.Timeout = firstDefined(r.Timeouts, DefaultAppTimeoutPolicy, DefaultTimeoutPolicy)
		names.Retry = firstDefined(r.Retries, DefaultAppRetryPolicy, DefaultRetryPolicy)
		names.CircuitBreaker = firstDefined(r.CircuitBreakers, DefaultAppCircuitBreakerPolicy, DefaultCircuitBreakerPolicy)
	}
	if names.Timeout != "" {
		p.Timeout, p.TimeoutName = r.Timeouts[names.Timeout], names.Timeout
	}
	switch {
	case names.Retry != "":
		if rt, ok := r.retry(names.Retry); ok {
			p.Retry, p.RetryName = &rt, names.Retry
		}
	case !named:
		rt, _ := r.retry(BuiltInServiceRetries)
		rt.connectOnly = true
		p.Retry, p.RetryName = &rt, BuiltInServiceRetries
	}
	if names.CircuitBreaker != "" {
		if cfg, ok := r.CircuitBreakers[names.CircuitBreaker]; ok {
			p.BreakerName = names.CircuitBreaker
			if r.Breakers != nil {
				p.Breaker = r.Breakers.Get(r.Tenant, appID, names.CircuitBreaker, cfg)
			} else {
				p.Breaker = NewBreaker(breakerName(names.CircuitBreaker, appID), cfg, nil)
			}
		}
	}
	return p
}

func firstDefined[V any](m map[string]V, names ...string) string {
	for _, n := range names {
		if _, ok := m[n]; ok {
			return n
		}
	}
	return ""
}

// String describes the policy for logs.
func (p Policy) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "app %s:", p.App)
	if p.Timeout > 0 {
		fmt.Fprintf(&b, " timeout %s (%s)", p.Timeout, p.TimeoutName)
	}
	if p.Retry != nil {
		fmt.Fprintf(&b, " retry %s", p.RetryName)
	}
	if p.Breaker != nil {
		fmt.Fprintf(&b, " circuit breaker %s", p.BreakerName)
	}
	if p.Timeout <= 0 && p.Retry == nil && p.Breaker == nil {
		b.WriteString(" none")
	}
	return b.String()
}

type attemptKey struct{}

// Attempt returns the number of the attempt whose context ctx is, from 1;
// 0 outside Run.
func Attempt(ctx context.Context) int {
	n, _ := ctx.Value(attemptKey{}).(int)
	return n
}

var errAttemptTimedOut = errors.New("the resiliency timeout of the attempt expired")

// Run calls call, once per attempt, under the policy, and returns the
// Outcome and error of the last attempt made.
//
// An attempt fails when call returns an error or a status that is not a
// success (Status.Succeeded). A failed attempt is retried when the policy
// has retries left, the caller's ctx is not done, the circuit breaker has
// not opened, and the request may be sent again: it was Unsent, or it is
// Replayable and its status (if any) matches the retry policy. The wait
// before a retry follows the retry policy and ends early, with ctx's error,
// when ctx is done.
//
// An app's failing status is not an error: when no retry follows, Run
// returns it with a nil error, for the caller to pass on. Run's own errors
// wrap ErrCircuitOpen (the breaker refused the call: nothing was sent),
// ErrTimeout (the last attempt timed out) or ctx's error (ctx ended while
// waiting to retry). For the breaker, an attempt counts as a success or a
// failure as above, except that an attempt whose ctx was cancelled (the
// caller went away) does not count; one that hit ctx's deadline fails.
//
// call receives the attempt's context (see Attempt), which carries the
// policy's timeout, and must return promptly when it is done. Run may be
// called concurrently.
func (p Policy) Run(ctx context.Context, call func(ctx context.Context) (Outcome, error)) (Outcome, error) {
	clock := p.Clock
	if clock == nil {
		clock = RealClock{}
	}
	var (
		sched *schedule
		start time.Time
	)
	if p.Retry != nil {
		start = clock.Now()
	}
	for attempt := 1; ; attempt++ {
		var t ticket
		if p.Breaker != nil {
			var err error
			if t, err = p.Breaker.allow(); err != nil {
				return released(Outcome{}, nil), fmt.Errorf("calling app %s: %w", p.App, err)
			}
		}
		o, cancel, err := p.attempt(ctx, attempt, call)
		failed := err != nil || !o.Status.Succeeded()
		switch {
		case !failed:
			t.done(success)
		case errors.Is(ctx.Err(), context.Canceled):
			t.done(ignored)
		default:
			t.done(failure)
		}
		if !failed || ctx.Err() != nil || !p.retryable(o) {
			return released(o, cancel), afterAttempts(attempt, err)
		}
		if sched == nil {
			sched = &schedule{rt: *p.Retry, rand: p.rand}
			if sched.rand == nil {
				sched.rand = rand.Float64
			}
		}
		wait, ok := sched.next(clock.Now().Sub(start))
		if !ok {
			return released(o, cancel), afterAttempts(attempt, err)
		}
		released(o, cancel).Release()
		if err := clock.Sleep(ctx, wait); err != nil {
			return released(Outcome{}, nil), fmt.Errorf("calling app %s: waiting %s to retry after attempt %d: %w",
				p.App, wait, attempt, err)
		}
	}
}

// attempt makes one attempt under the policy's timeout. cancel ends the
// attempt's context; the caller of attempt owns it.
func (p Policy) attempt(ctx context.Context, n int, call func(context.Context) (Outcome, error)) (Outcome, context.CancelFunc, error) {
	actx := context.WithValue(ctx, attemptKey{}, n)
	if p.Timeout <= 0 {
		o, err := call(actx)
		return o, nil, err
	}
	actx, cancel := context.WithTimeoutCause(actx, p.Timeout, errAttemptTimedOut)
	o, err := call(actx)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(actx), errAttemptTimedOut) {
		name := ""
		if p.TimeoutName != "" {
			name = fmt.Sprintf(" (timeout policy %s)", p.TimeoutName)
		}
		err = fmt.Errorf("%w: app %s did not answer within %s%s: %w", ErrTimeout, p.App, p.Timeout, name, err)
	}
	return o, cancel, err
}

// retryable reports whether the failed attempt o may be sent again under
// the retry policy (its count and wait aside).
func (p Policy) retryable(o Outcome) bool {
	rt := p.Retry
	if rt == nil {
		return false
	}
	if p.Breaker != nil && p.Breaker.State() == Open {
		// The failure opened the breaker (or another call's did): a retry
		// would be refused, and the app's own answer is the better one.
		return false
	}
	switch {
	case o.Status.Answered():
		// A success with an error (the response broke while it was being
		// passed on) is never repeated.
		return !o.Status.Succeeded() && o.Replayable && !rt.connectOnly && rt.Matching.Matches(o.Status)
	case o.Unsent:
		return true
	default:
		return o.Replayable && !rt.connectOnly
	}
}

// released returns o with a Release that also calls cancel, never nil.
func released(o Outcome, cancel context.CancelFunc) Outcome {
	own := o.Release
	o.Release = sync.OnceFunc(func() {
		if cancel != nil {
			cancel()
		}
		if own != nil {
			own()
		}
	})
	return o
}

func afterAttempts(n int, err error) error {
	if err == nil || n == 1 {
		return err
	}
	return fmt.Errorf("after %d attempts: %w", n, err)
}
