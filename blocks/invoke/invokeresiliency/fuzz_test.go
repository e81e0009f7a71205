package invokeresiliency

import (
	"context"
	"maps"
	"slices"
	"testing"
)

// FuzzParse checks that Parse never panics and that whatever it accepts
// validates and resolves to policies that run.
func FuzzParse(f *testing.F) {
	for _, doc := range []string{overviewDoc, matchingExample, defaultsDoc, schemaDoc,
		withSpec("  policies:\n    circuitBreakers:\n      c: {trip: \"requests > 3 && totalFailures >= 2 || consecutiveFailures == 1\"}\n  targets:\n    apps:\n      a: {circuitBreaker: c}\n"),
		withSpec("  policies:\n    retries:\n      DaprBuiltInServiceRetries: {maxRetries: -1, matching: {httpStatusCodes: \"500-599\"}}\n"),
		withSpec("  policies:\n    timeouts: {t: \"100\"}\n  targets:\n    apps:\n      a: {timeout: t}\n"),
		withSpec("  targets:\n    apps:\n      appB: {timeout: general}\n"),
		"apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: x}\nscopes: [a, b]\n",
	} {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		r, err := Parse(doc)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("Parse accepted a resource that does not validate: %v", err)
		}
		r.Tenant, r.Breakers = "t", NewBreakers(newFakeClock())
		apps := append(slices.Sorted(maps.Keys(r.Apps)), "not-a-target")
		for _, app := range apps {
			p := r.ForApp(app)
			if t, ok := r.Apps[app]; ok {
				if (t.Retry != "") != (p.Retry != nil) || (t.CircuitBreaker != "") != (p.Breaker != nil) || (t.Timeout != "") != (p.TimeoutName != "") {
					panic("ForApp lost a named policy of " + app)
				}
			}
			p.Clock = newFakeClock()
			o, err := p.Run(context.Background(), func(context.Context) (Outcome, error) {
				return Outcome{Status: HTTPStatus(200)}, nil
			})
			if err != nil || o.Status.Code != 200 {
				t.Fatalf("a succeeding call under %v: %v %v", p, o.Status, err)
			}
			o.Release()
		}
		for _, cb := range r.CircuitBreakers {
			cb.Trip.Eval(Counts{Requests: 7, TotalFailures: 3, ConsecutiveFailures: 2, TotalSuccesses: 4})
		}
	})
}
