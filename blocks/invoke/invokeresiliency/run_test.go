package invokeresiliency

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// script is a call function that answers from a list, one entry per
// attempt, and records what it saw.
type script struct {
	outcomes []Outcome
	errs     []error
	attempts []int // Attempt(ctx) of each call
	released int   // Releases of dropped or returned outcomes
}

func (s *script) call(ctx context.Context) (Outcome, error) {
	i := len(s.attempts)
	s.attempts = append(s.attempts, Attempt(ctx))
	var o Outcome
	var err error
	if i < len(s.outcomes) {
		o = s.outcomes[i]
	} else if len(s.outcomes) > 0 {
		o = s.outcomes[len(s.outcomes)-1]
	}
	if i < len(s.errs) {
		err = s.errs[i]
	} else if len(s.errs) > 0 {
		err = s.errs[len(s.errs)-1]
	}
	o.Release = func() { s.released++ }
	return o, err
}

func repeat(o Outcome, n int) []Outcome { return slices.Repeat([]Outcome{o}, n) }

var (
	errRefused = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	errReset   = errors.New("read: connection reset by peer")
)

func constant(d time.Duration, maxRetries int) *Retry {
	return &Retry{Policy: Constant, Duration: d, MaxRetries: maxRetries}
}

func TestRunRetries(t *testing.T) {
	http500 := Outcome{Status: HTTPStatus(500), Replayable: true}
	ok := Outcome{Status: HTTPStatus(200), Replayable: true}
	tests := []struct {
		name         string
		retry        *Retry
		script       script
		wantAttempts int
		wantSleeps   []time.Duration
		wantStatus   Status
		wantErr      error
	}{
		{"no retry policy", nil, script{outcomes: []Outcome{http500}}, 1, nil, HTTPStatus(500), nil},
		{"success at once", constant(time.Second, 3), script{outcomes: []Outcome{ok}}, 1, nil, HTTPStatus(200), nil},
		{"constant until success", constant(2*time.Second, 5), script{outcomes: []Outcome{http500, http500, ok}}, 3,
			[]time.Duration{2 * time.Second, 2 * time.Second}, HTTPStatus(200), nil},
		{"constant until exhausted", constant(time.Second, 3), script{outcomes: []Outcome{http500}}, 4,
			[]time.Duration{time.Second, time.Second, time.Second}, HTTPStatus(500), nil},
		{"maxRetries 0", constant(time.Second, 0), script{outcomes: []Outcome{http500}}, 1, nil, HTTPStatus(500), nil},
		{"maxRetries -1 until success", constant(10*time.Millisecond, -1), script{outcomes: append(repeat(http500, 20), ok)}, 21,
			slices.Repeat([]time.Duration{10 * time.Millisecond}, 20), HTTPStatus(200), nil},
		{"zero duration", constant(0, 2), script{outcomes: []Outcome{http500}}, 3, []time.Duration{0, 0}, HTTPStatus(500), nil},
		{"transport error, replayable", constant(time.Second, 2), script{outcomes: []Outcome{{Replayable: true}, ok}, errs: []error{errReset, nil}}, 2,
			[]time.Duration{time.Second}, HTTPStatus(200), nil},
		{"transport error after retries", constant(time.Second, 1), script{outcomes: []Outcome{{Replayable: true}}, errs: []error{errReset}}, 2,
			[]time.Duration{time.Second}, Status{}, errReset},
		{"gRPC unavailable", constant(time.Second, 1), script{outcomes: []Outcome{{Status: GRPCStatus(uint32(14)), Replayable: true}, {Status: GRPCStatus(uint32(0))}}}, 2,
			[]time.Duration{time.Second}, GRPCStatus(uint32(0)), nil},
		{"redirect is a success", constant(time.Second, 3), script{outcomes: []Outcome{{Status: HTTPStatus(302)}}}, 1, nil, HTTPStatus(302), nil},
		{"success status with an error is not repeated", constant(time.Second, 3), script{outcomes: []Outcome{{Status: HTTPStatus(200), Replayable: true}}, errs: []error{errReset}}, 1,
			nil, HTTPStatus(200), errReset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			p := Policy{App: "orders", Retry: tt.retry, RetryName: "r", Clock: clock}
			o, err := p.Run(t.Context(), tt.script.call)
			if len(tt.script.attempts) != tt.wantAttempts {
				t.Errorf("%d attempts; want %d", len(tt.script.attempts), tt.wantAttempts)
			}
			for i, n := range tt.script.attempts {
				if n != i+1 {
					t.Errorf("attempt %d saw Attempt(ctx) = %d", i+1, n)
				}
			}
			if got := clock.Sleeps(); !slices.Equal(got, tt.wantSleeps) {
				t.Errorf("waits %v; want %v", got, tt.wantSleeps)
			}
			if o.Status != tt.wantStatus {
				t.Errorf("status %v; want %v", o.Status, tt.wantStatus)
			}
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("error %v; want %v", err, tt.wantErr)
			}
			if got := tt.script.released; got != tt.wantAttempts-1 {
				t.Errorf("%d outcomes released by Run; want the %d dropped ones", got, tt.wantAttempts-1)
			}
			o.Release()
			o.Release() // idempotent
			if got := tt.script.released; got != tt.wantAttempts {
				t.Errorf("after Release, %d outcomes released; want %d", got, tt.wantAttempts)
			}
		})
	}
}

func TestRunExponential(t *testing.T) {
	t.Run("schedule without jitter", func(t *testing.T) {
		clock := newFakeClock()
		p := Policy{Retry: &Retry{Policy: Exponential, MaxInterval: 3 * time.Second, MaxRetries: 7}, Clock: clock,
			rand: func() float64 { return 0.5 }} // the middle of the jitter window: no jitter
		s := script{outcomes: []Outcome{{Status: HTTPStatus(503), Replayable: true}}}
		if _, err := p.Run(t.Context(), s.call); err != nil {
			t.Fatal(err)
		}
		ms := time.Millisecond
		want := []time.Duration{500 * ms, 750 * ms, 1125 * ms, 1687500 * time.Microsecond, 2531250 * time.Microsecond, 3 * time.Second, 3 * time.Second}
		if got := clock.Sleeps(); !slices.Equal(got, want) {
			t.Errorf("waits %v; want %v", got, want)
		}
		if len(s.attempts) != 8 {
			t.Errorf("%d attempts; want 8", len(s.attempts))
		}
	})
	t.Run("jitter stays within ±50% and under maxInterval", func(t *testing.T) {
		for _, r := range []float64{0, 0.999999} {
			clock := newFakeClock()
			maxInterval := 4 * time.Second
			p := Policy{Retry: &Retry{Policy: Exponential, MaxInterval: maxInterval, MaxRetries: 12}, Clock: clock,
				rand: func() float64 { return r }}
			s := script{outcomes: []Outcome{{Status: HTTPStatus(503), Replayable: true}}}
			p.Run(t.Context(), s.call)
			interval := 500.0 * float64(time.Millisecond)
			for i, d := range clock.Sleeps() {
				lo, hi := time.Duration(interval*0.5), min(time.Duration(interval*1.5), maxInterval)
				if d < lo || d > hi {
					t.Errorf("rand %v: wait %d is %v; want within [%v, %v]", r, i, d, lo, hi)
				}
				interval = min(interval*1.5, float64(maxInterval))
			}
		}
	})
	t.Run("real jitter", func(t *testing.T) {
		clock := newFakeClock()
		p := Policy{Retry: &Retry{Policy: Exponential, MaxInterval: time.Minute, MaxRetries: 5}, Clock: clock}
		s := script{outcomes: []Outcome{{Status: HTTPStatus(503), Replayable: true}}}
		p.Run(t.Context(), s.call)
		if got := clock.Sleeps(); len(got) != 5 || got[0] < 250*time.Millisecond || got[0] > 750*time.Millisecond {
			t.Errorf("waits %v", got)
		}
	})
	t.Run("unlimited retries stop after 15 minutes", func(t *testing.T) {
		clock := newFakeClock()
		start := clock.Now()
		p := Policy{Retry: &Retry{Policy: Exponential, MaxInterval: 15 * time.Second, MaxRetries: -1}, Clock: clock}
		s := script{outcomes: []Outcome{{Status: HTTPStatus(503), Replayable: true}}}
		o, err := p.Run(t.Context(), s.call)
		if err != nil || o.Status.Code != 503 {
			t.Fatalf("Run: %v %v", o.Status, err)
		}
		elapsed := clock.Now().Sub(start)
		if elapsed > 15*time.Minute || elapsed < 15*time.Minute-15*time.Second {
			t.Errorf("gave up after %v; want just under 15m", elapsed)
		}
	})
}

func TestRunMatchingAndReplay(t *testing.T) {
	grpc := func(c uint32) Status { return GRPCStatus(c) }
	retry5xx := Matching{HTTP: []CodeRange{{429, 429}, {500, 599}}, GRPC: []CodeRange{{1, 4}, {8, 11}, {13, 14}}}
	tests := []struct {
		name     string
		matching Matching
		outcome  Outcome
		err      error
		connect  bool // the built-in connect-only policy
		retried  bool
	}{
		{"no matching retries any HTTP failure", Matching{}, Outcome{Status: HTTPStatus(404), Replayable: true}, nil, false, true},
		{"no matching retries any gRPC failure", Matching{}, Outcome{Status: grpc(5), Replayable: true}, nil, false, true},
		{"matched HTTP 503", retry5xx, Outcome{Status: HTTPStatus(503), Replayable: true}, nil, false, true},
		{"matched HTTP 429", retry5xx, Outcome{Status: HTTPStatus(429), Replayable: true}, nil, false, true},
		{"unmatched HTTP 404", retry5xx, Outcome{Status: HTTPStatus(404), Replayable: true}, nil, false, false},
		{"unmatched HTTP 400", retry5xx, Outcome{Status: HTTPStatus(400), Replayable: true}, nil, false, false},
		{"matched gRPC 14", retry5xx, Outcome{Status: grpc(14), Replayable: true}, nil, false, true},
		{"unmatched gRPC 5", retry5xx, Outcome{Status: grpc(5), Replayable: true}, nil, false, false},
		{"HTTP list does not apply to gRPC", Matching{HTTP: []CodeRange{{500, 599}}}, Outcome{Status: grpc(13), Replayable: true}, nil, false, true},
		{"gRPC list does not apply to HTTP", Matching{GRPC: []CodeRange{{14, 14}}}, Outcome{Status: HTTPStatus(500), Replayable: true}, nil, false, true},
		{"no answer always matches", retry5xx, Outcome{Replayable: true}, errReset, false, true},
		{"consumed stream is not replayed", Matching{}, Outcome{Status: HTTPStatus(503)}, nil, false, false},
		{"non-idempotent request that reached the app", Matching{}, Outcome{}, errReset, false, false},
		{"non-idempotent request that never left", Matching{}, Outcome{Unsent: true}, errRefused, false, true},
		{"unsent ignores matching", Matching{HTTP: []CodeRange{{503, 503}}}, Outcome{Unsent: true}, errRefused, false, true},
		{"built-in: unsent", Matching{}, Outcome{Unsent: true}, errRefused, true, true},
		{"built-in: not on a status", Matching{}, Outcome{Status: HTTPStatus(503), Replayable: true}, nil, true, false},
		{"built-in: not on a broken connection", Matching{}, Outcome{Replayable: true}, errReset, true, false},
		{"a status means it was sent", Matching{}, Outcome{Status: HTTPStatus(503), Unsent: true}, nil, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := constant(time.Second, 1)
			rt.Matching, rt.connectOnly = tt.matching, tt.connect
			p := Policy{Retry: rt, Clock: newFakeClock()}
			s := script{outcomes: []Outcome{tt.outcome}, errs: []error{tt.err}}
			p.Run(t.Context(), s.call)
			if retried := len(s.attempts) > 1; retried != tt.retried {
				t.Errorf("retried: %v; want %v", retried, tt.retried)
			}
		})
	}
}

func TestRunContextEnds(t *testing.T) {
	t.Run("cancelled while waiting to retry", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		clock := newFakeClock()
		clock.onSleep = func(time.Duration) { cancel() }
		p := Policy{App: "orders", Retry: constant(time.Second, 5), Clock: clock}
		s := script{outcomes: []Outcome{{Status: HTTPStatus(503), Replayable: true}}}
		o, err := p.Run(ctx, s.call)
		if len(s.attempts) != 1 {
			t.Errorf("%d attempts; want 1", len(s.attempts))
		}
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "waiting 1s to retry") {
			t.Errorf("error %v", err)
		}
		if o.Status.Answered() || o.Release == nil {
			t.Errorf("outcome %+v", o)
		}
		if s.released != 1 {
			t.Errorf("the dropped outcome was released %d times", s.released)
		}
	})
	t.Run("cancelled during an attempt", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		p := Policy{Retry: constant(time.Second, 5), Clock: newFakeClock()}
		attempts := 0
		_, err := p.Run(ctx, func(ctx context.Context) (Outcome, error) {
			attempts++
			cancel()
			return Outcome{Replayable: true}, ctx.Err()
		})
		if attempts != 1 || !errors.Is(err, context.Canceled) {
			t.Errorf("%d attempts, error %v", attempts, err)
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		p := Policy{Retry: constant(time.Second, 5), Clock: newFakeClock()}
		s := script{outcomes: []Outcome{{Unsent: true}}, errs: []error{errRefused}}
		p.Run(ctx, s.call)
		if len(s.attempts) != 1 {
			t.Errorf("%d attempts; want 1", len(s.attempts))
		}
	})
}

func TestRunTimeout(t *testing.T) {
	// Timeouts run on real time so that the deadline reaches the app; the
	// calls here block until their context ends, so nothing sleeps.
	const timeout = 20 * time.Millisecond

	t.Run("per attempt", func(t *testing.T) {
		p := Policy{App: "orders", Timeout: timeout, TimeoutName: "general", Retry: constant(0, 2), Clock: newFakeClock()}
		var deadlines []time.Time
		o, err := p.Run(t.Context(), func(ctx context.Context) (Outcome, error) {
			d, ok := ctx.Deadline()
			if !ok {
				t.Error("the attempt has no deadline")
			}
			deadlines = append(deadlines, d)
			<-ctx.Done()
			return Outcome{Replayable: true}, fmt.Errorf("reading: %w", ctx.Err())
		})
		if len(deadlines) != 3 {
			t.Fatalf("%d attempts; want 3", len(deadlines))
		}
		for i := 1; i < len(deadlines); i++ {
			if !deadlines[i].After(deadlines[i-1]) {
				t.Errorf("attempt %d has deadline %v, not after the previous %v: the timeout is not per attempt", i+1, deadlines[i], deadlines[i-1])
			}
		}
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v; want ErrTimeout and DeadlineExceeded", err)
		}
		for _, want := range []string{"orders", "general", "after 3 attempts"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		if o.Release == nil {
			t.Error("nil Release")
		}
	})
	t.Run("a later attempt may succeed after the total passed the timeout", func(t *testing.T) {
		p := Policy{Timeout: timeout, Retry: constant(0, 3), Clock: newFakeClock()}
		attempts := 0
		o, err := p.Run(t.Context(), func(ctx context.Context) (Outcome, error) {
			attempts++
			if attempts < 3 {
				<-ctx.Done()
				return Outcome{Replayable: true}, ctx.Err()
			}
			return Outcome{Status: HTTPStatus(200)}, nil
		})
		if err != nil || o.Status.Code != 200 || attempts != 3 {
			t.Errorf("%d attempts: %v %v", attempts, o.Status, err)
		}
	})
	t.Run("the returned attempt's context lives until Release", func(t *testing.T) {
		p := Policy{Timeout: time.Hour, Clock: newFakeClock()}
		var attemptCtx context.Context
		o, err := p.Run(t.Context(), func(ctx context.Context) (Outcome, error) {
			attemptCtx = ctx
			return Outcome{Status: HTTPStatus(200)}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if attemptCtx.Err() != nil {
			t.Fatal("the attempt's context ended before Release: a streamed response body would break")
		}
		o.Release()
		if attemptCtx.Err() == nil {
			t.Error("Release did not end the attempt's context")
		}
	})
	t.Run("the caller's deadline is not the policy's timeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		p := Policy{Timeout: time.Hour, Retry: constant(0, 3), Clock: newFakeClock()}
		attempts := 0
		_, err := p.Run(ctx, func(ctx context.Context) (Outcome, error) {
			attempts++
			<-ctx.Done()
			return Outcome{Replayable: true}, ctx.Err()
		})
		if attempts != 1 || errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%d attempts, error %v", attempts, err)
		}
	})
}

// TestInvokeShape runs a policy the way the invocation block uses it: a
// real HTTP app, a response body read after Run returns.
func TestInvokeShape(t *testing.T) {
	var calls atomic.Int32
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "done")
	})
	ts := httptest.NewServer(app)
	t.Cleanup(ts.Close)
	srv := ts.URL
	r := mustParse(t, matchingExample)
	p := r.ForApp("orders")
	p.Clock = newFakeClock()
	p.Timeout = time.Minute

	var resp *http.Response
	o, err := p.Run(t.Context(), func(ctx context.Context) (Outcome, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv, nil)
		replay := IdempotentMethod(req.Method)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return Outcome{Unsent: DialFailed(err), Replayable: replay}, err
		}
		resp = res
		return Outcome{Status: HTTPStatus(res.StatusCode), Replayable: replay, Release: func() { res.Body.Close() }}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Release()
	body := make([]byte, 16)
	n, _ := resp.Body.Read(body)
	if o.Status.Code != 200 || string(body[:n]) != "done" || calls.Load() != 3 {
		t.Errorf("status %v body %q after %d calls", o.Status, body[:n], calls.Load())
	}

	// An app that cannot be reached: the dial fails, and the built-in
	// retries try again, even for a POST.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	p = Resiliency{}.ForApp("gone")
	p.Clock = newFakeClock()
	attempts := 0
	_, err = p.Run(t.Context(), func(ctx context.Context) (Outcome, error) {
		attempts++
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/", strings.NewReader("x"))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return Outcome{Unsent: DialFailed(err)}, err
		}
		res.Body.Close()
		return Outcome{Status: HTTPStatus(res.StatusCode)}, nil
	})
	if !DialFailed(err) || attempts != 4 {
		t.Errorf("%d attempts, error %v; want 4 attempts and a dial error", attempts, err)
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		s         Status
		succeeded bool
		text      string
	}{
		{Status{}, false, "no answer"},
		{HTTPStatus(199), false, "HTTP 199"},
		{HTTPStatus(200), true, "HTTP 200"},
		{HTTPStatus(399), true, "HTTP 399"},
		{HTTPStatus(400), false, "HTTP 400"},
		{GRPCStatus(uint32(0)), true, "gRPC code 0"},
		{GRPCStatus(uint32(14)), false, "gRPC code 14"},
	}
	for _, tt := range tests {
		if tt.s.Succeeded() != tt.succeeded || tt.s.String() != tt.text {
			t.Errorf("%+v: succeeded %v %q; want %v %q", tt.s, tt.s.Succeeded(), tt.s, tt.succeeded, tt.text)
		}
	}
	for _, m := range []string{"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"} {
		if !IdempotentMethod(m) {
			t.Errorf("%s is idempotent", m)
		}
	}
	for _, m := range []string{"POST", "PATCH", "CONNECT", "get"} {
		if IdempotentMethod(m) {
			t.Errorf("%s is not idempotent", m)
		}
	}
	if !DialFailed(fmt.Errorf("wrapped: %w", errRefused)) || !DialFailed(&net.DNSError{Err: "no such host", Name: "x"}) || DialFailed(errReset) {
		t.Error("DialFailed")
	}
}
