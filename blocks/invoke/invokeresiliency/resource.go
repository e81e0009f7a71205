package invokeresiliency

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/blockgate/blockgate/internal/yamldoc"
	"github.com/blockgate/blockgate/tenants"
)

// Resiliency is a tenant's Dapr Resiliency resource (apiVersion
// dapr.io/v1alpha1, kind Resiliency), parsed and validated: named policies
// and the targets they apply to.
//
// A Resiliency is plain data. Its maps are shared by copies of the value and
// must not be changed once the value is in use; ForApp and Run only read
// them, so one Resiliency may serve any number of goroutines.
type Resiliency struct {
	// Name is metadata.name.
	Name string
	// Scopes lists the app ids the resource applies to, as callers: daprd
	// loads a Resiliency only into the sidecars of the apps it names. Empty
	// means every app of the tenant. See InScope and Merge.
	Scopes []string

	// Timeouts are spec.policies.timeouts: name → timeout of one attempt.
	// Zero means no timeout.
	Timeouts map[string]time.Duration
	// Retries are spec.policies.retries by name.
	Retries map[string]Retry
	// CircuitBreakers are spec.policies.circuitBreakers by name. Each is a
	// template: the state lives in a Breaker per (tenant, app, name).
	CircuitBreakers map[string]CircuitBreaker

	// Apps are spec.targets.apps: target app id → policy names.
	Apps map[string]AppTarget
	// Actors and Components are spec.targets.actors and
	// spec.targets.components. They are parsed and validated so that a
	// resource written for daprd is accepted whole; the blocks that call
	// actors and components will read them.
	Actors     map[string]ActorTarget
	Components map[string]ComponentTarget

	// Tenant owns the resource and keys its circuit breakers. Parse leaves
	// it empty; the caller sets it, as for tenants.Component.
	Tenant tenants.ID
	// Breakers keeps circuit breaker state across calls: set it to the
	// gateway's one registry. When nil, every Policy that ForApp returns
	// gets a breaker of its own, which lives as long as that Policy value.
	Breakers *Breakers
}

// PolicyNames names the policies applied to a target; an empty name means
// none of that kind.
type PolicyNames struct {
	Timeout        string `json:"timeout,omitempty"`
	Retry          string `json:"retry,omitempty"`
	CircuitBreaker string `json:"circuitBreaker,omitempty"`
}

// AppTarget is one entry of spec.targets.apps.
type AppTarget struct {
	PolicyNames
	// CircuitBreakerCacheSize is accepted for compatibility: daprd keeps a
	// breaker per instance of the target app in a cache of this size; the
	// gateway reaches an app through one registered endpoint and keeps one
	// breaker per app.
	CircuitBreakerCacheSize int
}

// ActorTarget is one entry of spec.targets.actors.
type ActorTarget struct {
	PolicyNames
	// CircuitBreakerScope is "type", "id" or "both"; required with a
	// circuit breaker, as in daprd.
	CircuitBreakerScope     string
	CircuitBreakerCacheSize int
}

// ComponentTarget is one entry of spec.targets.components.
type ComponentTarget struct {
	Inbound  PolicyNames
	Outbound PolicyNames
}

// InScope reports whether the resource governs the calls made by the app
// callerAppID.
func (r Resiliency) InScope(callerAppID string) bool {
	return len(r.Scopes) == 0 || slices.Contains(r.Scopes, callerAppID)
}

// Merge combines the resources of one tenant that govern the calls made by
// callerAppID (those whose scopes include it), as daprd loads every
// Resiliency in scope into one set of policies: a policy or target of a
// later resource replaces the one of the same name from an earlier one. The
// result has no Name or Scopes; its Tenant and Breakers are the first ones
// set among rs. Merge does not modify rs.
func Merge(callerAppID string, rs ...Resiliency) Resiliency {
	var out Resiliency
	for _, r := range rs {
		if !r.InScope(callerAppID) {
			continue
		}
		if out.Tenant == "" {
			out.Tenant = r.Tenant
		}
		if out.Breakers == nil {
			out.Breakers = r.Breakers
		}
		out.Timeouts = mergeMap(out.Timeouts, r.Timeouts)
		out.Retries = mergeMap(out.Retries, r.Retries)
		out.CircuitBreakers = mergeMap(out.CircuitBreakers, r.CircuitBreakers)
		out.Apps = mergeMap(out.Apps, r.Apps)
		out.Actors = mergeMap(out.Actors, r.Actors)
		out.Components = mergeMap(out.Components, r.Components)
	}
	return out
}

func mergeMap[V any](dst, src map[string]V) map[string]V {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = make(map[string]V, len(src))
	}
	maps.Copy(dst, src)
	return dst
}

// Names of daprd's default policies: a policy defined under one of these
// names applies to every app that no target names, the App-specific name
// first. See ForApp.
const (
	DefaultRetryPolicy             = "DefaultRetryPolicy"
	DefaultTimeoutPolicy           = "DefaultTimeoutPolicy"
	DefaultCircuitBreakerPolicy    = "DefaultCircuitBreakerPolicy"
	DefaultAppRetryPolicy          = "DefaultAppRetryPolicy"
	DefaultAppTimeoutPolicy        = "DefaultAppTimeoutPolicy"
	DefaultAppCircuitBreakerPolicy = "DefaultAppCircuitBreakerPolicy"
)

// Names of daprd's built-in retry policies. They exist without being
// defined and may be referenced by a target; a resource may redefine them,
// but not with fewer than 3 retries (daprd does not let a resource weaken
// them), and may not redefine BuiltInActorNotFoundRetries at all.
const (
	BuiltInServiceRetries        = "DaprBuiltInServiceRetries"
	BuiltInActorRetries          = "DaprBuiltInActorRetries"
	BuiltInActorReminderRetries  = "DaprBuiltInActorReminderRetries"
	BuiltInInitializationRetries = "DaprBuiltInInitializationRetries"
	BuiltInActorNotFoundRetries  = "DaprBuiltInActorNotFoundRetries"
)

// minBuiltInRetries is the fewest retries a redefined built-in policy may
// make, as daprd enforces.
const minBuiltInRetries = 3

// builtInRetries are daprd's built-in retry policies, with daprd's values.
var builtInRetries = map[string]Retry{
	BuiltInServiceRetries: {Policy: Constant, Duration: time.Second, MaxRetries: 3},
	BuiltInActorRetries:   {Policy: Constant, Duration: time.Second, MaxRetries: 3},
	BuiltInActorReminderRetries: {Policy: Exponential, MaxInterval: 60 * time.Second, MaxRetries: -1,
		initialInterval: 500 * time.Millisecond, maxElapsed: 15 * time.Minute},
	BuiltInInitializationRetries: {Policy: Exponential, Duration: 2 * time.Second, MaxInterval: time.Second, MaxRetries: 3,
		initialInterval: 500 * time.Millisecond, maxElapsed: 10 * time.Second},
	BuiltInActorNotFoundRetries: {Policy: Constant, Duration: time.Second, MaxRetries: 5},
}

// retry returns the retry policy called name: the resource's own, else a
// built-in one.
func (r Resiliency) retry(name string) (Retry, bool) {
	if rt, ok := r.Retries[name]; ok {
		return rt, true
	}
	rt, ok := builtInRetries[name]
	return rt, ok
}

// document is the wire form of a Dapr Resiliency resource, field for field
// as Dapr's pkg/apis/resiliency/v1alpha1 types.
type document struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Version appears in Dapr's Resiliency spec reference, though daprd's
	// types do not have it; accepted so that the documented form parses.
	Version  string `json:"version,omitempty"`
	Metadata struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace,omitempty"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Spec struct {
		Policies struct {
			Timeouts        map[string]string     `json:"timeouts,omitempty"`
			Retries         map[string]retryDoc   `json:"retries,omitempty"`
			CircuitBreakers map[string]breakerDoc `json:"circuitBreakers,omitempty"`
		} `json:"policies"`
		Targets struct {
			Apps       map[string]appTargetDoc       `json:"apps,omitempty"`
			Actors     map[string]actorTargetDoc     `json:"actors,omitempty"`
			Components map[string]componentTargetDoc `json:"components,omitempty"`
		} `json:"targets"`
	} `json:"spec"`
	Scopes []string `json:"scopes,omitempty"`
}

type retryDoc struct {
	Policy      string       `json:"policy,omitempty"`
	Duration    string       `json:"duration,omitempty"`
	MaxInterval string       `json:"maxInterval,omitempty"`
	MaxRetries  *int         `json:"maxRetries,omitempty"`
	Matching    *matchingDoc `json:"matching,omitempty"`
}

type matchingDoc struct {
	HTTPStatusCodes string `json:"httpStatusCodes,omitempty"`
	GRPCStatusCodes string `json:"gRPCStatusCodes,omitempty"`
}

type breakerDoc struct {
	MaxRequests int    `json:"maxRequests,omitempty"`
	Interval    string `json:"interval,omitempty"`
	Timeout     string `json:"timeout,omitempty"`
	Trip        string `json:"trip,omitempty"`
}

type appTargetDoc struct {
	PolicyNames
	CircuitBreakerCacheSize int `json:"circuitBreakerCacheSize,omitempty"`
}

type actorTargetDoc struct {
	PolicyNames
	CircuitBreakerScope     string `json:"circuitBreakerScope,omitempty"`
	CircuitBreakerCacheSize int    `json:"circuitBreakerCacheSize,omitempty"`
}

type componentTargetDoc struct {
	Inbound  PolicyNames `json:"inbound,omitempty"`
	Outbound PolicyNames `json:"outbound,omitempty"`
}

// Parse reads a Dapr Resiliency resource in YAML or JSON. It is stricter
// than daprd, which logs a bad resource and carries on without it: unknown
// fields, bad durations, bad status code lists, trip expressions that do
// not compile to a boolean over the breaker's counts, and targets that name
// an undefined policy are refused with an error naming the field.
func Parse(doc []byte) (Resiliency, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return Resiliency{}, fmt.Errorf("resiliency is neither YAML nor JSON (or repeats a key): %w", err)
	}
	if err := yamldoc.One(doc); err != nil {
		return Resiliency{}, fmt.Errorf("reading resiliency: %w", err)
	}
	var d document
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return Resiliency{}, fmt.Errorf("reading resiliency: %w", err)
	}
	if d.APIVersion != "dapr.io/v1alpha1" {
		return Resiliency{}, fmt.Errorf("resiliency apiVersion is %q; want dapr.io/v1alpha1", d.APIVersion)
	}
	if d.Kind != "Resiliency" {
		return Resiliency{}, fmt.Errorf("kind is %q; want Resiliency", d.Kind)
	}
	if d.Version != "" && d.Version != "v1alpha1" {
		return Resiliency{}, fmt.Errorf("resiliency version is %q; want v1alpha1", d.Version)
	}
	r := Resiliency{Name: d.Metadata.Name, Scopes: d.Scopes}
	if err := tenants.ValidateComponentName(r.Name); err != nil {
		return Resiliency{}, fmt.Errorf("resiliency metadata.name %q is invalid: use 1-63 lowercase letters, digits and '-'", r.Name)
	}
	if err := d.policies(&r); err != nil {
		return Resiliency{}, fmt.Errorf("resiliency %s: %w", r.Name, err)
	}
	tg := d.Spec.Targets
	if len(tg.Apps) > 0 {
		r.Apps = make(map[string]AppTarget, len(tg.Apps))
	}
	for id, t := range tg.Apps {
		r.Apps[id] = AppTarget(t)
	}
	if len(tg.Actors) > 0 {
		r.Actors = make(map[string]ActorTarget, len(tg.Actors))
	}
	for typ, t := range tg.Actors {
		r.Actors[typ] = ActorTarget(t)
	}
	if len(tg.Components) > 0 {
		r.Components = make(map[string]ComponentTarget, len(tg.Components))
	}
	for name, t := range tg.Components {
		r.Components[name] = ComponentTarget(t)
	}
	if err := r.Validate(); err != nil {
		return Resiliency{}, err
	}
	return r, nil
}

// policies converts spec.policies into r, in name order so that the first
// error is the same every time.
func (d *document) policies(r *Resiliency) error {
	pol := d.Spec.Policies
	if len(pol.Timeouts) > 0 {
		r.Timeouts = make(map[string]time.Duration, len(pol.Timeouts))
	}
	for _, name := range slices.Sorted(maps.Keys(pol.Timeouts)) {
		t, err := parseDuration("spec.policies.timeouts."+name, pol.Timeouts[name])
		if err != nil {
			return err
		}
		r.Timeouts[name] = t
	}
	if len(pol.Retries) > 0 {
		r.Retries = make(map[string]Retry, len(pol.Retries))
	}
	for _, name := range slices.Sorted(maps.Keys(pol.Retries)) {
		rt, err := pol.Retries[name].retry("spec.policies.retries." + name)
		if err != nil {
			return err
		}
		r.Retries[name] = rt
	}
	if len(pol.CircuitBreakers) > 0 {
		r.CircuitBreakers = make(map[string]CircuitBreaker, len(pol.CircuitBreakers))
	}
	for _, name := range slices.Sorted(maps.Keys(pol.CircuitBreakers)) {
		cb, err := pol.CircuitBreakers[name].breaker("spec.policies.circuitBreakers." + name)
		if err != nil {
			return err
		}
		r.CircuitBreakers[name] = cb
	}
	return nil
}

// retry converts a retry policy; field names it in errors.
func (d retryDoc) retry(field string) (Retry, error) {
	// daprd's defaults (dapr/kit retry.DefaultConfig).
	rt := Retry{Policy: Constant, Duration: 5 * time.Second, MaxInterval: 60 * time.Second, MaxRetries: -1}
	switch strings.ToLower(d.Policy) {
	case "", "constant":
	case "exponential":
		rt.Policy = Exponential
	default:
		return Retry{}, fmt.Errorf("%s.policy: %q is not a retry policy; use constant or exponential", field, d.Policy)
	}
	var err error
	if d.Duration != "" {
		if rt.Duration, err = parseDuration(field+".duration", d.Duration); err != nil {
			return Retry{}, err
		}
	}
	if d.MaxInterval != "" {
		if rt.MaxInterval, err = parseDuration(field+".maxInterval", d.MaxInterval); err != nil {
			return Retry{}, err
		}
	}
	if d.MaxRetries != nil {
		rt.MaxRetries = *d.MaxRetries
	}
	if d.Matching != nil {
		if rt.Matching.HTTP, err = parseCodes(field+".matching.httpStatusCodes", d.Matching.HTTPStatusCodes, httpCodes); err != nil {
			return Retry{}, err
		}
		if rt.Matching.GRPC, err = parseCodes(field+".matching.gRPCStatusCodes", d.Matching.GRPCStatusCodes, grpcCodes); err != nil {
			return Retry{}, err
		}
	}
	return rt, nil
}

// breaker converts a circuit breaker policy; field names it in errors.
func (d breakerDoc) breaker(field string) (CircuitBreaker, error) {
	if d.MaxRequests < 0 || d.MaxRequests > math.MaxUint32 {
		return CircuitBreaker{}, fmt.Errorf("%s.maxRequests: %d is out of range; want 0 (meaning 1) or more", field, d.MaxRequests)
	}
	cb := CircuitBreaker{MaxRequests: uint32(d.MaxRequests)}
	var err error
	if d.Interval != "" {
		if cb.Interval, err = parseDuration(field+".interval", d.Interval); err != nil {
			return CircuitBreaker{}, err
		}
	}
	if d.Timeout != "" {
		if cb.Timeout, err = parseDuration(field+".timeout", d.Timeout); err != nil {
			return CircuitBreaker{}, err
		}
	}
	if cb.Trip, err = ParseTrip(d.Trip); err != nil {
		return CircuitBreaker{}, fmt.Errorf("%s.trip: %w", field, err)
	}
	return cb, nil
}

// parseDuration reads a duration as daprd does: a plain integer is a number
// of milliseconds, anything else Go's time.ParseDuration form. Negative
// durations are refused.
func parseDuration(field, s string) (time.Duration, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms < 0 || ms > math.MaxInt64/int64(time.Millisecond) {
			return 0, fmt.Errorf("%s: %q milliseconds is out of range", field, s)
		}
		return time.Duration(ms) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a duration; use a number of milliseconds or a Go duration such as 200ms, 5s, 1m30s", field, s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%s: %q is negative", field, s)
	}
	return d, nil
}

// Validate checks what Parse guarantees: known policy kinds and sane
// numbers, targets that name defined (or built-in) policies, and valid app
// ids. It lets a Resiliency built in code be checked the same way.
func (r Resiliency) Validate() error {
	if err := tenants.ValidateComponentName(r.Name); err != nil {
		return fmt.Errorf("resiliency metadata.name %q is invalid: use 1-63 lowercase letters, digits and '-'", r.Name)
	}
	if err := r.validate(); err != nil {
		return fmt.Errorf("resiliency %s: %w", r.Name, err)
	}
	return nil
}

func (r Resiliency) validate() error {
	for _, s := range r.Scopes {
		if err := tenants.ValidateAppID(s); err != nil {
			return fmt.Errorf("scopes: %w", err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.Timeouts)) {
		if err := checkPolicyName("spec.policies.timeouts", name); err != nil {
			return err
		}
		if r.Timeouts[name] < 0 {
			return fmt.Errorf("spec.policies.timeouts.%s is negative", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.Retries)) {
		if err := checkPolicyName("spec.policies.retries", name); err != nil {
			return err
		}
		if err := r.Retries[name].validate("spec.policies.retries." + name); err != nil {
			return err
		}
		if _, ok := builtInRetries[name]; ok {
			// daprd ignores a redefinition of the protected policy and
			// raises maxRetries below 3 to 3, with a warning; a refusal says
			// it where the tenant will see it.
			switch n := r.Retries[name].MaxRetries; {
			case name == BuiltInActorNotFoundRetries:
				return fmt.Errorf("spec.policies.retries.%s: the built-in policy %s cannot be redefined", name, name)
			case n >= 0 && n < minBuiltInRetries:
				return fmt.Errorf("spec.policies.retries.%s.maxRetries: %d would weaken the built-in policy %s; use at least %d, or -1",
					name, n, name, minBuiltInRetries)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.CircuitBreakers)) {
		if err := checkPolicyName("spec.policies.circuitBreakers", name); err != nil {
			return err
		}
		if err := r.CircuitBreakers[name].validate("spec.policies.circuitBreakers." + name); err != nil {
			return err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(r.Apps)) {
		if err := tenants.ValidateAppID(id); err != nil {
			return fmt.Errorf("spec.targets.apps: %w", err)
		}
		t := r.Apps[id]
		if t.CircuitBreakerCacheSize < 0 {
			return fmt.Errorf("spec.targets.apps.%s.circuitBreakerCacheSize is negative", id)
		}
		if err := r.checkNames("spec.targets.apps."+id, t.PolicyNames); err != nil {
			return err
		}
	}
	for _, typ := range slices.Sorted(maps.Keys(r.Actors)) {
		field := "spec.targets.actors." + typ
		if typ == "" {
			return errors.New("spec.targets.actors has an empty actor type")
		}
		t := r.Actors[typ]
		switch t.CircuitBreakerScope {
		case "type", "id", "both":
		case "":
			if t.CircuitBreaker != "" {
				return fmt.Errorf("%s.circuitBreakerScope is required with a circuit breaker: use type, id or both", field)
			}
		default:
			return fmt.Errorf("%s.circuitBreakerScope: %q is not type, id or both", field, t.CircuitBreakerScope)
		}
		if t.CircuitBreakerCacheSize < 0 {
			return fmt.Errorf("%s.circuitBreakerCacheSize is negative", field)
		}
		if err := r.checkNames(field, t.PolicyNames); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.Components)) {
		field := "spec.targets.components." + name
		if name == "" {
			return errors.New("spec.targets.components has an empty component name")
		}
		t := r.Components[name]
		if err := r.checkNames(field+".inbound", t.Inbound); err != nil {
			return err
		}
		if err := r.checkNames(field+".outbound", t.Outbound); err != nil {
			return err
		}
	}
	return nil
}

// checkPolicyName refuses names a target could not refer to.
func checkPolicyName(field, name string) error {
	if name == "" {
		return fmt.Errorf("%s has a policy with an empty name", field)
	}
	return nil
}

// checkNames reports a reference to an undefined policy.
func (r Resiliency) checkNames(field string, n PolicyNames) error {
	if n.Timeout != "" {
		if _, ok := r.Timeouts[n.Timeout]; !ok {
			return fmt.Errorf("%s.timeout names %q, which spec.policies.timeouts does not define", field, n.Timeout)
		}
	}
	if n.Retry != "" {
		if _, ok := r.retry(n.Retry); !ok {
			return fmt.Errorf("%s.retry names %q, which spec.policies.retries does not define", field, n.Retry)
		}
	}
	if n.CircuitBreaker != "" {
		if _, ok := r.CircuitBreakers[n.CircuitBreaker]; !ok {
			return fmt.Errorf("%s.circuitBreaker names %q, which spec.policies.circuitBreakers does not define", field, n.CircuitBreaker)
		}
	}
	return nil
}
