package tenantsrate

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blockgate/blockgate/tenants"
)

// fakeClock is a clock that moves only when told; safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *fakeClock) Now() time.Time          { return t0.Add(time.Duration(c.ns.Load())) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// rateTable is the registry snapshot the gateway would hand to New.
type rateTable struct {
	mu sync.Mutex
	m  map[tenants.ID]Rates
}

func (rt *rateTable) get(id tenants.ID) Rates {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.m[id]
}

func (rt *rateTable) set(id tenants.ID, r Rates) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.m[id] = r
}

func newTestLimiter(t testing.TB, cfg Config) (*Limiter, *fakeClock, *rateTable) {
	t.Helper()
	clk := &fakeClock{}
	rt := &rateTable{m: make(map[tenants.ID]Rates)}
	cfg.Now = clk.Now
	l, err := New(rt.get, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l, clk, rt
}

// step is one request in a scenario, after the changes it names.
type step struct {
	advance time.Duration
	rates   *Rates // replaces the tenant's rates first
	share   int    // SetShare first, unless 0
	app     string // default "a"
	cost    int    // default 1
	repeat  int    // the same request this many times; default 1
	ok      bool
	retry   time.Duration
}

func rates(trps float64, tb int, arps float64, ab int) *Rates {
	return &Rates{TenantRPS: trps, TenantBurst: tb, AppRPS: arps, AppBurst: ab}
}

func TestAllow(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name  string
		rates Rates
		steps []step
		want  Counts
	}{
		{
			name:  "burst then refusal",
			rates: *rates(10, 3, 0, 0),
			steps: []step{
				{repeat: 3, ok: true},
				{ok: false, retry: 100 * ms},
			},
			want: Counts{Allowed: 3, RefusedTenant: 1},
		},
		{
			name:  "refill",
			rates: *rates(10, 3, 0, 0),
			steps: []step{
				{repeat: 3, ok: true},
				{advance: 100 * ms, ok: true},
				{ok: false, retry: 100 * ms},
				{advance: 250 * ms, repeat: 2, ok: true},
				{ok: false, retry: 50 * ms},
				{advance: 10 * time.Second, repeat: 3, ok: true}, // refills to the burst, no further
				{ok: false, retry: 100 * ms},
			},
			want: Counts{Allowed: 9, RefusedTenant: 3},
		},
		{
			name:  "default burst is one second",
			rates: *rates(2.5, 0, 0, 0),
			steps: []step{
				{repeat: 3, ok: true},
				{ok: false, retry: 400 * ms},
			},
			want: Counts{Allowed: 3, RefusedTenant: 1},
		},
		{
			name:  "retryAfter exact with cost",
			rates: *rates(10, 5, 0, 0),
			steps: []step{
				{cost: 5, ok: true},
				{cost: 3, ok: false, retry: 300 * ms},
				{advance: 299 * ms, cost: 3, ok: false, retry: 1 * ms},
				{advance: 999_999, cost: 3, ok: false, retry: 1},
				{advance: 1, cost: 3, ok: true},
			},
			want: Counts{Allowed: 2, RefusedTenant: 3},
		},
		{
			name:  "cost below one counts as one", // cost 0: TestZeroCost
			rates: *rates(1, 2, 0, 0),
			steps: []step{
				{cost: -1, ok: true},
				{cost: math.MinInt, ok: true},
				{cost: -7, ok: false, retry: time.Second},
			},
			want: Counts{Allowed: 2, RefusedTenant: 1},
		},
		{
			name:  "cost above burst passes when full and leaves debt",
			rates: *rates(1, 2, 0, 0),
			steps: []step{
				{cost: 5, ok: true},
				{ok: false, retry: 4 * time.Second},
				{advance: 4 * time.Second, ok: true},
				{advance: time.Second, cost: 5, ok: false, retry: time.Second}, // one of two tokens
				{advance: time.Second, cost: 5, ok: true},
			},
			want: Counts{Allowed: 3, RefusedTenant: 2},
		},
		{
			name:  "both buckets",
			rates: *rates(100, 5, 10, 2),
			steps: []step{
				{app: "a", repeat: 2, ok: true},
				{app: "a", ok: false, retry: 100 * ms},
				{app: "b", repeat: 2, ok: true},
				{app: "c", ok: true},
				{app: "d", ok: false, retry: 10 * ms}, // the tenant's 5 are spent
				{advance: 10 * ms, app: "d", ok: true},
				{advance: 90 * ms, app: "a", ok: true},
			},
			want: Counts{Allowed: 7, RefusedTenant: 1, RefusedApp: 1},
		},
		{
			name:  "app refusal takes nothing from the tenant",
			rates: *rates(1, 3, 1, 1),
			steps: []step{
				{app: "a", ok: true},
				{app: "a", repeat: 5, ok: false, retry: time.Second},
				{app: "b", ok: true},
				{app: "c", ok: true},
				{app: "d", ok: false, retry: time.Second},
			},
			want: Counts{Allowed: 3, RefusedApp: 5, RefusedTenant: 1},
		},
		{
			name:  "tenant refusal takes nothing from the app",
			rates: *rates(1, 1, 0.001, 2),
			steps: []step{
				{ok: true},
				{repeat: 3, ok: false, retry: time.Second},
				{advance: time.Second, ok: true}, // the app's second token is still there
				{advance: time.Second, ok: false, retry: 998 * time.Second},
			},
			want: Counts{Allowed: 2, RefusedTenant: 3, RefusedApp: 1},
		},
		{
			name:  "both refuse: the longer wait",
			rates: *rates(1, 1, 0.5, 1),
			steps: []step{
				{ok: true},
				{ok: false, retry: 2 * time.Second},
			},
			want: Counts{Allowed: 1, RefusedTenant: 1},
		},
		{
			name:  "raised limit keeps the debt, no fresh burst",
			rates: *rates(10, 2, 0, 0),
			steps: []step{
				{repeat: 2, ok: true},
				{rates: rates(100, 20, 0, 0), ok: false, retry: 10 * ms},
				{advance: 10 * ms, ok: true},
				{ok: false, retry: 10 * ms},
			},
			want: Counts{Allowed: 3, RefusedTenant: 2},
		},
		{
			name:  "raised limit keeps the tokens held",
			rates: *rates(10, 2, 0, 0),
			steps: []step{
				{ok: true},
				{rates: rates(100, 20, 0, 0), ok: true},
				{ok: false, retry: 10 * ms},
				{advance: 190 * ms, repeat: 19, ok: true},
				{advance: time.Second, repeat: 20, ok: true},
				{ok: false, retry: 10 * ms},
			},
			want: Counts{Allowed: 41, RefusedTenant: 2},
		},
		{
			name:  "lowered limit cuts the tokens to the new burst",
			rates: *rates(100, 20, 0, 0),
			steps: []step{
				{ok: true},
				{rates: rates(10, 2, 0, 0), repeat: 2, ok: true},
				{ok: false, retry: 100 * ms},
			},
			want: Counts{Allowed: 3, RefusedTenant: 1},
		},
		{
			name:  "lowered limit keeps a debt at the new rate",
			rates: *rates(10, 10, 0, 0),
			steps: []step{
				{repeat: 10, ok: true},
				// 10 tokens short under burst 10; under burst 2 at 1/s,
				// 2 short: 1 s until one token.
				{rates: rates(1, 2, 0, 0), ok: false, retry: time.Second},
			},
			want: Counts{Allowed: 10, RefusedTenant: 1},
		},
		{
			name:  "app limit change rescales the app bucket",
			rates: *rates(0, 0, 10, 2),
			steps: []step{
				{repeat: 2, ok: true},
				{rates: rates(0, 0, 100, 20), ok: false, retry: 10 * ms},
			},
			want: Counts{Allowed: 2, RefusedApp: 1},
		},
		{
			name:  "share of a third",
			rates: *rates(300, 60, 0, 0),
			steps: []step{
				{share: 3, repeat: 20, ok: true},
				{ok: false, retry: 10 * ms},
				{advance: time.Second, repeat: 20, ok: true},
				{ok: false, retry: 10 * ms},
			},
			want: Counts{Allowed: 40, RefusedTenant: 2},
		},
		{
			name:  "share rounds the burst up",
			rates: *rates(10, 10, 3, 1),
			steps: []step{
				{share: 3, app: "a", ok: true}, // app: 1/s, burst 1
				{app: "a", ok: false, retry: time.Second},
				{app: "b", ok: true},
				{app: "c", ok: true},
				{app: "d", ok: true},
				{app: "e", ok: false, retry: 300 * ms}, // tenant: 10/3 s, burst 4
			},
			want: Counts{Allowed: 4, RefusedApp: 1, RefusedTenant: 1},
		},
		{
			name:  "share change rescales without a fresh burst",
			rates: *rates(300, 60, 0, 0),
			steps: []step{
				{ok: true},
				{share: 3, repeat: 20, ok: true},
				{ok: false, retry: 10 * ms},
				{share: 1, ok: false, retry: 3333333},
			},
			want: Counts{Allowed: 21, RefusedTenant: 2},
		},
		{
			name:  "no limits",
			rates: Rates{},
			steps: []step{
				{cost: math.MaxInt, repeat: 1000, ok: true},
			},
			want: Counts{Allowed: 1000},
		},
		{
			name:  "app limit only",
			rates: *rates(0, 0, 1, 1),
			steps: []step{
				{app: "a", ok: true},
				{app: "b", ok: true},
				{app: "a", ok: false, retry: time.Second},
			},
			want: Counts{Allowed: 2, RefusedApp: 1},
		},
		{
			name:  "limit removed and set again starts full",
			rates: *rates(1, 1, 0, 0),
			steps: []step{
				{ok: true},
				{rates: &Rates{}, repeat: 5, ok: true},
				{rates: rates(1, 2, 0, 0), repeat: 2, ok: true},
				{ok: false, retry: time.Second},
			},
			want: Counts{Allowed: 8, RefusedTenant: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, clk, rt := newTestLimiter(t, Config{})
			const tenant = tenants.ID("acme")
			rt.set(tenant, tt.rates)
			for i, s := range tt.steps {
				clk.Advance(s.advance)
				if s.rates != nil {
					rt.set(tenant, *s.rates)
				}
				if s.share != 0 {
					l.SetShare(s.share)
				}
				app, cost := s.app, s.cost
				if app == "" {
					app = "a"
				}
				if cost == 0 {
					cost = 1
				}
				for n := range max(s.repeat, 1) {
					ok, retry := l.Allow(tenant, app, cost)
					if ok != s.ok || retry != s.retry {
						t.Fatalf("step %d, request %d: Allow(%q, %d) = %v, %v; want %v, %v", i, n, app, cost, ok, retry, s.ok, s.retry)
					}
				}
			}
			if got := l.Stats()[tenant]; got != tt.want {
				t.Errorf("Stats = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestZeroCost(t *testing.T) {
	l, _, rt := newTestLimiter(t, Config{})
	rt.set("acme", *rates(1, 2, 1, 2))
	for i, want := range []bool{true, true, false} {
		if ok, _ := l.Allow("acme", "a", 0); ok != want {
			t.Fatalf("request %d of cost 0: ok = %v, want %v", i, ok, want)
		}
	}
}

func TestTenantsAreIndependent(t *testing.T) {
	l, _, rt := newTestLimiter(t, Config{})
	rt.set("noisy", *rates(1, 1, 0, 0))
	rt.set("quiet", *rates(1, 1, 0, 0))
	if ok, _ := l.Allow("noisy", "a", 1); !ok {
		t.Fatal("noisy refused its first request")
	}
	for range 100 {
		l.Allow("noisy", "a", 1)
	}
	if ok, _ := l.Allow("quiet", "a", 1); !ok {
		t.Fatal("quiet refused because of noisy")
	}
	st := l.Stats()
	if st["noisy"].RefusedTenant != 100 || st["quiet"].Allowed != 1 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestShare(t *testing.T) {
	l, _, _ := newTestLimiter(t, Config{})
	tests := []struct {
		name  string
		nodes int
		want  int
	}{
		{"default", 0, 1},
		{"three", 3, 3},
		{"negative means one", -2, 1},
		{"huge is capped", math.MaxInt, maxNodes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.nodes != 0 {
				l.SetShare(tt.nodes)
			}
			if got := l.Share(); got != tt.want {
				t.Errorf("Share() = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestClusterTolerance checks the numbers in the package doc: three nodes,
// each with a third of r = 300/s and B = 60, behind balancers of different
// skew, over 10 s of fake time.
func TestClusterTolerance(t *testing.T) {
	const (
		r, B, N = 300, 60, 3
		seconds = 10
	)
	tests := []struct {
		name   string
		split  [N]float64 // the balancer's fractions of the tenant's traffic
		demand float64    // requests per second the tenant sends
		want   float64    // admitted per second, from the doc
	}{
		{"balanced, sending more than the limit", [N]float64{1. / 3, 1. / 3, 1. / 3}, 600, 300},
		{"balanced, sending less", [N]float64{1. / 3, 1. / 3, 1. / 3}, 150, 150},
		{"40/30/30, sending the limit", [N]float64{0.4, 0.3, 0.3}, 300, 280},
		{"40/30/30, sending 100/0.3", [N]float64{0.4, 0.3, 0.3}, 334, 300},
		{"pinned to one node", [N]float64{1, 0, 0}, 1000, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{}
			var nodes [N]*Limiter
			for i := range nodes {
				l, err := New(func(tenants.ID) Rates { return Rates{TenantRPS: r, TenantBurst: B} }, Config{Now: clk.Now})
				if err != nil {
					t.Fatal(err)
				}
				l.SetShare(N)
				nodes[i] = l
			}
			// Smooth weighted round robin, one tick a millisecond.
			var credit [N]float64
			due, admitted := 0.0, 0
			for range seconds * 1000 {
				clk.Advance(time.Millisecond)
				for due += tt.demand / 1000; due >= 1; due-- {
					best := 0
					for i := range credit {
						credit[i] += tt.split[i]
						if credit[i] > credit[best] {
							best = i
						}
					}
					credit[best]--
					if ok, _ := nodes[best].Allow("acme", "a", 1); ok {
						admitted++
					}
				}
			}
			lo, hi := tt.want*seconds-N, tt.want*seconds+B+N-1
			if float64(admitted) < lo || float64(admitted) > hi {
				t.Errorf("admitted %d in %d s, want %.0f to %.0f", admitted, seconds, lo, hi)
			}
		})
	}
}

func TestNodeParams(t *testing.T) {
	tests := []struct {
		name  string
		rps   float64
		burst int
		nodes int64
		want  params
	}{
		{"unlimited", 0, 5, 1, params{}},
		{"negative is unlimited", -1, 5, 1, params{}},
		{"NaN is unlimited", math.NaN(), 5, 1, params{}},
		{"infinite is unlimited", math.Inf(1), 5, 1, params{}},
		{"ten", 10, 3, 1, params{interval: 1e8, burst: 3}},
		{"thirds rounded to the nanosecond", 3, 0, 1, params{interval: 333333333, burst: 3}},
		{"default burst rounds up", 0.5, 0, 1, params{interval: 2e9, burst: 1}},
		{"share", 300, 60, 3, params{interval: 1e7, burst: 20}},
		{"share rounds the burst up", 300, 61, 3, params{interval: 1e7, burst: 21}},
		{"share keeps a burst of one", 300, 2, 3, params{interval: 1e7, burst: 1}},
		{"faster than a nanosecond", 1e12, 0, 1, params{interval: 1, burst: 1e12}},
		{"huge burst is capped", 1, 1 << 62, 1, params{interval: 1e9, burst: maxBurst}},
		{"slower than maxInterval", 1e-12, 1, 1, params{interval: maxInterval, burst: 1}},
		{"negative burst is default", 4, -3, 1, params{interval: 25e7, burst: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nodeParams(tt.rps, tt.burst, tt.nodes); got != tt.want {
				t.Errorf("nodeParams(%v, %d, %d) = %+v, want %+v", tt.rps, tt.burst, tt.nodes, got, tt.want)
			}
		})
	}
}

func TestExtremeCosts(t *testing.T) {
	l, clk, rt := newTestLimiter(t, Config{})
	rt.set("acme", *rates(1e-12, 1<<62, 1e12, 0))
	if ok, _ := l.Allow("acme", "a", math.MaxInt); !ok {
		t.Fatal("huge cost refused by a full bucket")
	}
	ok, retry := l.Allow("acme", "a", math.MaxInt)
	if ok || retry <= 0 || retry > maxSpan {
		t.Fatalf("after a huge cost: Allow = %v, %v; want a refusal within maxSpan", ok, retry)
	}
	clk.Advance(retry)
	// The tenant bucket's debt was capped at maxSpan: it is paid off.
	if ok, retry := l.Allow("acme", "a", 1); !ok {
		t.Fatalf("after waiting out the debt: refused, retry %v", retry)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want int64
	}{
		{"zero", 0, 0},
		{"negative", -time.Second, 0},
		{"one nanosecond", 1, 1},
		{"just under a second", time.Second - 1, 1},
		{"a second", time.Second, 1},
		{"just over", time.Second + 1, 2},
		{"minutes", 2*time.Minute + 300*time.Millisecond, 121},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RetryAfterSeconds(tt.d); got != tt.want {
				t.Errorf("RetryAfterSeconds(%v) = %d, want %d", tt.d, got, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		err  error
		ok   bool
	}{
		{"zero rates", Rates{}.Validate(), true},
		{"rates", Rates{TenantRPS: 100, TenantBurst: 10, AppRPS: 0.5}.Validate(), true},
		{"negative rate", Rates{TenantRPS: -1}.Validate(), false},
		{"NaN rate", Rates{AppRPS: math.NaN()}.Validate(), false},
		{"infinite rate", Rates{AppRPS: math.Inf(1)}.Validate(), false},
		{"negative burst", Rates{AppBurst: -1}.Validate(), false},
		{"zero config", Config{}.Validate(), true},
		{"negative apps", Config{MaxAppsPerTenant: -1}.Validate(), false},
		{"negative idle", Config{IdleAfter: -time.Second}.Validate(), false},
		{"negative sweep", Config{SweepEvery: -time.Second}.Validate(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if (tt.err == nil) != tt.ok {
				t.Errorf("error = %v, want ok=%v", tt.err, tt.ok)
			}
		})
	}
	if _, err := New(nil, Config{}); err == nil {
		t.Error("New(nil, ...) succeeded")
	}
	if _, err := New(func(tenants.ID) Rates { return Rates{} }, Config{IdleAfter: -1}); err == nil {
		t.Error("New with a bad config succeeded")
	}
}

// entries returns how many tenant entries and app buckets l holds.
func (l *Limiter) entries() (tenantsHeld, apps int) {
	for i := range l.shards {
		for _, e := range l.shards[i].load() {
			tenantsHeld++
			e.mu.Lock()
			apps += len(e.apps)
			e.mu.Unlock()
		}
	}
	return tenantsHeld, apps
}

func TestIdleEviction(t *testing.T) {
	l, clk, rt := newTestLimiter(t, Config{IdleAfter: time.Minute})
	rt.set("idle", *rates(10, 10, 1, 1))
	rt.set("debtor", *rates(10, 10, 1, 1))
	rt.set("busy", *rates(10, 10, 1, 1))
	l.Allow("idle", "a", 1)
	l.Allow("idle", "b", 1)
	// A cost far above the bursts: the tenant's bucket is 10,000 s in
	// debt, app b's 100,000 s.
	if ok, _ := l.Allow("debtor", "b", 100_000); !ok {
		t.Fatal("debtor's first request refused")
	}

	// Each app bucket below is at most 1 s from full after a request.
	tests := []struct {
		name        string
		advance     time.Duration
		busyApp     string // "busy" makes a request from it first, unless ""
		wantDropped int
		wantTenants int
		wantApps    int
	}{
		{"nothing idle yet", 30 * time.Second, "a", 0, 3, 4},
		{"idle tenant and its full app buckets go", 31 * time.Second, "c", 3, 2, 3},
		{"busy tenant's idle app goes, not the tenant", 31 * time.Second, "", 1, 2, 2},
		{"busy tenant goes once idle", 61 * time.Second, "", 2, 1, 1},
		{"a debt is never forgiven", 2 * time.Hour, "", 0, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Advance(tt.advance)
			if tt.busyApp != "" {
				l.Allow("busy", tt.busyApp, 1)
			}
			if got := l.Sweep(); got != tt.wantDropped {
				t.Errorf("Sweep() = %d, want %d", got, tt.wantDropped)
			}
			if gotT, gotA := l.entries(); gotT != tt.wantTenants || gotA != tt.wantApps {
				t.Errorf("holding %d tenants and %d apps, want %d and %d", gotT, gotA, tt.wantTenants, tt.wantApps)
			}
		})
	}

	// The debt survived: still refused, and the wait runs to the end of it.
	ok, retry := l.Allow("debtor", "b", 1)
	if ok || retry < 9000*time.Second {
		t.Errorf("debtor after sweeps: Allow = %v, %v; want refused for hours", ok, retry)
	}
	// Counts outlive the entry and come back with the tenant.
	if got := l.Stats()["idle"]; got.Allowed != 2 {
		t.Errorf("idle tenant's counts after eviction = %+v", got)
	}
	l.Allow("idle", "a", 1)
	if got := l.Stats()["idle"]; got.Allowed != 3 {
		t.Errorf("idle tenant's counts on return = %+v", got)
	}
	l.Forget("idle")
	l.Forget("busy")
	st := l.Stats()
	if _, ok := st["idle"]; ok {
		t.Errorf("Forget kept live counts: %+v", st)
	}
	if _, ok := st["busy"]; ok {
		t.Errorf("Forget kept retired counts: %+v", st)
	}
}

func TestSweepShrinksAppMap(t *testing.T) {
	l, clk, rt := newTestLimiter(t, Config{IdleAfter: time.Second})
	rt.set("acme", *rates(0, 0, 1, 1))
	for i := range 1000 {
		l.Allow("acme", fmt.Sprintf("app-%d", i), 1)
	}
	clk.Advance(2 * time.Second)
	l.Allow("acme", "keep", 1)
	l.Sweep()
	e := l.entry("acme")
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.apps) != 1 || e.appsPeak != 1 {
		t.Errorf("after sweep: %d apps, peak %d; want 1, 1 (map rebuilt)", len(e.apps), e.appsPeak)
	}
}

func TestBoundedApps(t *testing.T) {
	const maxApps = 16
	l, clk, rt := newTestLimiter(t, Config{MaxAppsPerTenant: maxApps})
	rt.set("acme", *rates(0, 0, 1, 1))

	for i := range maxApps {
		if ok, _ := l.Allow("acme", fmt.Sprintf("app-%d", i), 1); !ok {
			t.Fatalf("app-%d refused", i)
		}
	}
	// Beyond the cap, new apps share one bucket limited like one app.
	if ok, _ := l.Allow("acme", "flood-0", 1); !ok {
		t.Fatal("first app beyond the cap refused")
	}
	for i := 1; i < 10_000; i++ {
		if ok, retry := l.Allow("acme", fmt.Sprintf("flood-%d", i), 1); ok || retry != time.Second {
			t.Fatalf("flood-%d: Allow = %v, %v; want the overflow bucket's refusal", i, ok, retry)
		}
	}
	if _, apps := l.entries(); apps != maxApps {
		t.Fatalf("holding %d app buckets, want %d", apps, maxApps)
	}
	// Known apps keep their own buckets.
	if ok, retry := l.Allow("acme", "app-0", 1); ok || retry != time.Second {
		t.Fatalf("app-0: Allow = %v, %v; want its own bucket's refusal", ok, retry)
	}
	if got := l.Stats()["acme"]; got.Overflowed != 10_000 {
		t.Errorf("Overflowed = %d, want 10000", got.Overflowed)
	}
	// Once buckets are full again they make room without a sweep.
	clk.Advance(time.Second)
	if ok, _ := l.Allow("acme", "newcomer", 1); !ok {
		t.Fatal("newcomer refused after the buckets refilled")
	}
	if ok, _ := l.Allow("acme", "newcomer", 1); ok {
		t.Fatal("newcomer is not on its own bucket")
	}
	if ok, _ := l.Allow("acme", "flood-1", 1); !ok {
		t.Fatal("flood-1 refused: there was room for its own bucket")
	}
}

func TestBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a few MB")
	}
	l, _, rt := newTestLimiter(t, Config{MaxAppsPerTenant: 1024})
	rt.set("acme", *rates(1e6, 0, 1, 1))
	ids := make([]string, 200_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("app-%059d", i) // 63 bytes, the longest app id
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	for _, id := range ids {
		l.Allow("acme", id, 1)
	}
	grown := int64(heap()) - int64(before)
	_, held := l.entries() // also keeps l alive through the measurement
	runtime.KeepAlive(ids)
	// 1024 buckets with 63-byte keys are well under 1 MiB; 200,000 would
	// be about 25 MiB.
	if grown > 1<<20 || held != 1024 {
		t.Errorf("heap grew by %d bytes for 200,000 app ids, %d app buckets held", grown, held)
	}
	t.Logf("heap grew by %d bytes for 200,000 app ids, %d app buckets held", grown, held)
}

func TestConcurrentFrozenClock(t *testing.T) {
	// With the clock standing still, exactly the bursts pass, however the
	// requests interleave: 500 for the tenant, at most 50 per app.
	l, _, rt := newTestLimiter(t, Config{})
	rt.set("acme", *rates(1000, 500, 100, 50))
	const workers, perWorker, apps = 16, 500, 16
	var perApp [apps]atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				a := (w + i) % apps
				if ok, _ := l.Allow("acme", fmt.Sprint("app-", a), 1); ok {
					perApp[a].Add(1)
				}
			}
		})
	}
	wg.Wait()
	var total int64
	for a := range perApp {
		n := perApp[a].Load()
		if n > 50 {
			t.Errorf("app-%d: %d allowed, more than its burst of 50", a, n)
		}
		total += n
	}
	if total != 500 {
		t.Errorf("%d allowed, want exactly the tenant burst of 500", total)
	}
	st := l.Stats()["acme"]
	if st.Allowed != 500 || st.Allowed+st.RefusedTenant+st.RefusedApp != workers*perWorker {
		t.Errorf("Stats = %+v", st)
	}
}

func TestConcurrentMovingClock(t *testing.T) {
	// While the clock moves and a sweeper and limit changes run alongside,
	// the tenant never gets more than its burst plus its rate times the
	// time elapsed.
	l, clk, rt := newTestLimiter(t, Config{IdleAfter: time.Millisecond})
	const rps, burst = 1000, 100
	rt.set("acme", *rates(rps, burst, 200, 20))
	var allowed atomic.Int64
	stop := make(chan struct{})
	var wg, bg sync.WaitGroup
	bg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			clk.Advance(100 * time.Microsecond)
			l.Sweep()
			rt.set("other", *rates(1, 1, 0, 0))
			l.Allow("other", "x", 1)
			runtime.Gosched()
		}
	})
	for w := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				if ok, _ := l.Allow("acme", fmt.Sprint("app-", (w+i)%8), 1); ok {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	bg.Wait()
	elapsed := time.Duration(clk.ns.Load())
	limit := int64(burst) + int64(elapsed.Seconds()*rps)
	if n := allowed.Load(); n > limit || n < burst {
		t.Errorf("%d allowed over %v, want between %d and %d", n, elapsed, burst, limit)
	}
	t.Logf("%d allowed over %v of fake time (bound %d)", allowed.Load(), elapsed, limit)
}

func TestRun(t *testing.T) {
	l, clk, rt := newTestLimiter(t, Config{IdleAfter: time.Second, SweepEvery: time.Millisecond})
	rt.set("acme", *rates(1, 1, 0, 0))
	l.Allow("acme", "a", 1)
	clk.Advance(time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	waitFor(t, func() bool { n, _ := l.entries(); return n == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func BenchmarkAllow(b *testing.B) {
	// The rates lookup is what the gateway would pass: a read of an
	// immutable snapshot map.
	snap := make(map[tenants.ID]Rates)
	ids := make([]tenants.ID, 1000)
	for i := range ids {
		ids[i] = tenants.ID(fmt.Sprintf("tenant-%d", i))
		snap[ids[i]] = Rates{TenantRPS: 1e6, TenantBurst: 1000, AppRPS: 1e5, AppBurst: 100}
	}
	lookup := func(id tenants.ID) Rates { return snap[id] }
	newLimiter := func(b *testing.B) *Limiter {
		l, err := New(lookup, Config{})
		if err != nil {
			b.Fatal(err)
		}
		for _, id := range ids {
			l.Allow(id, "app", 1)
		}
		return l
	}

	b.Run("single key", func(b *testing.B) {
		l := newLimiter(b)
		b.ReportAllocs()
		for b.Loop() {
			l.Allow(ids[0], "app", 1)
		}
	})
	b.Run("single key without time.Now", func(b *testing.B) {
		// The limiter's own cost: on some VMs time.Now is most of it.
		var tick time.Duration
		l, err := New(lookup, Config{Now: func() time.Time { tick += time.Microsecond; return t0.Add(tick) }})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			l.Allow(ids[0], "app", 1)
		}
	})
	b.Run("single key parallel", func(b *testing.B) {
		l := newLimiter(b)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Allow(ids[0], "app", 1)
			}
		})
	})
	b.Run("1000 tenants parallel", func(b *testing.B) {
		l := newLimiter(b)
		var start atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := int(start.Add(397))
			for pb.Next() {
				i++
				l.Allow(ids[i%len(ids)], "app", 1)
			}
		})
	})
}
