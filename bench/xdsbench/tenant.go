package main

import (
	"fmt"

	"github.com/blockgate/blockgate/auth/authpolicy"
	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
	"github.com/blockgate/blockgate/xds"
)

// benchTenant is the one tenant of the benchmark.
const benchTenant tenants.ID = "bench"

// changedApp is the app whose instances the changes add to: no policy
// restricts it, so every node calls it directly and has its endpoints.
const changedApp = 0

// appPort is every node's APP_PORT: each gets an inbound listener, as a
// sidecar next to an app does.
const appPort = 8080

// maxApps bounds -apps: the instances' addresses are 10.<1+i/256>.<i%256>.x.
const maxApps = 256 * 200

// maxChanges bounds -changes: each adds an address 10.a.b.<3+c> to the
// changed app.
const maxChanges = 250

// appName is the id of the i-th app.
func appName(i int) string { return fmt.Sprintf("app-%03d", i) }

// instanceAddr is the address of instance j of app i, a private IPv4 one
// so that the sidecars' clusters are EDS.
func instanceAddr(i, j int) string {
	return fmt.Sprintf("http://10.%d.%d.%d:%d", 1+i/256, i%256, 1+j, appPort)
}

// restricted says whether app i has a policy of its own: one in five
// (indexes 4, 9, 14, ...) admits only the three apps before it, so that the
// nodes' configurations differ in their targets and RBAC rules.
func restricted(i int) bool { return i%5 == 4 }

// tenantConfig is the tenant's configuration after the first added
// changes: apps apps, each with 2 instances (its Endpoint and one more), the
// changed app with added more, and the access policy. Sidecars is left to
// the source, which takes it from the presence.
func tenantConfig(apps, added int, td string) (xds.TenantConfig, error) {
	cfg := xds.TenantConfig{Apps: make([]tenants.App, apps)}
	for i := range apps {
		a := tenants.App{
			Tenant:    benchTenant,
			ID:        appName(i),
			Endpoint:  instanceAddr(i, 0),
			Instances: []tenants.Instance{{ID: appName(i) + "-1", Endpoint: instanceAddr(i, 1)}},
		}
		if i == changedApp {
			for c := range added {
				a.Instances = append(a.Instances, tenants.Instance{ID: fmt.Sprintf("%s-%d", a.ID, 2+c), Endpoint: instanceAddr(i, 2+c)})
			}
		}
		cfg.Apps[i] = a
	}
	policy, err := policySet(apps, td)
	if err != nil {
		return xds.TenantConfig{}, err
	}
	cfg.Policy = policy
	return cfg, nil
}

// endpointsAfter is how many endpoints the changed app has after added
// changes.
func endpointsAfter(added int) int { return 2 + added }

// defaultACL is the tenant's default access control: every call allowed.
const defaultACL = `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: default-acl}
spec:
  accessControl:
    defaultAction: allow
`

// policySet is the tenant's access policy: the default configuration, and
// for each restricted app one that denies every caller but the three apps
// before it.
func policySet(apps int, td string) (*authpolicy.Set, error) {
	recs := []authpolicy.Record{{Tenant: benchTenant, Name: "default-acl", Document: []byte(defaultACL)}}
	for i := range apps {
		if !restricted(i) {
			continue
		}
		doc := fmt.Sprintf("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: %s-acl}\nspec:\n  accessControl:\n    defaultAction: deny\n    policies:\n", appName(i))
		for c := max(0, i-3); c < i; c++ {
			doc += fmt.Sprintf("    - appId: %s\n      defaultAction: allow\n", appName(c))
		}
		recs = append(recs, authpolicy.Record{Tenant: benchTenant, Name: appName(i) + "-acl", Apps: []string{appName(i)}, Document: []byte(doc)})
	}
	return authpolicy.NewSet(benchTenant, td, false, recs)
}

// joinToken is the join token of app i's nodes: one per app, as the
// registry issues them.
func joinToken(i int) string { return tenantspg.JoinTokenPrefix + "xdsbench-" + appName(i) }

// nodeSpec is one simulated node: its app and its node id.
type nodeSpec struct {
	app int
	id  string
}

// nodeSpecs spreads n nodes over apps apps, round robin: node k is
// instance n<k> of app k mod apps.
func nodeSpecs(n, apps int) []nodeSpec {
	out := make([]nodeSpec, n)
	for k := range n {
		a := k % apps
		out[k] = nodeSpec{app: a, id: xds.NodeID(benchTenant, appName(a), fmt.Sprintf("n%05d", k))}
	}
	return out
}
