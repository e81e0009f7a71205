package authpolicy

import (
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/tenants"
)

// Record is a tenant's stored access control configuration: a Dapr
// Configuration document and the callee apps it applies to.
type Record struct {
	Tenant tenants.ID
	// Name keys the record within the tenant; it is the document's
	// metadata.name when that is given.
	Name string
	// Apps are the callee app ids the configuration applies to; empty
	// makes it the tenant's default, for every app without one of its own.
	// An app has at most one configuration and a tenant at most one
	// default.
	Apps []string
	// Document is the Configuration as applied, in JSON once stored.
	Document []byte
	// Revision increases on every change.
	Revision int64
}

// Default reports whether the record is the tenant's default.
func (r Record) Default() bool { return len(r.Apps) == 0 }

// Validate checks a record before it is stored and returns its document
// parsed. A YAML document is accepted; store the JSON that ToJSON makes.
func (r Record) Validate() (*Configuration, error) {
	if err := tenants.ValidateComponentName(r.Name); err != nil {
		return nil, invalid("configuration name %q is invalid: use 1-63 lowercase letters, digits and '-'", r.Name)
	}
	for i, a := range r.Apps {
		if err := tenants.ValidateAppID(a); err != nil {
			return nil, invalid("configuration %s: apps: %v", r.Name, err)
		}
		if slices.Contains(r.Apps[:i], a) {
			return nil, invalid("configuration %s: app %s is listed twice", r.Name, a)
		}
	}
	c, err := Parse(r.Document)
	if err != nil {
		return nil, fmt.Errorf("configuration %s: %w", r.Name, err)
	}
	if c.Name != "" && c.Name != r.Name {
		return nil, invalid("configuration %s: the document's metadata.name is %q", r.Name, c.Name)
	}
	return c, nil
}

// ToJSON returns the document as JSON (it may have been applied as YAML).
func (r Record) ToJSON() ([]byte, error) {
	js, err := yaml.YAMLToJSONStrict(r.Document)
	if err != nil {
		return nil, invalid("configuration %s is neither YAML nor JSON: %v", r.Name, err)
	}
	return js, nil
}

// Decision is the answer to one access question.
type Decision struct {
	Allowed bool
	// Reason says why, in words safe to show the caller: it names only the
	// apps, the method and the component or topic of the request.
	Reason string
	// Rule names what decided, for logs and the admin console: the
	// configuration and the field within it, or the tenant's switch.
	Rule string
}

// Set is an immutable snapshot of one tenant's access policy: its
// configurations by callee app and its deny-by-default switch. Its methods
// are safe for concurrent use.
type Set struct {
	tenant        tenants.ID
	trustDomain   string
	denyByDefault bool
	byApp         map[string]*Configuration
	fallback      *Configuration
}

// NewSet builds the snapshot of tenant's records on a gateway whose trust
// domain is trustDomain. It fails if a record does not parse or if two
// records claim one app or both are the default; the registry's keys rule
// both out, so an error means the snapshot must not be used.
func NewSet(tenant tenants.ID, trustDomain string, denyByDefault bool, records []Record) (*Set, error) {
	s := &Set{tenant: tenant, trustDomain: trustDomain, denyByDefault: denyByDefault, byApp: map[string]*Configuration{}}
	owner := map[string]string{}
	for _, r := range records {
		c, err := Parse(r.Document)
		if err != nil {
			return nil, fmt.Errorf("configuration %s of tenant %s: %w", r.Name, tenant, err)
		}
		c.compiled.config = r.Name
		if r.Default() {
			if s.fallback != nil {
				return nil, fmt.Errorf("tenant %s has two default access control configurations, %s and %s", tenant, s.fallback.compiled.config, r.Name)
			}
			s.fallback = c
			continue
		}
		for _, a := range r.Apps {
			if prev, dup := owner[a]; dup {
				return nil, fmt.Errorf("app %s of tenant %s has two access control configurations, %s and %s", a, tenant, prev, r.Name)
			}
			owner[a] = r.Name
			s.byApp[a] = c
		}
	}
	return s, nil
}

// DenyByDefault reports the tenant's switch.
func (s *Set) DenyByDefault() bool { return s.denyByDefault }

// For returns the configuration that applies to the callee app: its own,
// else the tenant's default; nil if there is none.
func (s *Set) For(app string) *Configuration {
	if c, ok := s.byApp[app]; ok {
		return c
	}
	return s.fallback
}

// Invoke decides whether the app caller may invoke operation on the app
// target, by the Configuration that applies to target (access control is
// the callee's, as in Dapr) and the tenant's switch. operation is the
// method as the call carries it (escaped for HTTP; the full method name,
// "/pkg.Service/Method", for gRPC proxying). verb is the HTTP verb ("" is
// POST, the verb the gateway then sends); with grpc it is ignored, and the
// operation matches case-sensitively, as daprd does for gRPC apps.
//
// The order of precedence is daprd's: the action of the most specific
// matching operation, else the caller's policy defaultAction, else the
// configuration's defaultAction.
func (s *Set) Invoke(caller, target, operation, verb string, grpc bool) Decision {
	op, err := NormalizeOperation(operation, grpc)
	if err != nil {
		return Decision{Reason: "invalid method: " + err.Error(), Rule: "method normalization"}
	}
	verb = strings.ToUpper(verb)
	if verb == "" {
		verb = "POST"
	}
	what := op
	if !grpc {
		what = verb + " " + op
	}
	c := s.For(target)
	if c == nil {
		if s.denyByDefault {
			return Decision{
				Reason: fmt.Sprintf("app %s accepts no invocations: it has no access control configuration and the tenant denies by default", target),
				Rule:   "the tenant's deny-by-default (no configuration applies to app " + target + ")",
			}
		}
		// The common case, on every call: no formatting.
		return Decision{Allowed: true, Reason: "app " + target + " has no access control configuration"}
	}
	a := c.compiled
	act, where := a.globalDefault(s.denyByDefault)
	if p := a.policy(caller, string(s.tenant), s.trustDomain); p != nil {
		if p.defaultAction != "" {
			act, where = p.defaultAction, fmt.Sprintf("spec.accessControl.policies[%d].defaultAction", p.index)
		}
		match := op
		if !grpc {
			match = strings.ToLower(op)
		}
		if r := p.match(splitPath(match), verb, grpc); r != nil {
			act, where = r.action, r.where(p)
		}
	}
	d := Decision{Allowed: act == Allow, Rule: a.config + ": " + where}
	verdict := "denies"
	if d.Allowed {
		verdict = "allows"
	}
	by := caller
	if by == "" {
		by = "an unidentified caller"
	} else {
		by = "app " + by
	}
	d.Reason = fmt.Sprintf("access control policy of app %s %s %s for %s", target, verdict, what, by)
	return d
}

// Component decides whether app may use the component c, by its scopes.
// Dapr's rule: a component without scopes is for every app. When the
// tenant denies by default it is for none: only the apps its scopes list
// may use it.
//
// The blocks answer a refusal as daprd does (the component is "not found"
// to an app out of its scope); Reason is for logs and the console.
func (s *Set) Component(app string, c tenants.Component) Decision {
	switch {
	case len(c.Scopes) == 0 && s.denyByDefault:
		return Decision{
			Reason: fmt.Sprintf("component %s is not available to app %s: it has no scopes and the tenant denies by default", c.Name, app),
			Rule:   "the tenant's deny-by-default (component " + c.Name + " has no scopes)",
		}
	case len(c.Scopes) == 0:
		return Decision{Allowed: true, Reason: fmt.Sprintf("component %s has no scopes", c.Name), Rule: "component " + c.Name + ": scopes"}
	case c.InScope(app):
		return Decision{Allowed: true, Reason: fmt.Sprintf("component %s is scoped to app %s", c.Name, app), Rule: "component " + c.Name + ": scopes"}
	default:
		return Decision{
			Reason: fmt.Sprintf("component %s is not available to app %s: its scopes do not list the app", c.Name, app),
			Rule:   "component " + c.Name + ": scopes",
		}
	}
}

// Topic decides whether app may publish (publish) or subscribe to topic on
// the pub/sub component c: first Component, then the component's
// allowedTopics, publishingScopes and subscriptionScopes as the pub/sub
// block reads them (pubsub.TopicAllowed). When the tenant denies by default
// an app that the publishing (subscription) scopes do not list is refused;
// otherwise Dapr's rule holds and it is limited only by allowedTopics. The
// topic name itself is the pub/sub block's to validate.
func (s *Set) Topic(app string, c tenants.Component, topic string, publish bool) Decision {
	if d := s.Component(app, c); !d.Allowed {
		return d
	}
	verb, key := "subscribe to", "subscriptionScopes"
	if publish {
		verb, key = "publish to", "publishingScopes"
	}
	rule := "component " + c.Name + ": allowedTopics, " + key
	ok, err := pubsub.TopicAllowed(c, app, topic, publish, s.denyByDefault)
	switch {
	case err != nil:
		return Decision{Reason: fmt.Sprintf("pub/sub component %s has invalid topic scopes", c.Name), Rule: rule + ": " + err.Error()}
	case ok:
		return Decision{Allowed: true, Reason: fmt.Sprintf("app %s may %s topic %s on %s", app, verb, topic, c.Name), Rule: rule}
	}
	if s.denyByDefault {
		// Would Dapr's own rule have allowed it? Then the switch decided.
		if open, _ := pubsub.TopicAllowed(c, app, topic, publish, false); open {
			return Decision{
				Reason: fmt.Sprintf("app %s may not %s topic %s on %s: the component's %s do not list the app and the tenant denies by default", app, verb, topic, c.Name, key),
				Rule:   "the tenant's deny-by-default (" + key + " of " + c.Name + " do not list app " + app + ")",
			}
		}
	}
	return Decision{Reason: fmt.Sprintf("app %s may not %s topic %s on %s", app, verb, topic, c.Name), Rule: rule}
}
