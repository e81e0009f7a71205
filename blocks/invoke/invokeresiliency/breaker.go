package invokeresiliency

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/blockgate/blockgate/tenants"
)

// ErrCircuitOpen is returned, wrapped with the breaker and the time left,
// when a circuit breaker refuses a call: it is open, or half-open with all
// its probes already in flight. Match it with errors.Is.
var ErrCircuitOpen = errors.New("circuit breaker open")

// CircuitBreaker is a circuit breaker policy
// (spec.policies.circuitBreakers): a template from which a Breaker is made
// per (tenant, app, policy name).
type CircuitBreaker struct {
	// MaxRequests is the number of probes a half-open breaker admits, and
	// of successes that close it; 0 means 1.
	MaxRequests uint32
	// Interval is the period after which a closed breaker clears its
	// counts; 0 never clears them.
	Interval time.Duration
	// Timeout is how long an open breaker fails calls fast before it
	// half-opens; 0 means 60s.
	Timeout time.Duration
	// Trip decides, after each failure of a closed breaker, whether it
	// opens; the zero Trip is DefaultTrip.
	Trip Trip
}

func (cb CircuitBreaker) validate(field string) error {
	if cb.Interval < 0 {
		return fmt.Errorf("%s.interval is negative", field)
	}
	if cb.Timeout < 0 {
		return fmt.Errorf("%s.timeout is negative", field)
	}
	return nil
}

func (cb CircuitBreaker) maxRequests() uint32 { return max(cb.MaxRequests, 1) }

func (cb CircuitBreaker) timeout() time.Duration {
	if cb.Timeout == 0 {
		return 60 * time.Second
	}
	return cb.Timeout
}

// same reports whether two templates behave alike.
func (cb CircuitBreaker) same(o CircuitBreaker) bool {
	return cb.maxRequests() == o.maxRequests() && cb.Interval == o.Interval &&
		cb.timeout() == o.timeout() && cb.Trip.String() == o.Trip.String()
}

// State is a breaker's state.
type State uint8

const (
	Closed State = iota
	Open
	HalfOpen
)

func (s State) String() string {
	switch s {
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "closed"
}

// Counts are what a breaker has seen since it last changed state (or, when
// closed, since the start of its current interval). Trip expressions read
// them.
type Counts struct {
	Requests             uint32
	TotalSuccesses       uint32
	TotalFailures        uint32
	ConsecutiveSuccesses uint32
	ConsecutiveFailures  uint32
}

// Breaker is the state of one circuit breaker, with the semantics daprd
// gets from sony/gobreaker:
//
//   - Closed: every call passes. After each failure Trip is evaluated on
//     the counts; true opens the breaker. With an Interval, the counts are
//     cleared at the end of each interval.
//   - Open: every call fails fast with ErrCircuitOpen until Timeout has
//     passed; then the breaker is half-open.
//   - Half-open: MaxRequests calls pass as probes, the others fail fast.
//     MaxRequests consecutive successes close the breaker; any failure
//     opens it again for another Timeout.
//
// A result that belongs to an earlier state (a call admitted before the
// breaker changed state) is ignored. A Breaker is safe for concurrent use.
type Breaker struct {
	name  string // for messages: "simpleCB for app appB"
	cfg   CircuitBreaker
	clock Clock

	mu         sync.Mutex
	state      State
	generation uint64
	counts     Counts
	// expiry ends the current interval (closed, zero when none) or the
	// open period (open); zero when half-open.
	expiry time.Time
}

// NewBreaker returns a closed breaker. name appears in its errors; clock
// nil means real time. Breakers.Get is the usual way to get one.
func NewBreaker(name string, cfg CircuitBreaker, clock Clock) *Breaker {
	if clock == nil {
		clock = RealClock{}
	}
	b := &Breaker{name: name, cfg: cfg, clock: clock}
	b.newGeneration(clock.Now())
	return b
}

// State returns the breaker's state now.
func (b *Breaker) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, _ := b.current(b.clock.Now())
	return s
}

// Counts returns the breaker's counts now.
func (b *Breaker) Counts() Counts {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.current(b.clock.Now())
	return b.counts
}

// ticket is one admitted call; done reports its result.
type ticket struct {
	b          *Breaker
	generation uint64
}

// result is what a call means to a breaker.
type result uint8

const (
	success result = iota
	failure
	// ignored: the caller gave up (its context was cancelled); the call
	// says nothing about the app and frees its probe slot.
	ignored
)

// allow admits a call or refuses it with ErrCircuitOpen.
func (b *Breaker) allow() (ticket, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	state, gen := b.current(now)
	switch {
	case state == Open:
		return ticket{}, fmt.Errorf("%w: breaker %s tripped; calls fail fast for another %s",
			ErrCircuitOpen, b.name, b.expiry.Sub(now).Round(time.Millisecond))
	case state == HalfOpen && b.counts.Requests >= b.cfg.maxRequests():
		return ticket{}, fmt.Errorf("%w: breaker %s is half-open and already probing the app with %d request(s)",
			ErrCircuitOpen, b.name, b.counts.Requests)
	}
	if b.counts.Requests < math.MaxUint32 {
		b.counts.Requests++
	}
	return ticket{b: b, generation: gen}, nil
}

// done records the result of an admitted call.
func (t ticket) done(r result) {
	b := t.b
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	state, gen := b.current(now)
	if gen != t.generation {
		return
	}
	c := &b.counts
	switch r {
	case ignored:
		if c.Requests > 0 {
			c.Requests--
		}
	case success:
		c.TotalSuccesses = inc(c.TotalSuccesses)
		c.ConsecutiveSuccesses = inc(c.ConsecutiveSuccesses)
		c.ConsecutiveFailures = 0
		if state == HalfOpen && c.ConsecutiveSuccesses >= b.cfg.maxRequests() {
			b.setState(Closed, now)
		}
	case failure:
		c.TotalFailures = inc(c.TotalFailures)
		c.ConsecutiveFailures = inc(c.ConsecutiveFailures)
		c.ConsecutiveSuccesses = 0
		switch state {
		case Closed:
			if b.cfg.Trip.Eval(*c) {
				b.setState(Open, now)
			}
		case HalfOpen:
			b.setState(Open, now)
		}
	}
}

func inc(n uint32) uint32 {
	if n == math.MaxUint32 {
		return n
	}
	return n + 1
}

// current moves the breaker along the clock (interval ends, open period
// over) and returns its state and generation. b.mu is held.
func (b *Breaker) current(now time.Time) (State, uint64) {
	switch b.state {
	case Closed:
		if !b.expiry.IsZero() && !now.Before(b.expiry) {
			b.newGeneration(now)
		}
	case Open:
		if !now.Before(b.expiry) {
			b.setState(HalfOpen, now)
		}
	}
	return b.state, b.generation
}

func (b *Breaker) setState(s State, now time.Time) {
	if b.state == s {
		return
	}
	b.state = s
	b.newGeneration(now)
}

func (b *Breaker) newGeneration(now time.Time) {
	b.generation++
	b.counts = Counts{}
	switch b.state {
	case Closed:
		b.expiry = time.Time{}
		if b.cfg.Interval > 0 {
			b.expiry = now.Add(b.cfg.Interval)
		}
	case Open:
		b.expiry = now.Add(b.cfg.timeout())
	default:
		b.expiry = time.Time{}
	}
}

// Breakers is a gateway node's circuit breaker state: one Breaker per
// (tenant, app, circuit breaker policy name), kept across calls for the life
// of the registry, as daprd keeps its breakers for the life of the sidecar.
// Entries are dropped only by Forget, so the registry is bounded by the
// tenants' apps and policies: resolve policies (Resiliency.ForApp) only for
// apps that exist. It is safe for concurrent use.
type Breakers struct {
	clock Clock

	mu sync.RWMutex
	m  map[breakerKey]*Breaker
}

type breakerKey struct {
	tenant tenants.ID
	app    string
	policy string
}

// NewBreakers returns an empty registry whose breakers read clock; nil
// means real time.
func NewBreakers(clock Clock) *Breakers {
	if clock == nil {
		clock = RealClock{}
	}
	return &Breakers{clock: clock, m: map[breakerKey]*Breaker{}}
}

// Get returns the breaker of (tenant, app, policy), creating it closed on
// first use. When the tenant has changed the policy since the breaker was
// made, the breaker is replaced by a new, closed one that follows cfg.
func (bs *Breakers) Get(tenant tenants.ID, app, policy string, cfg CircuitBreaker) *Breaker {
	k := breakerKey{tenant, app, policy}
	bs.mu.RLock()
	b, ok := bs.m[k]
	bs.mu.RUnlock()
	if ok && b.cfg.same(cfg) {
		return b
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if b, ok := bs.m[k]; ok && b.cfg.same(cfg) {
		return b
	}
	b = NewBreaker(breakerName(policy, app), cfg, bs.clock)
	bs.m[k] = b
	return b
}

// Forget drops the breakers of a tenant, e.g. when it is deleted.
func (bs *Breakers) Forget(tenant tenants.ID) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for k := range bs.m {
		if k.tenant == tenant {
			delete(bs.m, k)
		}
	}
}

// Len returns the number of breakers held.
func (bs *Breakers) Len() int {
	bs.mu.RLock()
	defer bs.mu.RUnlock()
	return len(bs.m)
}

func breakerName(policy, app string) string {
	return fmt.Sprintf("%q for app %s", policy, app)
}
