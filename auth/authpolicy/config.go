package authpolicy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/blockgate/blockgate/internal/yamldoc"
	"github.com/blockgate/blockgate/tenants"
)

// ErrInvalid marks a document or record that cannot be used; the message
// says which field is wrong and why.
var ErrInvalid = errors.New("invalid access control configuration")

// Action is what a rule decides: Allow or Deny.
type Action string

// The two actions. Documents may spell them in any case.
const (
	Allow Action = "allow"
	Deny  Action = "deny"
)

// Configuration is a Dapr Configuration resource (apiVersion
// dapr.io/v1alpha1, kind Configuration) as far as access control goes.
// Parse fills it; it must not be changed afterwards, and then any number of
// goroutines may use it.
type Configuration struct {
	// Name is metadata.name; empty if the document has none.
	Name string
	// AccessControl is spec.accessControl; nil when the document has none.
	AccessControl *AccessControl

	compiled *acl
}

// AccessControl is spec.accessControl.
type AccessControl struct {
	// DefaultAction is the global default; empty when not given.
	DefaultAction Action
	// TrustDomain is the callee's own trust domain in Dapr. The gateway
	// assigns trust domains itself, so it is kept only for Warnings.
	TrustDomain string
	Policies    []Policy
}

// Policy is one entry of spec.accessControl.policies: what the caller app
// AppID may do.
type Policy struct {
	AppID string
	// DefaultAction applies when no operation matches; empty when not given.
	DefaultAction Action
	// TrustDomain and Namespace must be the gateway's trust domain and the
	// tenant's id for the policy to apply; empty means "this one".
	TrustDomain string
	Namespace   string
	Operations  []Operation
}

// Operation is one entry of a policy's operations.
type Operation struct {
	// Name is the method pattern, rooted and cleaned ("/orders/*").
	Name string
	// HTTPVerbs are upper case; "*" is any verb. Empty: gRPC calls only.
	HTTPVerbs []string
	Action    Action
}

// specFields are the fields of a Dapr ConfigurationSpec (daprd v1.18).
// Only accessControl concerns the gateway; the others are accepted so that
// a Dapr user can apply the file they have, and ignored.
var specFields = []string{
	"accessControl", "httpPipeline", "appHttpPipeline", "tracing", "mtls",
	"metric", "metrics", "secrets", "nameResolution", "features", "api",
	"components", "logging", "wasm", "workflow",
}

// httpVerbs are the verbs daprd's ACL knows (HTTPExtension.Verb).
var httpVerbs = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

// fieldHints suggest the right name for a field a Dapr user may misspell
// (Dapr's documentation table calls appId "app").
var fieldHints = map[string]string{"app": "appId", "appID": "appId", "httpVerbs": "httpVerb", "operation": "name"}

// Parse reads a Dapr Configuration resource in YAML or JSON. Decoding is
// strict: an unknown or misspelt field, an action other than allow or deny,
// an unknown HTTP verb or an operation name the matcher cannot honour is an
// error (wrapping ErrInvalid) that names the field. Spec fields other than
// accessControl (tracing, features, ...) are accepted and ignored.
func Parse(doc []byte) (*Configuration, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, invalid("configuration is neither YAML nor JSON (or repeats a key): %v", err)
	}
	if err := yamldoc.One(doc); err != nil {
		return nil, invalid("%v", err)
	}
	top, err := object("", js, "apiVersion", "kind", "metadata", "spec")
	if err != nil {
		return nil, err
	}
	apiVersion, err := str("apiVersion", top["apiVersion"])
	if err != nil {
		return nil, err
	}
	if apiVersion != "dapr.io/v1alpha1" {
		return nil, invalid("apiVersion is %q; want dapr.io/v1alpha1", apiVersion)
	}
	kind, err := str("kind", top["kind"])
	if err != nil {
		return nil, err
	}
	if kind != "Configuration" {
		return nil, invalid("kind is %q; want Configuration", kind)
	}
	meta, err := object("metadata", top["metadata"], "name", "namespace", "labels", "annotations")
	if err != nil {
		return nil, err
	}
	c := &Configuration{}
	if c.Name, err = str("metadata.name", meta["name"]); err != nil {
		return nil, err
	}
	spec, err := object("spec", top["spec"], specFields...)
	if err != nil {
		return nil, err
	}
	if raw, ok := spec["accessControl"]; ok && !isNull(raw) {
		if c.AccessControl, err = parseAccessControl("spec.accessControl", raw); err != nil {
			return nil, err
		}
	}
	if c.compiled, err = compile(c.Name, c.AccessControl); err != nil {
		return nil, err
	}
	return c, nil
}

func parseAccessControl(at string, raw json.RawMessage) (*AccessControl, error) {
	m, err := object(at, raw, "defaultAction", "trustDomain", "policies")
	if err != nil {
		return nil, err
	}
	ac := &AccessControl{}
	if ac.DefaultAction, err = action(at+".defaultAction", m["defaultAction"]); err != nil {
		return nil, err
	}
	if ac.TrustDomain, err = str(at+".trustDomain", m["trustDomain"]); err != nil {
		return nil, err
	}
	policies, err := list(at+".policies", m["policies"])
	if err != nil {
		return nil, err
	}
	type key struct{ app, ns string }
	seen := map[key]int{}
	for i, raw := range policies {
		pat := fmt.Sprintf("%s.policies[%d]", at, i)
		p, err := parsePolicy(pat, raw)
		if err != nil {
			return nil, err
		}
		k := key{p.AppID, p.Namespace}
		if j, dup := seen[k]; dup {
			return nil, invalid("%s: appId %s with namespace %q repeats policies[%d]; give each caller one policy", pat, p.AppID, p.Namespace, j)
		}
		seen[k] = i
		ac.Policies = append(ac.Policies, p)
	}
	return ac, nil
}

func parsePolicy(at string, raw json.RawMessage) (Policy, error) {
	m, err := object(at, raw, "appId", "defaultAction", "trustDomain", "namespace", "operations")
	if err != nil {
		return Policy{}, err
	}
	var p Policy
	if p.AppID, err = str(at+".appId", m["appId"]); err != nil {
		return Policy{}, err
	}
	if p.AppID == "" {
		return Policy{}, invalid("%s.appId is required: the caller's app id", at)
	}
	if err := tenants.ValidateAppID(p.AppID); err != nil {
		return Policy{}, invalid("%s.appId: %v", at, err)
	}
	if p.DefaultAction, err = action(at+".defaultAction", m["defaultAction"]); err != nil {
		return Policy{}, err
	}
	if p.TrustDomain, err = str(at+".trustDomain", m["trustDomain"]); err != nil {
		return Policy{}, err
	}
	if p.Namespace, err = str(at+".namespace", m["namespace"]); err != nil {
		return Policy{}, err
	}
	ops, err := list(at+".operations", m["operations"])
	if err != nil {
		return Policy{}, err
	}
	seen := map[string]int{}
	for i, raw := range ops {
		oat := fmt.Sprintf("%s.operations[%d]", at, i)
		op, err := parseOperation(oat, raw)
		if err != nil {
			return Policy{}, err
		}
		// HTTP methods match case-insensitively, so names that differ
		// only in case are the same rule there.
		k := strings.ToLower(op.Name)
		if j, dup := seen[k]; dup {
			return Policy{}, invalid("%s.name %q repeats operations[%d]; put its verbs in one entry", oat, op.Name, j)
		}
		seen[k] = i
		p.Operations = append(p.Operations, op)
	}
	return p, nil
}

func parseOperation(at string, raw json.RawMessage) (Operation, error) {
	m, err := object(at, raw, "name", "httpVerb", "action")
	if err != nil {
		return Operation{}, err
	}
	var op Operation
	name, err := str(at+".name", m["name"])
	if err != nil {
		return Operation{}, err
	}
	if name == "" {
		return Operation{}, invalid("%s.name is required: the method, such as /orders or /orders/**", at)
	}
	if _, op.Name, err = compileName(name, false); err != nil {
		return Operation{}, invalid("%s.name %q %v", at, name, err)
	}
	verbs, err := list(at+".httpVerb", m["httpVerb"])
	if err != nil {
		return Operation{}, err
	}
	for i, raw := range verbs {
		vat := fmt.Sprintf("%s.httpVerb[%d]", at, i)
		v, err := str(vat, raw)
		if err != nil {
			return Operation{}, err
		}
		v = strings.ToUpper(v)
		if v != "*" && !slices.Contains(httpVerbs, v) {
			return Operation{}, invalid("%s %q is not an HTTP verb: use * or one of %s", vat, v, strings.Join(httpVerbs, ", "))
		}
		if !slices.Contains(op.HTTPVerbs, v) {
			op.HTTPVerbs = append(op.HTTPVerbs, v)
		}
	}
	// Dapr documents allow as the default but daprd denies an operation
	// without an action; rather than pick one silently, ask for it.
	if op.Action, err = action(at+".action", m["action"]); err != nil {
		return Operation{}, err
	}
	if op.Action == "" {
		return Operation{}, invalid("%s.action is required: allow or deny (Dapr's documentation says it defaults to allow, daprd denies without it)", at)
	}
	return op, nil
}

// action reads allow or deny, in any case; "" when absent.
func action(at string, raw json.RawMessage) (Action, error) {
	s, err := str(at, raw)
	if err != nil {
		return "", err
	}
	switch a := Action(strings.ToLower(s)); a {
	case Allow, Deny, "":
		return a, nil
	default:
		return "", invalid("%s is %q; want allow or deny", at, s)
	}
}

// object decodes a JSON object whose keys must be among known, exactly as
// spelt (encoding/json alone would accept any case). null is an empty
// object.
func object(at string, raw json.RawMessage, known ...string) (map[string]json.RawMessage, error) {
	where := at
	if where == "" {
		where = "the document"
	}
	if len(raw) == 0 || isNull(raw) {
		return map[string]json.RawMessage{}, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, invalid("%s: want an object", where)
	}
	var unknown []string
	for k := range m {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		k := unknown[0]
		field := k
		if at != "" {
			field = at + "." + k
		}
		if hint, ok := fieldHints[k]; ok && slices.Contains(known, hint) {
			return nil, invalid("unknown field %s: did you mean %s?", field, hint)
		}
		return nil, invalid("unknown field %s (%s has %s)", field, where, strings.Join(known, ", "))
	}
	return m, nil
}

// list decodes a JSON array; null or absent is empty.
func list(at string, raw json.RawMessage) ([]json.RawMessage, error) {
	if len(raw) == 0 || isNull(raw) {
		return nil, nil
	}
	var l []json.RawMessage
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, invalid("%s: want a list", at)
	}
	return l, nil
}

// str decodes a JSON string; null or absent is "".
func str(at string, raw json.RawMessage) (string, error) {
	if len(raw) == 0 || isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalid("%s: want a string", at)
	}
	return s, nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Warnings lists what in c will not do what a Dapr user may expect in
// tenant on a gateway whose trust domain is trustDomain: policies that can
// never match a caller of the tenant, fields the gateway ignores,
// operations that apply to gRPC calls only. The admin API shows them when
// a configuration is applied; they do not stop it.
func (c *Configuration) Warnings(tenant tenants.ID, trustDomain string) []string {
	ac := c.AccessControl
	if ac == nil {
		return []string{"the configuration has no spec.accessControl: it sets only the defaults for the apps it applies to"}
	}
	var out []string
	if ac.TrustDomain != "" && !strings.EqualFold(ac.TrustDomain, trustDomain) {
		out = append(out, fmt.Sprintf("spec.accessControl.trustDomain %q is ignored: the gateway assigns every app the trust domain %q", ac.TrustDomain, trustDomain))
	}
	callers := map[string]int{}
	for i, p := range ac.Policies {
		at := fmt.Sprintf("spec.accessControl.policies[%d]", i)
		matches := true
		if p.Namespace != "" && p.Namespace != string(tenant) {
			out = append(out, fmt.Sprintf("%s never applies: namespace %q is not this tenant (%s); leave it out or write %s", at, p.Namespace, tenant, tenant))
			matches = false
		}
		if p.TrustDomain != "" && !strings.EqualFold(p.TrustDomain, trustDomain) {
			out = append(out, fmt.Sprintf("%s never applies: trustDomain %q is not the gateway's (%s); leave it out or write %s", at, p.TrustDomain, trustDomain, trustDomain))
			matches = false
		}
		if matches {
			if j, dup := callers[p.AppID]; dup {
				out = append(out, fmt.Sprintf("%s is shadowed by policies[%d], which also applies to app %s", at, j, p.AppID))
			} else {
				callers[p.AppID] = i
			}
		}
		for k, op := range p.Operations {
			if len(op.HTTPVerbs) == 0 {
				out = append(out, fmt.Sprintf("%s.operations[%d] (%s) has no httpVerb: it applies to gRPC calls only", at, k, op.Name))
			}
		}
	}
	return out
}
