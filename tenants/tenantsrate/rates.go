package tenantsrate

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Rates are one tenant's request limits for the whole cluster, in cost units
// per second (a plain request costs 1). A zero rate means no limit. Each node
// enforces its share of them; see [Limiter.SetShare].
type Rates struct {
	// TenantRPS is the sustained rate of the tenant's apps together; zero,
	// no tenant limit.
	TenantRPS float64 `json:"tenantRps,omitempty"`
	// TenantBurst is how many units the tenant may spend at once after
	// being idle; zero means one second's worth, ceil(TenantRPS).
	TenantBurst int `json:"tenantBurst,omitempty"`
	// AppRPS is the sustained rate of each app of the tenant; zero, no
	// per-app limit.
	AppRPS float64 `json:"appRps,omitempty"`
	// AppBurst is the per-app burst; zero means ceil(AppRPS).
	AppBurst int `json:"appBurst,omitempty"`
}

// Validate reports rates that cannot be meant: negative, NaN or infinite
// values. The limiter itself treats such a rate as no limit and such a burst
// as the default, so that a bad row cannot take a tenant down; the admin API
// rejects them with Validate before they are stored.
func (r Rates) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    float64
	}{{"tenantRps", r.TenantRPS}, {"appRps", r.AppRPS}} {
		if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			errs = append(errs, fmt.Errorf("%s %v: must be a finite number, zero for no limit", f.name, f.v))
		}
	}
	if r.TenantBurst < 0 {
		errs = append(errs, fmt.Errorf("tenantBurst %d: must not be negative", r.TenantBurst))
	}
	if r.AppBurst < 0 {
		errs = append(errs, fmt.Errorf("appBurst %d: must not be negative", r.AppBurst))
	}
	return errors.Join(errs...)
}

// RetryAfterSeconds turns a wait returned by [Limiter.Allow] into the value
// of an HTTP Retry-After header: whole seconds, rounded up so that a client
// that honours it does not come back too early. It is 0 only for d <= 0.
func RetryAfterSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}

// params are a bucket's limits on one node: one token every interval
// nanoseconds, at most burst tokens. interval 0 means no limit.
type params struct {
	interval int64
	burst    int64
}

func (p params) unlimited() bool { return p.interval == 0 }

const (
	// maxInterval bounds the time per token (about 11.6 days), so that the
	// float conversion below stays in range; slower rates are this rate.
	maxInterval = 1e15
	// maxBurst bounds a burst so that burst*interval is computed exactly
	// for ordinary rates; spans are saturated beyond it anyway.
	maxBurst = 1 << 40
)

// nodeParams derives one node's bucket from a cluster-wide rate and burst
// when the node enforces 1/nodes of them. The node's burst is rounded up, so
// the nodes together allow at most nodes-1 units more than burst.
func nodeParams(rps float64, burst int, nodes int64) params {
	if !(rps > 0) || math.IsInf(rps, 0) {
		return params{}
	}
	iv := math.Round(1e9 * float64(nodes) / rps)
	iv = max(1, min(iv, maxInterval))
	b := int64(burst)
	if b <= 0 {
		b = int64(min(math.Ceil(rps), maxBurst))
	}
	b = min(b, maxBurst)
	b = max(1, (b+nodes-1)/nodes)
	return params{interval: int64(iv), burst: b}
}
