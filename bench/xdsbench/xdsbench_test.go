package main

import (
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/blockgate/blockgate/xds"
)

func TestValidate(t *testing.T) {
	ok := config{nodes: 1000, changes: 5, apps: 50, streamsPerConn: 1, timeout: time.Minute}
	tests := []struct {
		name    string
		change  func(*config)
		wantErr bool
	}{
		{"defaults", func(*config) {}, false},
		{"shared connections", func(c *config) { c.streamsPerConn = serverMaxStreams }, false},
		{"no nodes", func(c *config) { c.nodes = 0 }, true},
		{"no changes", func(c *config) { c.changes = 0 }, true},
		{"too many changes", func(c *config) { c.changes = maxChanges + 1 }, true},
		{"no apps", func(c *config) { c.apps = 0 }, true},
		{"more streams on a connection than the server allows", func(c *config) { c.streamsPerConn = serverMaxStreams + 1 }, true},
		{"no timeout", func(c *config) { c.timeout = 0 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.change(&c)
			if err := c.validate(); (err != nil) != tt.wantErr {
				t.Errorf("validate() = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestNodeSpecs(t *testing.T) {
	specs := nodeSpecs(7, 3)
	perApp := map[int]int{}
	seen := map[string]bool{}
	for _, s := range specs {
		tenant, app, _, err := xds.ParseNodeID(s.id)
		if err != nil {
			t.Fatalf("node id %q: %v", s.id, err)
		}
		if tenant != benchTenant || app != appName(s.app) {
			t.Errorf("node id %q is not of app %s of tenant %s", s.id, appName(s.app), benchTenant)
		}
		if seen[s.id] {
			t.Errorf("node id %q twice", s.id)
		}
		seen[s.id] = true
		perApp[s.app]++
	}
	if want := map[int]int{0: 3, 1: 2, 2: 2}; !equalMaps(perApp, want) {
		t.Errorf("nodes per app %v, want %v", perApp, want)
	}
}

func equalMaps(a, b map[int]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestTenantConfig(t *testing.T) {
	for _, added := range []int{0, 1, maxChanges} {
		cfg, err := tenantConfig(12, added, trustDomain.Name())
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Apps) != 12 || cfg.Policy == nil {
			t.Fatalf("%d apps, policy %v", len(cfg.Apps), cfg.Policy)
		}
		addrs := map[string]bool{}
		for i, a := range cfg.Apps {
			want := 2
			if i == changedApp {
				want = endpointsAfter(added)
			}
			if got := len(a.Endpoints()); got != want {
				t.Errorf("added %d: app %s has %d endpoints, want %d", added, a.ID, got, want)
			}
			for _, ep := range a.Endpoints() {
				if addrs[ep] {
					t.Errorf("endpoint %s twice", ep)
				}
				addrs[ep] = true
			}
		}
		def := cfg.Policy.For(appName(changedApp))
		if def == nil || restricted(changedApp) {
			t.Fatal("the changed app is restricted, or has no configuration")
		}
		for i := range 12 {
			if own := cfg.Policy.For(appName(i)) != def; own != restricted(i) {
				t.Errorf("app %s has a configuration of its own: %v, want %v", appName(i), own, restricted(i))
			}
		}
	}
}

func TestParseProc(t *testing.T) {
	status := []byte("Name:\txdsbench\nVmPeak:\t  900 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t7\n")
	if rss, peak := parseStatus(status); rss != 1<<20 || peak != 2<<20 {
		t.Errorf("parseStatus = %d, %d; want %d, %d", rss, peak, 1<<20, 2<<20)
	}
	if rss, peak := parseStatus([]byte("garbage")); rss != 0 || peak != 0 {
		t.Errorf("parseStatus(garbage) = %d, %d", rss, peak)
	}
	if got := parseLoadAvg([]byte("1.53 0.91 2.49 3/214 29864\n")); got != [3]float64{1.53, 0.91, 2.49} {
		t.Errorf("parseLoadAvg = %v", got)
	}
}

func TestSummarizeChange(t *testing.T) {
	refresh := time.Unix(100, 0)
	acks := []time.Time{refresh.Add(30 * time.Millisecond), refresh.Add(10 * time.Millisecond), {}, refresh.Add(20 * time.Millisecond)}
	before := [numKinds]int{kindEDS: 10, kindCDS: 4}
	after := [numKinds]int{kindEDS: 14, kindCDS: 4}
	c := summarizeChange(1, 3, refresh, acks, before, after, 4)
	if c.P50Ms != 20 || c.MaxMs != 30 {
		t.Errorf("p50 %v max %v, want 20 and 30", c.P50Ms, c.MaxMs)
	}
	if len(c.ResponsesPerNode) != 1 || c.ResponsesPerNode["EDS"] != 1 {
		t.Errorf("responses per node %v, want EDS 1", c.ResponsesPerNode)
	}
}

// TestMeasure runs the whole benchmark small, with the control plane in
// this process: the nodes must find every kind of resource the way Envoy
// would, and every change must reach every node over EDS alone.
func TestMeasure(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an xDS server")
	}
	cfg := config{nodes: 6, changes: 2, apps: 5, streamsPerConn: 4, timeout: time.Minute}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	served := make(chan error, 1)
	go func() {
		served <- serveControl(t.Context(), inR, outW, slog.New(slog.DiscardHandler))
		outW.Close()
	}()
	cp, err := connectControlPlane(inW, outR, cfg.apps, func() error {
		inW.Close()
		return <-served
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	res := newResults(cfg)
	if err := measure(t.Context(), cfg, cp, nil, res); err != nil {
		t.Fatal(err)
	}
	if err := cp.Close(); err != nil {
		t.Fatalf("stopping the control plane: %v", err)
	}

	for _, k := range kindNames {
		if _, ok := res.Connect.FirstAck[k]; !ok {
			t.Errorf("no node ACKed %s", k)
		}
	}
	if res.Connect.PerNode.MaxMs <= 0 || res.Connect.AllConfiguredMs < res.Connect.PerNode.MaxMs {
		t.Errorf("connect %+v", res.Connect)
	}
	if len(res.Changes) != cfg.changes {
		t.Fatalf("%d changes measured", len(res.Changes))
	}
	for _, c := range res.Changes {
		if c.MaxMs <= 0 || !slices.Equal(keys(c.ResponsesPerNode), []string{"EDS"}) || c.ResponsesPerNode["EDS"] != 1 {
			t.Errorf("change %+v: want one EDS response per node", c)
		}
	}
	if m := res.Memory; m.Connected.Goroutines <= m.Before.Goroutines || m.Connected.HeapAlloc == 0 {
		t.Errorf("memory %+v", m)
	}
}

func keys(m map[string]float64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
