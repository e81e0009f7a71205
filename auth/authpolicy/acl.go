package authpolicy

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// acl is a Configuration's access control, compiled for matching.
type acl struct {
	config string // metadata.name, for Decision.Rule
	// present is false when the document has no accessControl: daprd then
	// has no access control list at all.
	present       bool
	defaultAction Action // as written; "" when not given
	nPolicies     int
	policies      []rulePolicy
}

type rulePolicy struct {
	index         int
	appID         string
	trustDomain   string
	namespace     string
	defaultAction Action
	rules         []rule
}

type rule struct {
	index  int
	name   string  // canonical, for reasons
	http   pattern // lowered: HTTP methods match case-insensitively
	grpc   pattern
	verbs  []string
	any    bool // httpVerb lists "*"
	action Action
}

func compile(name string, ac *AccessControl) (*acl, error) {
	out := &acl{config: name}
	if ac == nil {
		return out, nil
	}
	out.present = true
	out.defaultAction = ac.DefaultAction
	out.nPolicies = len(ac.Policies)
	for i, p := range ac.Policies {
		rp := rulePolicy{
			index: i, appID: p.AppID, trustDomain: p.TrustDomain, namespace: p.Namespace,
			defaultAction: p.DefaultAction,
		}
		for k, op := range p.Operations {
			r := rule{index: k, name: op.Name, action: op.Action}
			var err error
			if r.http, _, err = compileName(op.Name, true); err == nil {
				r.grpc, _, err = compileName(op.Name, false)
			}
			if err != nil {
				return nil, invalid("spec.accessControl.policies[%d].operations[%d].name %q %v", i, k, op.Name, err)
			}
			for _, v := range op.HTTPVerbs {
				if v == "*" {
					r.any = true
				} else {
					r.verbs = append(r.verbs, v)
				}
			}
			rp.rules = append(rp.rules, r)
		}
		out.policies = append(out.policies, rp)
	}
	return out, nil
}

// globalDefault is the action when no policy decides. daprd: an explicit
// defaultAction; else deny if there are policies ("the more secure
// option"); else allow, since an empty accessControl is no access control.
// A tenant that denies by default turns that last allow into deny.
func (a *acl) globalDefault(denyByDefault bool) (Action, string) {
	switch {
	case a.defaultAction != "":
		return a.defaultAction, "spec.accessControl.defaultAction"
	case a.nPolicies > 0:
		return Deny, "spec.accessControl.defaultAction (not given, and there are policies)"
	case denyByDefault:
		return Deny, "the tenant's deny-by-default (the configuration sets no defaultAction)"
	case a.present:
		return Allow, "spec.accessControl (empty)"
	default:
		return Allow, "the configuration (no spec.accessControl)"
	}
}

// policy finds the policy for a caller of tenant on a gateway whose trust
// domain is trustDomain: the first whose appId, namespace and trust domain
// all match, empty namespace and trust domain meaning "this one".
func (a *acl) policy(caller, tenant, trustDomain string) *rulePolicy {
	if caller == "" {
		return nil // no verified caller: only the global default applies
	}
	for i := range a.policies {
		p := &a.policies[i]
		if p.appID != caller {
			continue
		}
		if p.namespace != "" && p.namespace != tenant {
			continue
		}
		if p.trustDomain != "" && !strings.EqualFold(p.trustDomain, trustDomain) {
			continue
		}
		return p
	}
	return nil
}

// match finds the most specific rule of p for the normalized operation op
// and the verb (upper case; ignored for gRPC, as daprd matches gRPC calls on
// the operation alone). Only rules that name the verb, or "*", are
// candidates for an HTTP call. Candidates are ranked by what matched each
// path segment (a literal beats a segment glob, which beats "/*", which
// beats "/**", which beats a shorter name covering the path); a tie goes to
// the name without a trailing wildcard, then to the earlier rule.
func (p *rulePolicy) match(segs []string, verb string, grpc bool) *rule {
	var best *rule
	var bestScore, score []byte
	for i := range p.rules {
		r := &p.rules[i]
		pat := r.http
		if grpc {
			pat = r.grpc
		} else if !r.any && !slices.Contains(r.verbs, verb) {
			continue
		}
		var ok bool
		score, ok = pat.match(segs, score[:0])
		if !ok {
			continue
		}
		if best == nil || better(score, pat.tail, bestScore, tailOf(best, grpc)) {
			best = r
			bestScore = append(bestScore[:0], score...)
		}
	}
	return best
}

func tailOf(r *rule, grpc bool) tail {
	if grpc {
		return r.grpc.tail
	}
	return r.http.tail
}

// better reports whether a match scored (s, st) beats one scored (b, bt).
// Both score the same path, so they have the same length.
func better(s []byte, st tail, b []byte, bt tail) bool {
	if c := bytes.Compare(s, b); c != 0 {
		return c > 0
	}
	return tailRank(st) > tailRank(bt)
}

func tailRank(t tail) int {
	switch t {
	case tailCover:
		return 2
	case tailOne:
		return 1
	}
	return 0
}

func (r *rule) where(p *rulePolicy) string {
	return fmt.Sprintf("spec.accessControl.policies[%d].operations[%d] (%s)", p.index, r.index, r.name)
}
