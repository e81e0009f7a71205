package appchannel

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blockgate/blockgate/internal/lograte"
	"github.com/blockgate/blockgate/tenants"
)

// health balances calls over an app's instances and keeps the ones that
// fail their health check out: it probes every instance of the apps that
// have a check, at each app's interval. An instance counts as healthy until
// Threshold probes in a row fail, and again after one succeeds.
type health struct {
	ch      *Channel
	apps    func(ctx context.Context) ([]tenants.App, error)
	timeout time.Duration
	logger  *slog.Logger
	warn    lograte.Limiter // used by run's goroutine only

	wake chan struct{}

	mu     sync.Mutex
	state  map[string]*probeState // by tenant/app/endpoint
	cursor map[string]*atomic.Uint64
}

type probeState struct {
	healthy  bool
	failures int
	next     time.Time
}

func newHealth(ch *Channel, apps func(context.Context) ([]tenants.App, error), timeout time.Duration, logger *slog.Logger) *health {
	return &health{
		ch:      ch,
		apps:    apps,
		timeout: timeout,
		logger:  logger,
		warn:    lograte.Limiter{Every: time.Minute},
		wake:    make(chan struct{}, 1),
		state:   map[string]*probeState{},
		cursor:  map[string]*atomic.Uint64{},
	}
}

func instanceKey(a tenants.App, endpoint string) string {
	return string(a.Tenant) + "/" + a.ID + "/" + endpoint
}

// pick returns the endpoint the next call to a goes to: round robin over
// its healthy instances; ok is false when none is healthy.
func (h *health) pick(a tenants.App) (string, bool) {
	eps := a.Endpoints()
	if len(eps) == 1 && a.Health.Path == "" {
		return eps[0], true // the common case: nothing to balance or check
	}
	key := string(a.Tenant) + "/" + a.ID
	h.mu.Lock()
	c, ok := h.cursor[key]
	if !ok {
		c = new(atomic.Uint64)
		h.cursor[key] = c
	}
	healthy := eps[:0:0]
	for _, ep := range eps {
		if st, ok := h.state[instanceKey(a, ep)]; !ok || st.healthy || a.Health.Path == "" {
			healthy = append(healthy, ep)
		}
	}
	h.mu.Unlock()
	if len(healthy) == 0 {
		return "", false
	}
	return healthy[int(c.Add(1)-1)%len(healthy)], true
}

func (h *health) changed() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// run probes until ctx is done. It re-reads the list of apps every 10
// seconds and whenever changed is called.
func (h *health) run(ctx context.Context) error {
	if h.apps == nil {
		<-ctx.Done()
		return nil
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var apps []tenants.App
	var loaded time.Time
	for {
		if time.Since(loaded) > 10*time.Second {
			if list, err := h.apps(ctx); err == nil {
				apps, loaded = checked(list), time.Now()
			} else if ctx.Err() == nil {
				if held, ok := h.warn.Allow(time.Now()); ok {
					h.logger.Warn("listing apps to health-check failed; keeping the last list", "err", err, "suppressed", held)
				}
			}
		}
		h.probeDue(ctx, apps)
		select {
		case <-ctx.Done():
			return nil
		case <-h.wake:
			loaded = time.Time{}
		case <-tick.C:
		}
	}
}

// probeDue probes, concurrently, every instance whose next probe is due.
func (h *health) probeDue(ctx context.Context, apps []tenants.App) {
	now := time.Now()
	var wg sync.WaitGroup
	for _, a := range apps {
		for _, ep := range a.Endpoints() {
			k := instanceKey(a, ep)
			h.mu.Lock()
			st, ok := h.state[k]
			if !ok {
				st = &probeState{healthy: true}
				h.state[k] = st
			}
			due := !now.Before(st.next)
			if due {
				st.next = now.Add(a.Health.Interval)
			}
			h.mu.Unlock()
			if !due {
				continue
			}
			wg.Go(func() { h.record(a, ep, k, h.probe(ctx, a, ep)) })
		}
	}
	wg.Wait()
}

// probe GETs the health path of one instance through the channel, so the
// probe carries the app's token and headers like every other call.
func (h *health) probe(ctx context.Context, a tenants.App, endpoint string) bool {
	if isGRPC(endpoint) {
		return true // gRPC apps are checked by their calls, not probed
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	if err != nil {
		return false
	}
	req.URL.Path = a.Health.Path
	resp, err := h.ch.DoAt(req, a, endpoint)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

func (h *health) record(a tenants.App, endpoint, k string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.state[k]
	was := st.healthy
	if ok {
		st.failures, st.healthy = 0, true
	} else if st.failures++; st.failures >= max(a.Health.Threshold, 1) {
		st.healthy = false
	}
	if st.healthy != was {
		h.logger.Info("app instance health changed", "tenant", a.Tenant, "app_id", a.ID, "endpoint", endpoint, "healthy", st.healthy)
	}
}

// checked keeps the apps that have a health check.
func checked(apps []tenants.App) []tenants.App {
	out := apps[:0]
	for _, a := range apps {
		if a.Health.Path != "" {
			out = append(out, a)
		}
	}
	return out
}
