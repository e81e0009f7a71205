package invokeresiliency

import (
	"fmt"
	"sync"

	"github.com/google/cel-go/cel"
)

// DefaultTrip is the trip expression of a circuit breaker that sets none,
// as in daprd.
const DefaultTrip = "consecutiveFailures > 5"

// maxTripLen bounds a trip expression; Dapr's documented ones are a few
// dozen characters.
const maxTripLen = 1024

// Trip is a circuit breaker's trip condition: a CEL expression over the
// breaker's counts (requests, totalSuccesses, totalFailures,
// consecutiveSuccesses, consecutiveFailures, all integers) that yields a
// boolean, e.g. "consecutiveFailures > 5" or
// "requests >= 10 && totalFailures * 2 > requests". The zero Trip is
// DefaultTrip. A Trip is safe for concurrent use.
type Trip struct {
	src string
	prg cel.Program // nil for DefaultTrip
}

// tripEnv is the CEL environment of trip expressions, built once.
var tripEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("requests", cel.IntType),
		cel.Variable("totalSuccesses", cel.IntType),
		cel.Variable("totalFailures", cel.IntType),
		cel.Variable("consecutiveSuccesses", cel.IntType),
		cel.Variable("consecutiveFailures", cel.IntType),
		// daprd declares the counts without a type, so comparing them with
		// a double (consecutiveFailures > 5.0) works there; keep it working.
		cel.CrossTypeNumericComparisons(true),
		cel.ParserRecursionLimit(64),
	)
})

// ParseTrip compiles a trip expression; "" is DefaultTrip. Unlike daprd,
// which declares any unknown identifier and then never trips because it
// cannot evaluate it, an identifier other than the five counts is an error.
func ParseTrip(src string) (Trip, error) {
	if src == "" || src == DefaultTrip {
		return Trip{}, nil
	}
	if len(src) > maxTripLen {
		return Trip{}, fmt.Errorf("the expression is longer than %d characters", maxTripLen)
	}
	env, err := tripEnv()
	if err != nil {
		return Trip{}, fmt.Errorf("building the expression environment: %w", err)
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return Trip{}, fmt.Errorf("%q is not a valid expression over requests, totalSuccesses, totalFailures, consecutiveSuccesses and consecutiveFailures: %w", src, iss.Err())
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return Trip{}, fmt.Errorf("%q yields %s; want a boolean such as consecutiveFailures > 5", src, ast.OutputType())
	}
	// Counts are integers and CEL has no loops over them, so the cost of
	// an expression is bounded by its size; the limit is a second wall.
	prg, err := env.Program(ast, cel.CostLimit(10_000))
	if err != nil {
		return Trip{}, fmt.Errorf("%q: %w", src, err)
	}
	return Trip{src: src, prg: prg}, nil
}

// MustParseTrip is ParseTrip for expressions known to be valid; it panics
// on an error.
func MustParseTrip(src string) Trip {
	t, err := ParseTrip(src)
	if err != nil {
		panic(err)
	}
	return t
}

// String returns the expression.
func (t Trip) String() string {
	if t.src == "" {
		return DefaultTrip
	}
	return t.src
}

// Eval reports whether a breaker with counts c trips. An expression that
// fails to evaluate (an overflow, a division by zero) does not trip, as in
// daprd.
func (t Trip) Eval(c Counts) bool {
	if t.prg == nil {
		return c.ConsecutiveFailures > 5
	}
	out, _, err := t.prg.Eval(map[string]any{
		"requests":             int64(c.Requests),
		"totalSuccesses":       int64(c.TotalSuccesses),
		"totalFailures":        int64(c.TotalFailures),
		"consecutiveSuccesses": int64(c.ConsecutiveSuccesses),
		"consecutiveFailures":  int64(c.ConsecutiveFailures),
	})
	if err != nil {
		return false
	}
	b, ok := out.Value().(bool)
	return ok && b
}
