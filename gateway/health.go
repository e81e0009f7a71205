package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
)

// instances balances calls over an app's instances and keeps the ones that
// fail their health check out: it probes every instance of the apps that
// have a check, at each app's interval. An instance counts as healthy until
// Threshold probes in a row fail, and again after one succeeds. Every node
// probes on its own.
type instances struct {
	registry *tenantspg.Registry
	client   *http.Client
	logger   *slog.Logger

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

func newInstances(reg *tenantspg.Registry, logger *slog.Logger) *instances {
	return &instances{
		registry: reg,
		client:   &http.Client{Timeout: 2 * time.Second},
		logger:   logger.With("component", "health"),
		wake:     make(chan struct{}, 1),
		state:    map[string]*probeState{},
		cursor:   map[string]*atomic.Uint64{},
	}
}

func instanceKey(a tenants.App, endpoint string) string {
	return string(a.Tenant) + "/" + a.ID + "/" + endpoint
}

// Pick returns the endpoint the next call to a goes to: round robin over
// its healthy instances; ok is false when none is healthy.
func (in *instances) Pick(a tenants.App) (string, bool) {
	eps := a.Endpoints()
	key := string(a.Tenant) + "/" + a.ID
	in.mu.Lock()
	c, ok := in.cursor[key]
	if !ok {
		c = new(atomic.Uint64)
		in.cursor[key] = c
	}
	healthy := eps[:0:0]
	for _, ep := range eps {
		if st, ok := in.state[instanceKey(a, ep)]; !ok || st.healthy || a.Health.Path == "" {
			healthy = append(healthy, ep)
		}
	}
	in.mu.Unlock()
	if len(healthy) == 0 {
		return "", false
	}
	return healthy[int(c.Add(1)-1)%len(healthy)], true
}

// Changed asks for the list of checked apps to be read again.
func (in *instances) Changed() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// Run probes until ctx is done.
func (in *instances) Run(ctx context.Context) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var apps []tenants.App
	var loaded time.Time
	for {
		if time.Since(loaded) > 10*time.Second {
			if list, err := in.registry.AppsWithEndpoints(ctx); err == nil {
				apps, loaded = checked(list), time.Now()
			} else if ctx.Err() == nil {
				in.logger.Warn("listing apps to health-check failed; keeping the last list", "err", err)
			}
		}
		in.probeDue(ctx, apps)
		select {
		case <-ctx.Done():
			return nil
		case <-in.wake:
			loaded = time.Time{}
		case <-tick.C:
		}
	}
}

// probeDue probes, concurrently, every instance whose next probe is due.
func (in *instances) probeDue(ctx context.Context, apps []tenants.App) {
	now := time.Now()
	var wg sync.WaitGroup
	for _, a := range apps {
		for _, ep := range a.Endpoints() {
			k := instanceKey(a, ep)
			in.mu.Lock()
			st, ok := in.state[k]
			if !ok {
				st = &probeState{healthy: true}
				in.state[k] = st
			}
			due := !now.Before(st.next)
			if due {
				st.next = now.Add(a.Health.Interval)
			}
			in.mu.Unlock()
			if !due {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				in.record(a, ep, k, in.probe(ctx, ep, a.Health.Path, a.AppToken))
			}()
		}
	}
	wg.Wait()
}

func (in *instances) probe(ctx context.Context, endpoint, path, token string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(endpoint, "/")+"/"+strings.TrimLeft(path, "/"), nil)
	if err != nil {
		return false
	}
	if token != "" {
		req.Header.Set("dapr-api-token", token)
	}
	resp, err := in.client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

func (in *instances) record(a tenants.App, endpoint, k string, ok bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	st := in.state[k]
	was := st.healthy
	if ok {
		st.failures, st.healthy = 0, true
	} else if st.failures++; st.failures >= max(a.Health.Threshold, 1) {
		st.healthy = false
	}
	if st.healthy != was {
		in.logger.Info("app instance health changed", "tenant", a.Tenant, "app_id", a.ID, "endpoint", endpoint, "healthy", st.healthy)
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
