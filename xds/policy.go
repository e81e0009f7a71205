package xds

import (
	"strings"

	"github.com/blockgate/blockgate/auth/authpolicy"
	"github.com/blockgate/blockgate/tenants"
)

// reach is how much of a target app a caller app may invoke.
type reach int

const (
	// reachNone: every method is denied.
	reachNone reach = iota
	// reachSome: the answer depends on the method (or the verb).
	reachSome
	// reachAll: every method is allowed.
	reachAll
)

// reachOf classifies what caller may invoke on target under set, with
// authpolicy's rules of precedence (see its package documentation): the
// callee's configuration, else the tenant's default, else the tenant's
// switch; in the configuration, the caller's policy (the first whose
// appId, namespace and trust domain match) and its operations, else the
// global defaultAction.
//
// Envoy's RBAC here admits or refuses whole apps, so only reachAll opens
// the direct path between sidecars; a caller with reachSome goes through
// the gateway, which decides per method with Set.Invoke. The tests check
// this classification against Set.Invoke.
func reachOf(set *authpolicy.Set, tenant tenants.ID, trustDomain, caller, target string) reach {
	if set == nil {
		return reachAll
	}
	c := set.For(target)
	if c == nil {
		if set.DenyByDefault() {
			return reachNone
		}
		return reachAll
	}
	ac := c.AccessControl
	def := globalDefault(ac, set.DenyByDefault())
	p := policyFor(ac, caller, string(tenant), trustDomain)
	if p == nil {
		return reachFrom(def)
	}
	if p.DefaultAction != "" {
		def = p.DefaultAction
	}
	for _, op := range p.Operations {
		if !strings.EqualFold(string(op.Action), string(def)) {
			return reachSome
		}
	}
	return reachFrom(def)
}

func reachFrom(a authpolicy.Action) reach {
	if strings.EqualFold(string(a), string(authpolicy.Allow)) {
		return reachAll
	}
	return reachNone
}

// globalDefault is the action when no policy of ac decides (authpolicy's
// acl.globalDefault): its defaultAction; else deny when there are
// policies; else deny when the tenant denies by default; else allow.
func globalDefault(ac *authpolicy.AccessControl, denyByDefault bool) authpolicy.Action {
	switch {
	case ac != nil && ac.DefaultAction != "":
		return ac.DefaultAction
	case ac != nil && len(ac.Policies) > 0:
		return authpolicy.Deny
	case denyByDefault:
		return authpolicy.Deny
	}
	return authpolicy.Allow
}

// policyFor is the first policy of ac for caller: its appId, and its
// namespace and trust domain when given, must match.
func policyFor(ac *authpolicy.AccessControl, caller, tenant, trustDomain string) *authpolicy.Policy {
	if ac == nil || caller == "" {
		return nil
	}
	for i := range ac.Policies {
		p := &ac.Policies[i]
		if p.AppID != caller {
			continue
		}
		if p.Namespace != "" && p.Namespace != tenant {
			continue
		}
		if p.TrustDomain != "" && !strings.EqualFold(p.TrustDomain, trustDomain) {
			continue
		}
		return p
	}
	return nil
}
