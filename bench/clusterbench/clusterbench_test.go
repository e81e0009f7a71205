package main

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/blockgate/blockgate/bench/benchkit"
)

func TestCombineNodes(t *testing.T) {
	tests := []struct {
		name  string
		first benchkit.CPUUsage
		nodes []float64
		want  benchkit.CPUUsage
	}{
		{
			name:  "one node",
			first: benchkit.CPUUsage{Client: 1, Gateway: 2, Postgres: 3, Other: 0.5},
			nodes: []float64{2},
			want:  benchkit.CPUUsage{Client: 1, Gateway: 2, Postgres: 3, Other: 0.5},
		},
		{
			name: "the other nodes move from other to gateway",
			// The machine was busy 1+2+3+4 = 10 s, of which nodes 2 and 3 took 2.5.
			first: benchkit.CPUUsage{Client: 1, Gateway: 2, Postgres: 3, Other: 4},
			nodes: []float64{2, 1.5, 1},
			want:  benchkit.CPUUsage{Client: 1, Gateway: 4.5, Postgres: 3, Other: 1.5},
		},
		{
			name:  "tick granularity never makes other negative",
			first: benchkit.CPUUsage{Client: 1, Gateway: 2, Other: 0.01},
			nodes: []float64{2, 0.5},
			want:  benchkit.CPUUsage{Client: 1, Gateway: 2.5, Other: 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := combineNodes(tt.first, tt.nodes)
			if math.Abs(got.Other-tt.want.Other) > 1e-9 || got.Client != tt.want.Client ||
				got.Gateway != tt.want.Gateway || got.Postgres != tt.want.Postgres {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseLoadavg(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []float64
		wantErr bool
	}{
		{name: "proc", in: "0.32 1.02 1.58 2/345 6789\n", want: []float64{0.32, 1.02, 1.58}},
		{name: "short", in: "0.32 1.02", wantErr: true},
		{name: "not a number", in: "x 1 2 3/4 5", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLoadavg([]byte(tt.in))
			if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
				t.Errorf("parseLoadavg(%q) = %v, %v", tt.in, got, err)
			}
		})
	}
}

func TestReport(t *testing.T) {
	phase := func(opsPerSec float64, gatewayUs float64, nodes ...float64) phaseStats {
		return phaseStats{
			Stats:              benchkit.Stats{Ops: 1000, OpsPerSec: opsPerSec, P50Ms: 1, P99Ms: 5, CPU: &benchkit.CPUStats{GatewayUsPerOp: gatewayUs}},
			NodeGatewayUsPerOp: nodes,
		}
	}
	tests := []test{
		{testSave, [2]side{{name: sideOne}, {name: sideThree}}},
		{testPublish, [2]side{{name: sideOne}, {name: sideThree}}},
		{testJetStream, [2]side{{name: sideR1}, {name: sideR3}}},
	}
	res := map[string]*[2][]phaseStats{
		testSave: {
			{phase(1000, 100, 100), phase(1200, 100, 100), phase(1100, 100, 100)},
			{phase(900, 120, 40, 50, 30), phase(1000, 120, 40, 45, 35), phase(800, 130, 40, 50, 40)},
		},
		testPublish: {
			{phase(4000, 100, 100), phase(4000, 100, 100), phase(4000, 100, 100)},
			{phase(2000, 200, 100, 50, 50), phase(1000, 200, 100, 50, 50), phase(3000, 200, 100, 50, 50)},
		},
		testJetStream: {
			{phase(20000, 30, 10, 10, 10), phase(20000, 30, 10, 10, 10), phase(20000, 30, 10, 10, 10)},
			{phase(10000, 60, 30, 15, 15), phase(12000, 60, 30, 15, 15), phase(8000, 60, 30, 15, 15)},
		},
	}
	cfg := config{duration: time.Second, workers: 18, rounds: 3, keys: 10, size: 64}
	r := newReport(cfg, environment{Environment: benchkit.Environment{CPUs: 2}}, tests, res)

	save, publish, js := r.test(testSave), r.test(testPublish), r.test(testJetStream)
	if want := []float64{0.9, 1000.0 / 1200, 800.0 / 1100}; !closeTo(save.RoundRatios, want) {
		t.Errorf("save round ratios %v, want %v", save.RoundRatios, want)
	}
	if save.Ratio != 1000.0/1200 {
		t.Errorf("save ratio %v, want the median %v", save.Ratio, 1000.0/1200)
	}
	// Busiest node: medians 40, 50, 35 → 50; one node 100 µs/op.
	if !closeTo(save.Sides[1].NodeGatewayUsPerOp, []float64{40, 50, 35}) || save.CPUBoundRatio != 2 {
		t.Errorf("save nodes %v, cpu-bound %v, want 2", save.Sides[1].NodeGatewayUsPerOp, save.CPUBoundRatio)
	}
	if publish.Ratio != 0.5 || publish.CPUBoundRatio != 1 {
		t.Errorf("publish ratio %v cpu-bound %v, want 0.5 and 1", publish.Ratio, publish.CPUBoundRatio)
	}
	if js.Ratio != 0.5 || js.CPUBoundRatio != 0 {
		t.Errorf("jetstream ratio %v cpu-bound %v, want 0.5 and none", js.Ratio, js.CPUBoundRatio)
	}

	var b strings.Builder
	r.print(&b)
	out := b.String()
	for _, want := range []string{
		"cannot scale out on this machine",
		"overhead of clustering, not the scale-out",
		"scale-out, save: 3 nodes reached 0.83× one node's throughput here; with cores of their own the gateways' CPU would allow about 2.00×",
		"R3 vs R1, raw JetStream on the 3-node cluster: R3 reached 0.50× R1's throughput",
		"nodes and replicas both change",
		"node-1 40, node-2 50, node-3 35",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
}

func TestMedianNodesNeedsEveryRound(t *testing.T) {
	rounds := []phaseStats{{NodeGatewayUsPerOp: []float64{1, 2, 3}}, {}}
	if got := medianNodes(rounds); got != nil {
		t.Errorf("medianNodes with a round without CPU = %v, want nil", got)
	}
}

func closeTo(got, want []float64) bool {
	return slices.EqualFunc(got, want, func(a, b float64) bool { return math.Abs(a-b) < 1e-9 })
}
