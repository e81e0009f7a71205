package invokeresiliency

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// answer returns a call function that answers status s.
func answer(code int) func(context.Context) (Outcome, error) {
	return func(context.Context) (Outcome, error) {
		return Outcome{Status: HTTPStatus(code)}, nil
	}
}

func TestBreaker(t *testing.T) {
	type step struct {
		advance   time.Duration // move the clock first
		code      int           // the app's answer; 0: the call must not be made
		wantState State         // after the step; Closed unless set
		wantOpen  bool          // the call is refused with ErrCircuitOpen
	}
	tests := []struct {
		name  string
		cb    CircuitBreaker
		steps []step
	}{
		{"trips after N consecutive failures and fails fast", CircuitBreaker{Timeout: time.Minute, Trip: MustParseTrip("consecutiveFailures >= 3")}, []step{
			{code: 500, wantState: Closed},
			{code: 500, wantState: Closed},
			{code: 500, wantState: Open},
			{wantState: Open, wantOpen: true},
			{advance: 59 * time.Second, wantState: Open, wantOpen: true},
		}},
		{"a success resets consecutive failures", CircuitBreaker{Trip: MustParseTrip("consecutiveFailures > 2")}, []step{
			{code: 500, wantState: Closed},
			{code: 500, wantState: Closed},
			{code: 200, wantState: Closed},
			{code: 500, wantState: Closed},
			{code: 500, wantState: Closed},
			{code: 500, wantState: Open},
		}},
		{"default trip is more than 5 consecutive failures", CircuitBreaker{}, []step{
			{code: 503}, {code: 503}, {code: 503}, {code: 503}, {code: 503, wantState: Closed},
			{code: 503, wantState: Open},
		}},
		{"4xx counts as a failure, as in daprd", CircuitBreaker{Trip: MustParseTrip("consecutiveFailures > 1")}, []step{
			{code: 404}, {code: 400, wantState: Open},
		}},
		{"half-opens after timeout and closes on success", CircuitBreaker{Timeout: 30 * time.Second, Trip: MustParseTrip("consecutiveFailures > 0")}, []step{
			{code: 500, wantState: Open},
			{advance: 29 * time.Second, wantState: Open, wantOpen: true},
			{advance: time.Second, code: 200, wantState: Closed},
			{code: 200, wantState: Closed},
		}},
		{"re-opens on probe failure", CircuitBreaker{Timeout: 30 * time.Second, Trip: MustParseTrip("consecutiveFailures > 0")}, []step{
			{code: 500, wantState: Open},
			{advance: 30 * time.Second, code: 502, wantState: Open},
			{advance: 29 * time.Second, wantState: Open, wantOpen: true},
			{advance: time.Second, code: 200, wantState: Closed},
		}},
		{"maxRequests successes close it", CircuitBreaker{MaxRequests: 3, Timeout: time.Second, Trip: MustParseTrip("consecutiveFailures > 0")}, []step{
			{code: 500, wantState: Open},
			{advance: time.Second, code: 200, wantState: HalfOpen},
			{code: 200, wantState: HalfOpen},
			{code: 200, wantState: Closed},
		}},
		{"default timeout is 60s", CircuitBreaker{Trip: MustParseTrip("consecutiveFailures > 0")}, []step{
			{code: 500, wantState: Open},
			{advance: 59 * time.Second, wantState: Open, wantOpen: true},
			{advance: time.Second, code: 200, wantState: Closed},
		}},
		{"interval clears the counts", CircuitBreaker{Interval: 10 * time.Second, Trip: MustParseTrip("totalFailures >= 3")}, []step{
			{code: 500}, {code: 200}, {code: 500, wantState: Closed},
			{advance: 10 * time.Second, code: 500, wantState: Closed},
			{code: 500, wantState: Closed},
			{code: 500, wantState: Open},
		}},
		{"requests and totalFailures", CircuitBreaker{Trip: MustParseTrip("requests >= 4 && totalFailures * 2 >= requests")}, []step{
			{code: 500}, {code: 500}, {code: 200, wantState: Closed},
			{code: 200, wantState: Closed}, // 4 requests, 2 failures: but trip is evaluated on failures only
			{code: 500, wantState: Open},   // 5 requests, 3 failures
		}},
		{"or and equality", CircuitBreaker{Trip: MustParseTrip("consecutiveFailures == 2 || totalSuccesses > 100")}, []step{
			{code: 500}, {code: 500, wantState: Open},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			b := NewBreaker(`"cb" for app orders`, tt.cb, clock)
			p := Policy{App: "orders", Breaker: b, Clock: clock}
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				called := false
				call := func(ctx context.Context) (Outcome, error) {
					called = true
					return answer(s.code)(ctx)
				}
				o, err := p.Run(t.Context(), call)
				if s.wantOpen {
					if !errors.Is(err, ErrCircuitOpen) || called {
						t.Fatalf("step %d: called %v, error %v; want a refusal without a call", i, called, err)
					}
					if o.Release == nil || o.Status.Answered() {
						t.Errorf("step %d: outcome %+v", i, o)
					}
				} else if err != nil || !called {
					t.Fatalf("step %d: called %v, error %v", i, called, err)
				}
				if got := b.State(); got != s.wantState {
					t.Fatalf("step %d: state %v; want %v (counts %+v)", i, got, s.wantState, b.Counts())
				}
			}
		})
	}
}

func TestBreakerOpenMessage(t *testing.T) {
	clock := newFakeClock()
	r := mustParse(t, overviewDoc)
	r.Tenant, r.Breakers = "acme", NewBreakers(clock)
	p := r.ForApp("appB")
	p.Clock = clock
	p.Retry = nil
	for range 5 {
		p.Run(t.Context(), answer(500))
	}
	clock.Advance(10 * time.Second)
	_, err := r.ForApp("appB").Run(t.Context(), answer(200))
	if !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("error %v; want ErrCircuitOpen", err)
	}
	for _, want := range []string{"appB", "simpleCB", "20s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "acme") {
		t.Errorf("error %q names the tenant", err)
	}
}

// TestBreakerAndRetries checks the order of the policies: every attempt
// passes the breaker, and a failure that opens it ends the retries.
func TestBreakerAndRetries(t *testing.T) {
	clock := newFakeClock()
	b := NewBreaker("cb", CircuitBreaker{Trip: MustParseTrip("consecutiveFailures >= 3")}, clock)
	p := Policy{Breaker: b, Retry: constant(time.Second, 10), Clock: clock}
	s := script{outcomes: []Outcome{{Status: HTTPStatus(503), Replayable: true}}}
	o, err := p.Run(t.Context(), s.call)
	if len(s.attempts) != 3 || b.State() != Open {
		t.Errorf("%d attempts, breaker %v; want 3 attempts and an open breaker", len(s.attempts), b.State())
	}
	if err != nil || o.Status.Code != 503 {
		t.Errorf("got %v %v; want the app's 503", o.Status, err)
	}
	// While open, no attempt is made at all.
	s = script{outcomes: []Outcome{{Status: HTTPStatus(200)}}}
	if _, err := p.Run(t.Context(), s.call); !errors.Is(err, ErrCircuitOpen) || len(s.attempts) != 0 {
		t.Errorf("%d attempts, error %v", len(s.attempts), err)
	}
}

func TestBreakerIgnoresCancelledCalls(t *testing.T) {
	clock := newFakeClock()
	b := NewBreaker("cb", CircuitBreaker{Timeout: time.Second, Trip: MustParseTrip("consecutiveFailures > 0")}, clock)
	p := Policy{Breaker: b, Clock: clock}
	ctx, cancel := context.WithCancel(t.Context())
	p.Run(ctx, func(ctx context.Context) (Outcome, error) {
		cancel()
		return Outcome{}, ctx.Err()
	})
	if b.State() != Closed || b.Counts().Requests != 0 {
		t.Errorf("a cancelled call counted: %v %+v", b.State(), b.Counts())
	}
	// A cancelled probe frees its slot for the next one.
	p.Run(t.Context(), answer(500))
	clock.Advance(time.Second)
	ctx, cancel = context.WithCancel(t.Context())
	p.Run(ctx, func(ctx context.Context) (Outcome, error) {
		cancel()
		return Outcome{}, ctx.Err()
	})
	if _, err := p.Run(t.Context(), answer(200)); err != nil || b.State() != Closed {
		t.Errorf("after a cancelled probe: %v, state %v", err, b.State())
	}
}

// TestBreakerHalfOpenProbes lets many calls race for a half-open
// breaker's probe slots: exactly maxRequests get through.
func TestBreakerHalfOpenProbes(t *testing.T) {
	const maxRequests, callers = 3, 50
	clock := newFakeClock()
	b := NewBreaker("cb", CircuitBreaker{MaxRequests: maxRequests, Timeout: time.Second, Trip: MustParseTrip("consecutiveFailures > 0")}, clock)
	p := Policy{Breaker: b, Clock: clock}
	p.Run(t.Context(), answer(500))
	clock.Advance(time.Second)

	release := make(chan struct{})
	var admitted, refused atomic.Int32
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			_, err := p.Run(t.Context(), func(context.Context) (Outcome, error) {
				admitted.Add(1)
				<-release
				return Outcome{Status: HTTPStatus(200)}, nil
			})
			if errors.Is(err, ErrCircuitOpen) {
				refused.Add(1)
			} else if err != nil {
				t.Error(err)
			}
		})
	}
	// Every caller has either entered the app (and waits there) or been
	// refused.
	waitFor(t, func() bool { return admitted.Load()+refused.Load() == callers })
	close(release)
	wg.Wait()
	if admitted.Load() != maxRequests || refused.Load() != callers-maxRequests {
		t.Errorf("%d admitted, %d refused; want %d and %d", admitted.Load(), refused.Load(), maxRequests, callers-maxRequests)
	}
	if b.State() != Closed {
		t.Errorf("state %v after %d successful probes", b.State(), maxRequests)
	}
}

// TestBreakerConcurrency hammers one breaker from many goroutines while the
// clock moves; run with -race.
func TestBreakerConcurrency(t *testing.T) {
	clock := newFakeClock()
	bs := NewBreakers(clock)
	r := mustParse(t, withSpec(`  policies:
    retries: {r: {duration: 1ms, maxRetries: 2}}
    circuitBreakers: {cb: {maxRequests: 2, interval: 5s, timeout: 1s, trip: "consecutiveFailures > 3 || totalFailures > 60"}}
  targets:
    apps:
      orders: {retry: r, circuitBreaker: cb}
`))
	r.Tenant, r.Breakers = "acme", bs
	var calls, opens atomic.Int64
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := range 200 {
				p := r.ForApp("orders")
				p.Clock = clock
				_, err := p.Run(t.Context(), func(context.Context) (Outcome, error) {
					n := calls.Add(1)
					if (int(n)+g+i)%3 == 0 {
						return Outcome{Status: HTTPStatus(500), Replayable: true}, nil
					}
					return Outcome{Status: HTTPStatus(200)}, nil
				})
				switch {
				case errors.Is(err, ErrCircuitOpen):
					opens.Add(1)
				case err != nil:
					t.Error(err)
				}
				if i%10 == 0 {
					clock.Advance(300 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	b := r.ForApp("orders").Breaker
	if bs.Len() != 1 {
		t.Errorf("%d breakers; want 1", bs.Len())
	}
	st, c := b.State(), b.Counts()
	if st == HalfOpen && c.Requests > 2 {
		t.Errorf("half-open with %d requests admitted", c.Requests)
	}
	t.Logf("%d calls made, %d refused by the breaker; final state %v %+v", calls.Load(), opens.Load(), st, c)
}

func TestTrip(t *testing.T) {
	tests := []struct {
		expr string
		c    Counts
		want bool
	}{
		{"", Counts{ConsecutiveFailures: 5}, false},
		{"", Counts{ConsecutiveFailures: 6}, true},
		{"consecutiveFailures > 5", Counts{ConsecutiveFailures: 6}, true},
		{"consecutiveFailures >= 5", Counts{ConsecutiveFailures: 5}, true},
		{"consecutiveFailures == 2", Counts{ConsecutiveFailures: 3}, false},
		{"requests > 5", Counts{Requests: 6}, true},
		{"totalFailures > 3", Counts{TotalFailures: 3}, false},
		{"requests > 10 && totalFailures > 5", Counts{Requests: 11, TotalFailures: 6}, true},
		{"requests > 10 && totalFailures > 5", Counts{Requests: 11, TotalFailures: 5}, false},
		{"consecutiveFailures > 8 || totalFailures > 20", Counts{TotalFailures: 21}, true},
		{"consecutiveSuccesses < 1 && totalSuccesses == 0", Counts{}, true},
		{"consecutiveFailures > 2.5", Counts{ConsecutiveFailures: 3}, true},
		{"totalFailures / (requests - requests) > 0", Counts{Requests: 1}, false}, // division by zero never trips
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			tr, err := ParseTrip(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			if got := tr.Eval(tt.c); got != tt.want {
				t.Errorf("Eval(%+v) = %v; want %v", tt.c, got, tt.want)
			}
		})
	}
	for _, bad := range []string{"consecutiveFailures >", "x > 1", "requests", "'a' == 'a' ? 1 : 2", "consecutiveFailures > 5 &&", fmt.Sprintf("%s1 > 0", strings.Repeat("(", 200))} {
		if _, err := ParseTrip(bad); err == nil {
			t.Errorf("ParseTrip(%q) accepted it", bad)
		}
	}
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
