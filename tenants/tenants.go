// Package tenants defines the tenancy model every other package speaks:
// tenants, the apps inside them, their components in Dapr's Component shape,
// and the Principal a request acts for.
//
// This package is plain data and validation; it imports no driver, so block
// packages can depend on it. The Postgres-backed registry lives in
// tenants/tenantspg.
package tenants

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
)

// ID names a tenant. It is a DNS label (lowercase letters, digits and '-',
// at most 63 characters) because it appears in SPIFFE IDs, NATS subjects and
// hostnames.
type ID string

var labelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ParseID validates s as a tenant name.
func ParseID(s string) (ID, error) {
	if !labelRE.MatchString(s) {
		return "", fmt.Errorf("invalid tenant name %q: use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit", s)
	}
	return ID(s), nil
}

// ValidateAppID reports whether s is a usable app id.
func ValidateAppID(s string) error {
	if !validAppID(s) {
		return fmt.Errorf("invalid app id %q: use 1-63 letters, digits, '.', '_' and '-', starting with a letter or digit", s)
	}
	return nil
}

// validAppID follows Dapr's app id rules: letters, digits, '-', '_' and
// '.', starting with a letter or digit, at most 63 characters. It runs on
// every invocation, so it is a loop rather than a regular expression.
func validAppID(s string) bool {
	if len(s) == 0 || len(s) > 63 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if b := s[i]; !isAlnum(b) && b != '.' && b != '_' && b != '-' {
			return false
		}
	}
	return true
}

func isAlnum(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
}

// Tenant is one customer of the gateway.
type Tenant struct {
	ID        ID        `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
	Limits    Limits    `json:"limits"`
}

// Limits are a tenant's quotas; a zero field means the gateway's default
// (its flags), and a negative one (PubsubMaxBytes aside) no limit for this
// tenant.
type Limits struct {
	// PubsubMaxBytes bounds the tenant's stored pub/sub messages.
	PubsubMaxBytes int64 `json:"pubsubMaxBytes,omitempty"`
	// RequestsPerSecond and RequestBurst are the tenant's token bucket of
	// API requests, shared by all its apps and all gateway nodes.
	RequestsPerSecond float64 `json:"requestsPerSecond,omitempty"`
	RequestBurst      int     `json:"requestBurst,omitempty"`
	// AppRequestsPerSecond and AppRequestBurst bound each app of the
	// tenant within the tenant's bucket.
	AppRequestsPerSecond float64 `json:"appRequestsPerSecond,omitempty"`
	AppRequestBurst      int     `json:"appRequestBurst,omitempty"`
	// MaxRequestBytes bounds one request body (HTTP) or message (gRPC).
	MaxRequestBytes int64 `json:"maxRequestBytes,omitempty"`
	// StateMaxBytes bounds the tenant's stored state (keys and values).
	StateMaxBytes int64 `json:"stateMaxBytes,omitempty"`
	// MaxSubscriptions bounds declarative plus streaming subscriptions.
	MaxSubscriptions int `json:"maxSubscriptions,omitempty"`
	// MaxApps bounds the apps of the tenant.
	MaxApps int `json:"maxApps,omitempty"`
	// MaxConnections bounds the tenant's concurrent requests and streams
	// on one gateway node.
	MaxConnections int `json:"maxConnections,omitempty"`
}

// Or returns l with every zero field taken from defaults.
func (l Limits) Or(defaults Limits) Limits {
	pick := func(v, d int64) int64 {
		if v == 0 {
			return d
		}
		return v
	}
	pickF := func(v, d float64) float64 {
		if v == 0 {
			return d
		}
		return v
	}
	return Limits{
		PubsubMaxBytes:       pick(l.PubsubMaxBytes, defaults.PubsubMaxBytes),
		RequestsPerSecond:    pickF(l.RequestsPerSecond, defaults.RequestsPerSecond),
		RequestBurst:         int(pick(int64(l.RequestBurst), int64(defaults.RequestBurst))),
		AppRequestsPerSecond: pickF(l.AppRequestsPerSecond, defaults.AppRequestsPerSecond),
		AppRequestBurst:      int(pick(int64(l.AppRequestBurst), int64(defaults.AppRequestBurst))),
		MaxRequestBytes:      pick(l.MaxRequestBytes, defaults.MaxRequestBytes),
		StateMaxBytes:        pick(l.StateMaxBytes, defaults.StateMaxBytes),
		MaxSubscriptions:     int(pick(int64(l.MaxSubscriptions), int64(defaults.MaxSubscriptions))),
		MaxApps:              int(pick(int64(l.MaxApps), int64(defaults.MaxApps))),
		MaxConnections:       int(pick(int64(l.MaxConnections), int64(defaults.MaxConnections))),
	}
}

// Validate rejects limits that cannot be meant: NaN or infinite rates.
func (l Limits) Validate() error {
	for name, v := range map[string]float64{"requestsPerSecond": l.RequestsPerSecond, "appRequestsPerSecond": l.AppRequestsPerSecond} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%s must be a finite number", name)
		}
	}
	return nil
}

// App is an application inside a tenant, known by its Dapr app id.
type App struct {
	Tenant ID     `json:"tenant"`
	ID     string `json:"appId"`
	// Endpoint is the app's own base URL the gateway may call (service
	// invocation, push delivery); empty when the app only calls out.
	Endpoint string `json:"endpoint,omitempty"`
	// AppToken is sent to the endpoint as dapr-api-token with every call
	// the gateway makes to the app (daprd's APP_API_TOKEN); empty for none.
	// It is never shown by the admin API.
	AppToken string `json:"-"`
	// Instances are the app's further instances, beside Endpoint.
	Instances []Instance `json:"instances,omitempty"`
	// Headers are sent to every instance with every call the gateway makes
	// (a Dapr HTTPEndpoint's spec.headers), replacing the caller's headers
	// of the same name. Values may be credentials: the admin API never shows
	// them.
	Headers map[string]string `json:"-"`
	// Health is how the gateway checks the instances; no Path, no checks.
	Health    HealthCheck `json:"health"`
	CreatedAt time.Time   `json:"createdAt"`
}

// SpeaksGRPC reports whether the app's endpoints are gRPC ones (grpc://
// or grpcs://): the app then speaks Dapr's gRPC app protocol. All instances
// of an app speak the protocol of its first.
func (a App) SpeaksGRPC() bool {
	eps := a.Endpoints()
	return len(eps) > 0 && (strings.HasPrefix(eps[0], "grpc://") || strings.HasPrefix(eps[0], "grpcs://"))
}

// Instance is one running copy of an app, reachable at Endpoint.
type Instance struct {
	ID       string `json:"id"`
	Endpoint string `json:"endpoint"`
}

// HealthCheck says how to probe an app's instances: GET Path on each
// every Interval; Threshold failures in a row make an instance unhealthy,
// one success healthy again.
type HealthCheck struct {
	Path      string        `json:"path,omitempty"`
	Interval  time.Duration `json:"interval,omitempty"`
	Threshold int           `json:"threshold,omitempty"`
}

// Endpoints lists every instance endpoint of the app: Endpoint first.
func (a App) Endpoints() []string {
	var out []string
	if a.Endpoint != "" {
		out = append(out, a.Endpoint)
	}
	for _, in := range a.Instances {
		out = append(out, in.Endpoint)
	}
	return out
}

// Principal is who a request acts for, as established by authentication.
type Principal struct {
	Tenant ID
	AppID  string
	// TokenID is the id of the app token used, empty for other credentials.
	TokenID string
}

// Token describes an issued app token (never the token text itself).
type Token struct {
	ID        string     `json:"id"`
	Tenant    ID         `json:"tenant"`
	AppID     string     `json:"appId"`
	IssuedAt  time.Time  `json:"issuedAt"`
	ExpiresAt time.Time  `json:"expiresAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

// Errors of the registry, matched with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrNoInstance is returned when an app has no instance that may take
	// a call: none registered, or none healthy.
	ErrNoInstance = errors.New("no healthy instance of the app")
)
