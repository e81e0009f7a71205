package pubsub

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
)

// Routes says where a subscription's events go in the app: the path of the
// first rule whose Match is true, else Default. It is the routes object of
// Dapr's subscriptions (dapr.io/v2alpha1 spec.routes and the programmatic
// answer's routes).
type Routes struct {
	Rules   []Rule `json:"rules,omitempty"`
	Default string `json:"default,omitempty"`
}

// Rule routes the events its Match expression accepts to Path.
type Rule struct {
	// Match is a CEL expression over the variable event, the CloudEvent as
	// a JSON object (event.type, event.source, event.data.price, an
	// extension such as event.myext, …). An empty Match accepts every
	// event, as in Dapr.
	Match string `json:"match"`
	// Path is the app's route (an HTTP path, or the gRPC path field).
	Path string `json:"path"`
}

// Limits on routing rules, so that a tenant's rule cannot hold a delivery
// goroutine: the expression's size and nesting when it is compiled, and the
// work one evaluation may do (CEL's cost units, roughly one per operation
// and per element or byte a function walks).
const (
	maxRuleLen       = 4096
	maxRuleRecursion = 64
	// MaxRuleCost bounds one evaluation of one rule; a rule that would cost
	// more stops and counts as not matching.
	MaxRuleCost = 100_000
)

// celEnv is the environment of every rule: the standard CEL library and one
// variable, event, of dynamic type, as daprd declares it.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("event", cel.DynType),
		cel.ParserRecursionLimit(maxRuleRecursion),
		cel.ParserExpressionSizeLimit(maxRuleLen),
	)
})

// Router is a compiled Routes. It is immutable and safe for concurrent use.
type Router struct {
	rules []compiledRule
	def   string
}

type compiledRule struct {
	match string
	path  string
	prg   cel.Program // nil: matches every event
}

// CompileRoutes compiles every rule's Match. A rule that does not parse,
// refers to anything but event and the standard functions, or cannot
// evaluate to a bool (a string or number expression) is refused, and the
// error names the rule by position and text. An expression of dynamic type,
// such as event.data.flag, is accepted and must yield a bool when it runs.
func CompileRoutes(r Routes) (*Router, error) {
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("creating the CEL environment: %w", err)
	}
	out := &Router{rules: make([]compiledRule, 0, len(r.Rules)), def: r.Default}
	for i, rule := range r.Rules {
		c := compiledRule{match: rule.Match, path: rule.Path}
		expr := strings.TrimSpace(rule.Match)
		if expr != "" {
			if len(expr) > maxRuleLen {
				return nil, fmt.Errorf("routes.rules[%d]: match is longer than %d bytes", i, maxRuleLen)
			}
			ast, iss := env.Compile(expr)
			if err := iss.Err(); err != nil {
				return nil, fmt.Errorf("routes.rules[%d]: match %q: %w", i, rule.Match, err)
			}
			if t := ast.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
				return nil, fmt.Errorf("routes.rules[%d]: match %q evaluates to %s; it must be a bool", i, rule.Match, t)
			}
			c.prg, err = env.Program(ast, cel.CostLimit(MaxRuleCost))
			if err != nil {
				return nil, fmt.Errorf("routes.rules[%d]: match %q: %w", i, rule.Match, err)
			}
		}
		out.rules = append(out.rules, c)
	}
	return out, nil
}

// RuleError reports a rule that failed to evaluate for an event.
type RuleError struct {
	Index int
	Match string
	Err   error
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("routes.rules[%d] (%s): %v", e.Index, e.Match, e.Err)
}

func (e *RuleError) Unwrap() error { return e.Err }

// Match returns the path for ev: the first rule, in order, whose Match is
// true, else the default path, else "" (no route: the caller drops the
// event, as daprd does).
//
// A rule that fails to evaluate (it reads a field the event lacks, compares
// mismatched types, yields a non-bool, or exceeds MaxRuleCost) counts as not
// matching and the next rule is tried. The path is the decision whether or
// not err is nil: err only reports the rules that failed (as *RuleError,
// joined), for the caller to log. This is where blockgate differs from
// daprd, which retries the whole message when a rule fails to evaluate,
// forever or until its dead-letter topic. Rules see the event as daprd
// shows it: the JSON object decoded with numbers as doubles.
func (r *Router) Match(ev Event) (path string, err error) {
	if r == nil {
		return "", nil
	}
	var (
		vars     map[string]any
		varsErr  error
		decoded  bool
		failures []error
	)
	for i, rule := range r.rules {
		if rule.prg == nil {
			return rule.path, errors.Join(failures...)
		}
		if !decoded {
			vars, varsErr = celInput(ev)
			decoded = true
		}
		if varsErr != nil {
			failures = append(failures, &RuleError{Index: i, Match: rule.match, Err: varsErr})
			continue
		}
		out, _, err := rule.prg.Eval(vars)
		if err != nil {
			failures = append(failures, &RuleError{Index: i, Match: rule.match, Err: err})
			continue
		}
		b, ok := out.Value().(bool)
		if !ok {
			failures = append(failures, &RuleError{Index: i, Match: rule.match,
				Err: fmt.Errorf("the result is %s, not a bool", out.Type().TypeName())})
			continue
		}
		if b {
			return rule.path, errors.Join(failures...)
		}
	}
	return r.def, errors.Join(failures...)
}

// celInput is the activation of a rule: event is the CloudEvent decoded as
// encoding/json decodes into any.
func celInput(ev Event) (map[string]any, error) {
	js := ev.JSON
	if js == nil {
		js = object(ev.Fields).encode()
	}
	var event map[string]any
	if err := json.Unmarshal(js, &event); err != nil {
		return nil, fmt.Errorf("reading the event: %w", err)
	}
	if event == nil {
		return nil, errors.New("reading the event: not a JSON object")
	}
	return map[string]any{"event": event}, nil
}
