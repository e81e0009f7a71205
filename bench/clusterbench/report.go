package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/blockgate/blockgate/bench/benchkit"
)

// phaseStats is one side of one test in one round.
type phaseStats struct {
	benchkit.Stats
	// NodeGatewayUsPerOp is each gateway node's CPU time (with its NATS
	// server) per operation of the whole deployment, node-1 first: their
	// sum is CPU.GatewayUsPerOp.
	NodeGatewayUsPerOp []float64 `json:"node_gateway_us_per_op,omitempty"`
}

// newPhaseStats adds each node's CPU seconds, as CPU time per operation.
func newPhaseStats(st benchkit.Stats, nodeSeconds []float64) phaseStats {
	ps := phaseStats{Stats: st}
	if st.CPU != nil && st.Ops > 0 {
		for _, sec := range nodeSeconds {
			ps.NodeGatewayUsPerOp = append(ps.NodeGatewayUsPerOp, sec*1e6/float64(st.Ops))
		}
	}
	return ps
}

// sideResult is one side of a test over all rounds.
type sideResult struct {
	Side   string         `json:"side"`
	Stream *streamCheck   `json:"stream,omitempty"`
	Median benchkit.Stats `json:"median"`
	// NodeGatewayUsPerOp are the medians of the rounds' per-node CPU.
	NodeGatewayUsPerOp []float64    `json:"node_gateway_us_per_op,omitempty"`
	Rounds             []phaseStats `json:"rounds"`
}

// testResult compares a test's two sides.
type testResult struct {
	Test  string        `json:"test"`
	Sides [2]sideResult `json:"sides"`
	// Ratio is the median of the rounds' throughput ratios, the second
	// side's over the first's: 3 nodes / 1 node, or R3 / R1.
	Ratio       float64   `json:"ratio"`
	RoundRatios []float64 `json:"round_ratios"`
	// CPUBoundRatio, for the gateway tests, estimates 3 nodes / 1 node if
	// each node had cores of its own and only the gateways' CPU limited
	// them: one node's gateway CPU per operation over the busiest of the
	// three nodes' CPU per operation of the cluster. Not measured.
	CPUBoundRatio float64 `json:"cpu_bound_ratio,omitempty"`
}

type environment struct {
	benchkit.Environment
	NATSServer string `json:"nats_server"`
	// Load averages (1, 5, 15 minutes) when the command started, before
	// the first measured phase (after the setup) and after the last.
	LoadStart  []float64 `json:"load_average_start,omitempty"`
	LoadBefore []float64 `json:"load_average_before,omitempty"`
	LoadAfter  []float64 `json:"load_average_after,omitempty"`
}

type reportConfig struct {
	Duration string `json:"duration"`
	Workers  int    `json:"workers"`
	Rounds   int    `json:"rounds"`
	Keys     int    `json:"keys"`
	Size     int    `json:"size"`
	Nodes    int    `json:"cluster_nodes"`
}

// report is the whole result, as printed and as written by -json.
type report struct {
	Time        time.Time    `json:"time"`
	Config      reportConfig `json:"config"`
	Environment environment  `json:"environment"`
	Tests       []testResult `json:"tests"`
	Notes       []string     `json:"notes"`
}

// Notes every report carries.
const (
	noteSharedCores = "this machine's %d CPUs run the clients, every gateway node, every NATS server and Postgres " +
		"together, so %d nodes cannot serve more than one here: the 3-node/1-node ratios show what clustering costs " +
		"(routes, replication, more processes on the same cores), not the scale-out of %d machines. " +
		"The CPU time per operation is what carries over; cpu-bound estimates it for nodes with cores of their own"
	noteR3 = "the gateway gives a tenant's stream min(3, cluster size) replicas, with no way to choose, so the " +
		"gateway's publish compares 1 node with R1 against 3 nodes with R3, which changes both at once; " +
		"the jetstream test is the replication cost alone: nats.go on the same 3-node cluster, R1 against R3"
)

func newReport(cfg config, env environment, tests []test, res map[string]*[2][]phaseStats) *report {
	r := &report{
		Time: time.Now().UTC().Truncate(time.Second),
		Config: reportConfig{Duration: cfg.duration.String(), Workers: cfg.workers, Rounds: cfg.rounds,
			Keys: cfg.keys, Size: cfg.size, Nodes: clusterSize},
		Environment: env,
		Notes:       []string{fmt.Sprintf(noteSharedCores, env.CPUs, clusterSize, clusterSize), noteR3},
	}
	for _, t := range tests {
		rounds := res[t.name]
		tr := testResult{Test: t.name}
		for i, s := range t.sides {
			tr.Sides[i] = newSideResult(s, rounds[i])
		}
		for i := range min(len(rounds[0]), len(rounds[1])) {
			if a := rounds[0][i].OpsPerSec; a > 0 {
				tr.RoundRatios = append(tr.RoundRatios, rounds[1][i].OpsPerSec/a)
			}
		}
		tr.Ratio = benchkit.Median(tr.RoundRatios)
		if t.name != testJetStream {
			tr.CPUBoundRatio = cpuBoundRatio(tr.Sides[0], tr.Sides[1])
		}
		r.Tests = append(r.Tests, tr)
	}
	return r
}

func newSideResult(s side, rounds []phaseStats) sideResult {
	sr := sideResult{Side: s.name, Rounds: rounds}
	if s.check.Stream != "" {
		c := s.check
		sr.Stream = &c
	}
	all := make([]benchkit.Stats, len(rounds))
	for i, ps := range rounds {
		all[i] = ps.Stats
	}
	sr.Median = benchkit.MedianStats(all)
	sr.NodeGatewayUsPerOp = medianNodes(rounds)
	return sr
}

// medianNodes is the median of each node's CPU per operation over the
// rounds, nil unless every round has it.
func medianNodes(rounds []phaseStats) []float64 {
	if len(rounds) == 0 {
		return nil
	}
	n := len(rounds[0].NodeGatewayUsPerOp)
	for _, ps := range rounds {
		if len(ps.NodeGatewayUsPerOp) != n || n == 0 {
			return nil
		}
	}
	out := make([]float64, n)
	for i := range out {
		xs := make([]float64, len(rounds))
		for j, ps := range rounds {
			xs[j] = ps.NodeGatewayUsPerOp[i]
		}
		out[i] = benchkit.Median(xs)
	}
	return out
}

// cpuBoundRatio is one node's gateway CPU per operation over the busiest
// node's of the cluster: how much more the cluster would serve than one
// node if each node had the same cores of its own and the gateways' CPU
// were the limit. 0 without CPU numbers.
func cpuBoundRatio(one, cluster sideResult) float64 {
	if one.Median.CPU == nil || len(cluster.NodeGatewayUsPerOp) == 0 {
		return 0
	}
	busiest := slices.Max(cluster.NodeGatewayUsPerOp)
	if busiest <= 0 {
		return 0
	}
	return one.Median.CPU.GatewayUsPerOp / busiest
}

// test returns the result of the named test, nil if it did not run.
func (r *report) test(name string) *testResult {
	for i := range r.Tests {
		if r.Tests[i].Test == name {
			return &r.Tests[i]
		}
	}
	return nil
}

// print writes the result tables and the notes.
func (r *report) print(w io.Writer) {
	env := r.Environment
	fmt.Fprintf(w, "\ncluster: 1 gateway node vs %d clustered nodes (replicated JetStream) over one Postgres %s\n",
		r.Config.Nodes, env.Postgres)
	rounds := "medians of %d rounds"
	if r.Config.Rounds == 1 {
		rounds = "%d round"
	}
	fmt.Fprintf(w, "%d closed-loop gRPC clients spread round-robin over the nodes, %d-byte JSON values; "+rounds+" of %s per phase\n",
		r.Config.Workers, r.Config.Size, r.Config.Rounds, r.Config.Duration)
	fmt.Fprintf(w, "%d CPUs shared by everything; load average %s at the start, %s before measuring, %s after\n",
		env.CPUs, formatLoad(env.LoadStart), formatLoad(env.LoadBefore), formatLoad(env.LoadAfter))
	fmt.Fprintf(w, "\nNOTE: %d cores shared by every process: %d nodes cannot scale out on this machine. The ratios below\n"+
		"show the overhead of clustering, not the scale-out of a real deployment; read the CPU per operation\n"+
		"(and the cpu-bound estimate) to extrapolate.\n", env.CPUs, r.Config.Nodes)

	fmt.Fprintf(w, "\n%-9s  %-7s  %9s  %-19s  %s\n", "test", "side", "ops/s", "p50 / p99", "stream")
	for _, t := range r.Tests {
		for _, s := range t.Sides {
			stream := ""
			if s.Stream != nil {
				stream = fmt.Sprintf("%s R%d on %s", s.Stream.Stream, s.Stream.Replicas, s.Stream.Placement)
			}
			fmt.Fprintf(w, "%-9s  %-7s  %9s  %s  %s\n", t.Test, s.Side, benchkit.Thousands(s.Median.OpsPerSec),
				benchkit.Pad(benchkit.Ms(s.Median.P50Ms)+" / "+benchkit.Ms(s.Median.P99Ms), 19), stream)
		}
	}

	fmt.Fprintf(w, "\n%-9s  %-17s  %8s  %-20s  %s\n", "test", "ratio", "measured", "per round", "cpu-bound estimate")
	for _, t := range r.Tests {
		what := t.Sides[1].Side + " / " + t.Sides[0].Side
		est := ""
		if t.CPUBoundRatio > 0 {
			est = fmt.Sprintf("%.2f", t.CPUBoundRatio)
		}
		var per []string
		for _, x := range t.RoundRatios {
			per = append(per, fmt.Sprintf("%.2f", x))
		}
		fmt.Fprintf(w, "%-9s  %-17s  %8.2f  %-20s  %s\n", t.Test, what, t.Ratio, strings.Join(per, " "), est)
	}

	var rows []benchkit.CPURow
	var phases []*benchkit.CPUStats
	for _, t := range r.Tests {
		for _, s := range t.Sides {
			rows = append(rows, benchkit.CPURow{Name: t.Test, Side: s.Side, CPU: s.Median.CPU})
			for _, ps := range s.Rounds {
				phases = append(phases, ps.CPU)
			}
		}
	}
	benchkit.PrintCPUTable(w, "CPU time per operation in µs (client: this process; gateway: every node of the deployment, "+
		"with its NATS server;\nother: the rest of the machine, the other deployment's idle nodes included)", "test", rows)
	if r.Tests[0].Sides[1].NodeGatewayUsPerOp != nil {
		fmt.Fprintf(w, "\ngateway CPU per operation of the cluster, by node, in µs:\n")
		for _, t := range r.Tests {
			if n := t.Sides[1].NodeGatewayUsPerOp; n != nil {
				var parts []string
				for i, x := range n {
					parts = append(parts, fmt.Sprintf("node-%d %.0f", i+1, x))
				}
				fmt.Fprintf(w, "  %-9s  %-7s  %s\n", t.Test, t.Sides[1].Side, strings.Join(parts, ", "))
			}
		}
	}
	benchkit.PrintBusyNote(w, benchkit.OtherShare(phases...))

	r.printSummary(w)
	fmt.Fprintln(w)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// printSummary states the three answers: the scale-out ratio of state
// writes and of publishes, and the R3 vs R1 cost.
func (r *report) printSummary(w io.Writer) {
	fmt.Fprintln(w)
	for _, name := range []string{testSave, testPublish} {
		t := r.test(name)
		if t == nil {
			continue
		}
		fmt.Fprintf(w, "scale-out, %s: 3 nodes reached %.2f× one node's throughput here", name, t.Ratio)
		if t.CPUBoundRatio > 0 {
			one, three := t.Sides[0].Median.CPU, t.Sides[1].Median.CPU
			fmt.Fprintf(w, "; with cores of their own the gateways' CPU would allow about %.2f×\n"+
				"  (gateway µs/op: one node %.0f, the cluster %.0f in all, busiest node %.0f; Postgres %.0f µs/op on one server either way)",
				t.CPUBoundRatio, one.GatewayUsPerOp, three.GatewayUsPerOp, slices.Max(t.Sides[1].NodeGatewayUsPerOp),
				three.PostgresUsPerOp)
		}
		fmt.Fprintln(w)
	}
	if t := r.test(testJetStream); t != nil {
		r1, r3 := t.Sides[0].Median, t.Sides[1].Median
		fmt.Fprintf(w, "R3 vs R1, raw JetStream on the 3-node cluster: R3 reached %.2f× R1's throughput, p50 %s → %s",
			t.Ratio, benchkit.Ms(r1.P50Ms), benchkit.Ms(r3.P50Ms))
		if r1.CPU != nil && r3.CPU != nil {
			fmt.Fprintf(w, ", NATS servers' CPU %.0f → %.0f µs/msg", r1.CPU.GatewayUsPerOp, r3.CPU.GatewayUsPerOp)
		}
		fmt.Fprintln(w)
	}
	if t := r.test(testPublish); t != nil {
		fmt.Fprintf(w, "R3 vs R1 through the gateway: 3 nodes with R3 reached %.2f× 1 node with R1 (nodes and replicas both change)\n", t.Ratio)
	}
}

// formatLoad formats load averages as "0.32 1.02 1.58", or "?".
func formatLoad(la []float64) string {
	if len(la) == 0 {
		return "?"
	}
	parts := make([]string, len(la))
	for i, x := range la {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " ")
}
