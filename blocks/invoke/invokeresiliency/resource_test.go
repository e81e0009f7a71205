package invokeresiliency

import (
	"strings"
	"testing"
	"time"
)

// overviewDoc is the complete example of Dapr's "Resiliency overview" page.
const overviewDoc = `
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: myresiliency
# similar to subscription and configuration specs, scopes lists the Dapr App IDs that this
# resiliency spec can be used by.
scopes:
  - app1
  - app2
spec:
  policies:
    timeouts:
      general: 5s
      important: 60s
      largeResponse: 10s
    retries:
      pubsubRetry:
        policy: constant
        duration: 5s
        maxRetries: 10
      retryForever:
        policy: exponential
        maxInterval: 15s
        maxRetries: -1 # retry indefinitely
      important:
        policy: constant
        duration: 5s
        maxRetries: 30
      someOperation:
        policy: exponential
        maxInterval: 15s
      largeResponse:
        policy: constant
        duration: 5s
        maxRetries: 3
    circuitBreakers:
      simpleCB:
        maxRequests: 1
        timeout: 30s 
        trip: consecutiveFailures >= 5
      pubsubCB:
        maxRequests: 1
        interval: 8s
        timeout: 45s
        trip: consecutiveFailures > 8
  targets:
    apps:
      appB:
        timeout: general
        retry: important
        circuitBreaker: simpleCB
    actors:
      myActorType: # custom Actor Type Name
        timeout: general
        retry: important
        circuitBreaker: simpleCB
        circuitBreakerScope: both ## 
        circuitBreakerCacheSize: 5000
    components:
      statestore1:
        outbound:
          timeout: general
          retry: retryForever
          circuitBreaker: simpleCB
      pubsub1:
        outbound:
          retry: pubsubRetry
          circuitBreaker: pubsubCB
      pubsub2:
        outbound:
          retry: pubsubRetry
          circuitBreaker: pubsubCB
        inbound:
          timeout: general
          retry: important
          circuitBreaker: pubsubCB
`

// matchingExample is the matching example of Dapr's "Retry resiliency
// policies" page, targeted at an app.
const matchingExample = `
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: matching
spec:
  policies:
    retries:
      retry5xxOnly:
        policy: constant
        duration: 5s
        maxRetries: 3
        matching:
          httpStatusCodes: "429,500-599" # retry the HTTP status codes in this range. All others are not retried. 
          gRPCStatusCodes: "1-4,8-11,13,14" # retry gRPC status codes in these ranges and separate single codes.
  targets:
    apps:
      orders:
        retry: retry5xxOnly
`

// defaultsDoc is the example of Dapr's "Default resiliency policies" page.
// The page's components entry (actorstore: {retry: fastRetries}) is not in
// the shape of daprd's types, which want inbound/outbound, and daprd
// silently ignores it; it is written here in the shape daprd reads.
const defaultsDoc = `
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: defaults
spec:
  policies:
    retries:
      # Global Retry Policy
      DefaultRetryPolicy:
        policy: constant
        duration: 1s
        maxRetries: 3
      # Global Retry Policy for Apps
      DefaultAppRetryPolicy:
        policy: constant
        duration: 100ms
        maxRetries: 5
      DefaultActorRetryPolicy:
        policy: exponential
        maxInterval: 15s
        maxRetries: 10
      DefaultComponentInboundRetryPolicy:
        policy: constant
        duration: 5s
        maxRetries: 5
      DefaultStatestoreComponentOutboundRetryPolicy:
        policy: exponential
        maxInterval: 60s
        maxRetries: -1
      fastRetries:
        policy: constant
        duration: 10ms
        maxRetries: 3
      retryForever:
        policy: exponential
        maxInterval: 10s
        maxRetries: -1
  targets:
    apps:
      appA:
        retry: fastRetries
      appB:
        retry: retryForever
    actors:
      EventActor:
        retry: retryForever
    components:
      actorstore:
        outbound:
          retry: fastRetries
`

// schemaDoc follows Dapr's "Resiliency spec" reference page, top-level
// version included, with values filled in; written as JSON.
const schemaDoc = `{
  "apiVersion": "dapr.io/v1alpha1",
  "kind": "Resiliency",
  "metadata": {"name": "schema", "namespace": "default", "labels": {"team": "a"}},
  "version": "v1alpha1",
  "scopes": ["checkout"],
  "spec": {
    "policies": {
      "timeouts": {"short": "1500", "long": "1m30s", "off": "0"},
      "retries": {"r": {"policy": "Exponential", "duration": "2s", "maxInterval": "3s", "maxRetries": 4,
        "matching": {"httpStatusCodes": "500,,502-504", "gRPCStatusCodes": "14"}}},
      "circuitBreakers": {"cb": {"maxRequests": 2, "interval": "0s", "timeout": "10000",
        "trip": "requests > 10 && totalFailures * 2 >= requests || consecutiveFailures == 3"}}
    },
    "targets": {
      "apps": {"Orders.v2": {"timeout": "short", "retry": "r", "circuitBreaker": "cb", "circuitBreakerCacheSize": 10}}
    }
  }
}`

func TestParseValid(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		check func(t *testing.T, r Resiliency)
	}{
		{"overview example", overviewDoc, func(t *testing.T, r Resiliency) {
			if r.Name != "myresiliency" || len(r.Scopes) != 2 {
				t.Errorf("name %q scopes %v", r.Name, r.Scopes)
			}
			if r.Timeouts["general"] != 5*time.Second || r.Timeouts["important"] != time.Minute {
				t.Errorf("timeouts %v", r.Timeouts)
			}
			if got := r.Retries["retryForever"]; got.Policy != Exponential || got.MaxInterval != 15*time.Second || got.MaxRetries != -1 {
				t.Errorf("retryForever %+v", got)
			}
			// someOperation leaves maxRetries out: daprd's default is -1.
			if got := r.Retries["someOperation"]; got.MaxRetries != -1 || got.Duration != 5*time.Second {
				t.Errorf("someOperation %+v", got)
			}
			if got := r.Retries["pubsubRetry"]; got.Policy != Constant || got.Duration != 5*time.Second || got.MaxRetries != 10 || got.Matching.HTTP != nil {
				t.Errorf("pubsubRetry %+v", got)
			}
			cb := r.CircuitBreakers["pubsubCB"]
			if cb.MaxRequests != 1 || cb.Interval != 8*time.Second || cb.Timeout != 45*time.Second || cb.Trip.String() != "consecutiveFailures > 8" {
				t.Errorf("pubsubCB %+v", cb)
			}
			if got := r.Apps["appB"]; got.Timeout != "general" || got.Retry != "important" || got.CircuitBreaker != "simpleCB" {
				t.Errorf("appB %+v", got)
			}
			if got := r.Actors["myActorType"]; got.CircuitBreakerScope != "both" || got.CircuitBreakerCacheSize != 5000 {
				t.Errorf("actor %+v", got)
			}
			if got := r.Components["pubsub2"]; got.Inbound.Retry != "important" || got.Outbound.CircuitBreaker != "pubsubCB" {
				t.Errorf("pubsub2 %+v", got)
			}
		}},
		{"matching example", matchingExample, func(t *testing.T, r Resiliency) {
			m := r.Retries["retry5xxOnly"].Matching
			wantHTTP := []CodeRange{{429, 429}, {500, 599}}
			wantGRPC := []CodeRange{{1, 4}, {8, 11}, {13, 13}, {14, 14}}
			if !equalRanges(m.HTTP, wantHTTP) || !equalRanges(m.GRPC, wantGRPC) {
				t.Errorf("matching %+v", m)
			}
		}},
		{"default policies example", defaultsDoc, func(t *testing.T, r Resiliency) {
			if r.Retries[DefaultAppRetryPolicy].Duration != 100*time.Millisecond {
				t.Errorf("DefaultAppRetryPolicy %+v", r.Retries[DefaultAppRetryPolicy])
			}
		}},
		{"schema reference as JSON", schemaDoc, func(t *testing.T, r Resiliency) {
			if r.Timeouts["short"] != 1500*time.Millisecond || r.Timeouts["long"] != 90*time.Second || r.Timeouts["off"] != 0 {
				t.Errorf("timeouts %v", r.Timeouts)
			}
			rt := r.Retries["r"]
			if rt.Policy != Exponential || rt.MaxInterval != 3*time.Second || rt.MaxRetries != 4 {
				t.Errorf("retry %+v", rt)
			}
			if !equalRanges(rt.Matching.HTTP, []CodeRange{{500, 500}, {502, 504}}) || !equalRanges(rt.Matching.GRPC, []CodeRange{{14, 14}}) {
				t.Errorf("matching %+v", rt.Matching)
			}
			cb := r.CircuitBreakers["cb"]
			if cb.MaxRequests != 2 || cb.Timeout != 10*time.Second {
				t.Errorf("cb %+v", cb)
			}
			if _, ok := r.Apps["Orders.v2"]; !ok {
				t.Errorf("apps %v", r.Apps)
			}
		}},
		{"trailing document separator", "---\n" + matchingExample + "---\n", func(t *testing.T, r Resiliency) {
			if r.Name != "matching" {
				t.Errorf("name %q", r.Name)
			}
		}},
		{"empty spec", "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: empty\n", func(t *testing.T, r Resiliency) {
			if r.Retries != nil || r.Apps != nil {
				t.Errorf("%+v", r)
			}
		}},
		{"built-in retries referenced and strengthened", `
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: builtin}
spec:
  policies:
    retries:
      DaprBuiltInServiceRetries: {policy: constant, duration: 2s, maxRetries: 5}
  targets:
    apps:
      a: {retry: DaprBuiltInActorRetries}
`, func(t *testing.T, r Resiliency) {
			if r.Retries[BuiltInServiceRetries].MaxRetries != 5 {
				t.Errorf("%+v", r.Retries)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse([]byte(tt.doc))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, r)
		})
	}
}

func equalRanges(a, b []CodeRange) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// withSpec builds a resource around a spec body indented by four spaces.
func withSpec(spec string) string {
	return "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: bad\nspec:\n" + spec
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string // a part of the error
	}{
		{"not yaml", "{{", "neither YAML nor JSON"},
		{"two documents", overviewDoc + "---\n" + matchingExample, "more than one document"},
		{"JSON with trailing content", schemaDoc + ` {"kind": "Component"}`, "after the first document"},
		{"repeated policy name", withSpec("  policies:\n    timeouts:\n      general: 5s\n      general: 1s\n"), "repeats a key"},
		{"wrong kind", "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: x}\n", `kind is "Component"`},
		{"wrong apiVersion", "apiVersion: dapr.io/v1\nkind: Resiliency\nmetadata: {name: x}\n", "apiVersion"},
		{"wrong version", "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nversion: v2\nmetadata: {name: x}\n", "version"},
		{"no name", "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\n", "metadata.name"},
		{"unknown top-level field", "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: x}\nspecs: {}\n", `unknown field "specs"`},
		{"unknown policies field", withSpec("  policies:\n    timeout: {a: 1s}\n"), `unknown field "timeout"`},
		{"unknown retry field", withSpec("  policies:\n    retries:\n      r: {policy: constant, maxRetry: 3}\n"), `unknown field "maxRetry"`},
		{"unknown breaker field", withSpec("  policies:\n    circuitBreakers:\n      c: {trips: x}\n"), `unknown field "trips"`},
		{"unknown target kind", withSpec("  targets:\n    services: {}\n"), `unknown field "services"`},
		{"unknown app target field", withSpec("  targets:\n    apps:\n      a: {timeouts: x}\n"), `unknown field "timeouts"`},
		{"component target not in inbound/outbound", withSpec("  policies:\n    retries:\n      r: {}\n  targets:\n    components:\n      c: {retry: r}\n"), `unknown field "retry"`},
		{"bad timeout", withSpec("  policies:\n    timeouts:\n      general: 5 seconds\n"), "spec.policies.timeouts.general"},
		{"negative timeout", withSpec("  policies:\n    timeouts:\n      general: -5s\n"), "spec.policies.timeouts.general"},
		{"negative milliseconds", withSpec("  policies:\n    timeouts:\n      general: \"-5\"\n"), "spec.policies.timeouts.general"},
		{"huge milliseconds", withSpec("  policies:\n    timeouts:\n      general: \"9223372036854775\"\n"), "out of range"},
		// daprd's field is a string too: an unquoted number is refused there.
		{"unquoted number timeout", withSpec("  policies:\n    timeouts:\n      general: 5000\n"), "timeouts"},
		{"bad retry duration", withSpec("  policies:\n    retries:\n      r: {duration: 5x}\n"), "spec.policies.retries.r.duration"},
		{"bad maxInterval", withSpec("  policies:\n    retries:\n      r: {policy: exponential, maxInterval: soon}\n"), "spec.policies.retries.r.maxInterval"},
		{"exponential without interval", withSpec("  policies:\n    retries:\n      r: {policy: exponential, maxInterval: 0s}\n"), "spec.policies.retries.r.maxInterval"},
		{"bad retry policy", withSpec("  policies:\n    retries:\n      r: {policy: linear}\n"), "spec.policies.retries.r.policy"},
		{"maxRetries below -1", withSpec("  policies:\n    retries:\n      r: {maxRetries: -2}\n"), "spec.policies.retries.r.maxRetries"},
		{"http code out of range", withSpec("  policies:\n    retries:\n      r: {matching: {httpStatusCodes: \"600\"}}\n"), "spec.policies.retries.r.matching.httpStatusCodes"},
		{"http range backwards", withSpec("  policies:\n    retries:\n      r: {matching: {httpStatusCodes: \"599-500\"}}\n"), "ends before it starts"},
		{"http code not a number", withSpec("  policies:\n    retries:\n      r: {matching: {httpStatusCodes: \"5xx\"}}\n"), "httpStatusCodes"},
		{"http code with a space", withSpec("  policies:\n    retries:\n      r: {matching: {httpStatusCodes: \"500, 502\"}}\n"), "httpStatusCodes"},
		{"http range of three", withSpec("  policies:\n    retries:\n      r: {matching: {httpStatusCodes: \"500-502-504\"}}\n"), "httpStatusCodes"},
		{"http list of commas", withSpec("  policies:\n    retries:\n      r: {matching: {httpStatusCodes: \",\"}}\n"), "lists no codes"},
		{"grpc code out of range", withSpec("  policies:\n    retries:\n      r: {matching: {gRPCStatusCodes: \"17\"}}\n"), "spec.policies.retries.r.matching.gRPCStatusCodes"},
		{"negative maxRequests", withSpec("  policies:\n    circuitBreakers:\n      c: {maxRequests: -1}\n"), "spec.policies.circuitBreakers.c.maxRequests"},
		{"bad breaker timeout", withSpec("  policies:\n    circuitBreakers:\n      c: {timeout: forever}\n"), "spec.policies.circuitBreakers.c.timeout"},
		{"bad breaker interval", withSpec("  policies:\n    circuitBreakers:\n      c: {interval: -1s}\n"), "spec.policies.circuitBreakers.c.interval"},
		{"trip syntax error", withSpec("  policies:\n    circuitBreakers:\n      c: {trip: consecutiveFailures >}\n"), "spec.policies.circuitBreakers.c.trip"},
		{"trip unknown count", withSpec("  policies:\n    circuitBreakers:\n      c: {trip: consecutiveFailure > 5}\n"), "consecutiveFailure"},
		{"trip not boolean", withSpec("  policies:\n    circuitBreakers:\n      c: {trip: consecutiveFailures + 1}\n"), "want a boolean"},
		{"trip too long", withSpec("  policies:\n    circuitBreakers:\n      c: {trip: \"" + strings.Repeat("requests > 1 || ", 100) + "true\"}\n"), "longer than"},
		{"undefined timeout", withSpec("  targets:\n    apps:\n      appB: {timeout: general}\n"), `spec.targets.apps.appB.timeout names "general"`},
		{"undefined retry", withSpec("  policies:\n    timeouts: {general: 5s}\n  targets:\n    apps:\n      appB: {timeout: general, retry: important}\n"), `spec.targets.apps.appB.retry names "important"`},
		{"undefined breaker", withSpec("  targets:\n    apps:\n      appB: {circuitBreaker: simpleCB}\n"), `spec.targets.apps.appB.circuitBreaker names "simpleCB"`},
		{"timeout name used as retry", withSpec("  policies:\n    timeouts: {general: 5s}\n  targets:\n    apps:\n      appB: {retry: general}\n"), `retry names "general"`},
		{"undefined actor policy", withSpec("  targets:\n    actors:\n      A: {retry: r}\n"), "spec.targets.actors.A.retry"},
		{"undefined component policy", withSpec("  targets:\n    components:\n      s: {outbound: {timeout: t}}\n"), "spec.targets.components.s.outbound.timeout"},
		{"actor breaker without scope", withSpec("  policies:\n    circuitBreakers: {c: {}}\n  targets:\n    actors:\n      A: {circuitBreaker: c}\n"), "circuitBreakerScope is required"},
		{"actor bad scope", withSpec("  targets:\n    actors:\n      A: {circuitBreakerScope: all}\n"), "circuitBreakerScope"},
		{"bad target app id", withSpec("  targets:\n    apps:\n      \"bad app\": {}\n"), "spec.targets.apps"},
		{"bad scope", "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: x}\nscopes: [\"-x\"]\n", "scopes"},
		{"empty policy name", withSpec("  policies:\n    timeouts: {\"\": 5s}\n"), "empty name"},
		{"redefine protected built-in", withSpec("  policies:\n    retries:\n      DaprBuiltInActorNotFoundRetries: {maxRetries: 10}\n"), "cannot be redefined"},
		{"weaken an unlimited built-in", withSpec("  policies:\n    retries:\n      DaprBuiltInActorReminderRetries: {maxRetries: 0}\n"), "use at least 3"},
		{"weaken built-in", withSpec("  policies:\n    retries:\n      DaprBuiltInServiceRetries: {maxRetries: 1}\n"), "weaken"},
		{"negative cache size", withSpec("  targets:\n    apps:\n      a: {circuitBreakerCacheSize: -1}\n"), "circuitBreakerCacheSize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", r)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestForApp(t *testing.T) {
	overview := mustParse(t, overviewDoc)
	defaults := mustParse(t, defaultsDoc)
	onlyTimeout := mustParse(t, withSpec("  policies:\n    timeouts: {t: 2s}\n    retries: {DefaultRetryPolicy: {maxRetries: 9}}\n  targets:\n    apps:\n      a: {timeout: t}\n"))
	strongBuiltIn := mustParse(t, withSpec("  policies:\n    retries:\n      DaprBuiltInServiceRetries: {duration: 2s, maxRetries: 7}\n"))
	defaultTimeoutOnly := mustParse(t, withSpec("  policies:\n    timeouts: {DefaultTimeoutPolicy: 3s, DefaultAppTimeoutPolicy: 4s}\n    circuitBreakers: {DefaultCircuitBreakerPolicy: {}}\n"))

	tests := []struct {
		name                    string
		r                       Resiliency
		app                     string
		timeout                 time.Duration
		retry, breaker          string
		maxRetries              int
		connectOnly, hasBreaker bool
	}{
		{"named target", overview, "appB", 5 * time.Second, "important", "simpleCB", 30, false, true},
		{"no resource: built-in", Resiliency{}, "x", 0, BuiltInServiceRetries, "", 3, true, false},
		{"untargeted app: built-in", overview, "appC", 0, BuiltInServiceRetries, "", 3, true, false},
		{"named target beats defaults", defaults, "appA", 0, "fastRetries", "", 3, false, false},
		{"DefaultAppRetryPolicy before DefaultRetryPolicy", defaults, "appC", 0, DefaultAppRetryPolicy, "", 5, false, false},
		{"a named target takes only what it names", onlyTimeout, "a", 2 * time.Second, "", "", 0, false, false},
		{"DefaultRetryPolicy for the others", onlyTimeout, "b", 0, DefaultRetryPolicy, "", 9, false, false},
		{"redefined built-in", strongBuiltIn, "x", 0, BuiltInServiceRetries, "", 7, true, false},
		{"default timeout and breaker", defaultTimeoutOnly, "x", 4 * time.Second, BuiltInServiceRetries, DefaultCircuitBreakerPolicy, 3, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.r.ForApp(tt.app)
			if p.App != tt.app || p.Timeout != tt.timeout {
				t.Errorf("app %q timeout %v; want %q %v", p.App, p.Timeout, tt.app, tt.timeout)
			}
			if p.RetryName != tt.retry {
				t.Errorf("retry %q; want %q", p.RetryName, tt.retry)
			}
			if tt.retry == "" {
				if p.Retry != nil {
					t.Errorf("retry %+v; want none", p.Retry)
				}
			} else if p.Retry == nil || p.Retry.MaxRetries != tt.maxRetries || p.Retry.connectOnly != tt.connectOnly {
				t.Errorf("retry %+v; want maxRetries %d connectOnly %v", p.Retry, tt.maxRetries, tt.connectOnly)
			}
			if (p.Breaker != nil) != tt.hasBreaker || p.BreakerName != tt.breaker {
				t.Errorf("breaker %v %q; want %v %q", p.Breaker != nil, p.BreakerName, tt.hasBreaker, tt.breaker)
			}
			if p.String() == "" {
				t.Error("empty String")
			}
		})
	}
}

func TestForAppBreakerState(t *testing.T) {
	r := mustParse(t, overviewDoc)
	bs := NewBreakers(newFakeClock())
	a, b := r, r
	a.Tenant, a.Breakers = "tenant-a", bs
	b.Tenant, b.Breakers = "tenant-b", bs

	first, again := a.ForApp("appB").Breaker, a.ForApp("appB").Breaker
	if first != again {
		t.Error("the same tenant and app got two breakers")
	}
	if other := b.ForApp("appB").Breaker; other == first {
		t.Error("two tenants share a breaker")
	}
	if own1, own2 := r.ForApp("appB").Breaker, r.ForApp("appB").Breaker; own1 == own2 {
		t.Error("without a registry, policies share a breaker")
	}
	if bs.Len() != 2 {
		t.Errorf("registry holds %d breakers; want 2", bs.Len())
	}
	// A changed policy replaces the breaker.
	old := a.ForApp("appB").Breaker
	changed := mustParse(t, strings.Replace(overviewDoc, "consecutiveFailures >= 5", "consecutiveFailures >= 2", 1))
	changed.Tenant, changed.Breakers = "tenant-a", bs
	if changed.ForApp("appB").Breaker == old {
		t.Error("a changed policy kept the old breaker")
	}
	bs.Forget("tenant-a")
	if bs.Len() != 1 {
		t.Errorf("after Forget the registry holds %d breakers; want 1", bs.Len())
	}
}

func TestMerge(t *testing.T) {
	base := mustParse(t, withSpec("  policies:\n    timeouts: {general: 5s}\n    retries: {r: {maxRetries: 1}}\n  targets:\n    apps:\n      a: {timeout: general, retry: r}\n"))
	override := mustParse(t, "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: over}\nscopes: [caller1]\nspec:\n  policies:\n    timeouts: {general: 1s}\n  targets:\n    apps:\n      b: {timeout: general}\n")
	base.Tenant = "t"
	bs := NewBreakers(nil)
	override.Breakers = bs

	m := Merge("caller1", base, override)
	if m.Timeouts["general"] != time.Second || m.Retries["r"].MaxRetries != 1 || len(m.Apps) != 2 {
		t.Errorf("merged for caller1: %+v", m)
	}
	if m.Tenant != "t" || m.Breakers != bs {
		t.Errorf("merged tenant %q breakers %p", m.Tenant, m.Breakers)
	}
	if got := m.ForApp("a").Timeout; got != time.Second {
		t.Errorf("app a timeout %v; want the later resource's 1s", got)
	}
	m = Merge("caller2", base, override)
	if m.Timeouts["general"] != 5*time.Second || len(m.Apps) != 1 {
		t.Errorf("merged for caller2 (out of the override's scope): %+v", m)
	}
	if base.Timeouts["general"] != 5*time.Second {
		t.Error("Merge modified its input")
	}
	if !base.InScope("anyone") || override.InScope("caller2") || !override.InScope("caller1") {
		t.Error("InScope")
	}
}

func mustParse(t *testing.T, doc string) Resiliency {
	t.Helper()
	r, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return r
}
