package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/blockgate/blockgate/bench/benchkit"
)

// roundResult is one round of one operation.
type roundResult struct {
	Baseline benchkit.Stats `json:"baseline"`
	Gateway  benchkit.Stats `json:"gateway"`
	Ratio    float64        `json:"ratio"` // gateway / baseline throughput
}

// opResult is one operation over all rounds: medians, and the rounds.
type opResult struct {
	Op       string         `json:"op"`
	Baseline benchkit.Stats `json:"baseline"`
	Gateway  benchkit.Stats `json:"gateway"`
	Ratio    float64        `json:"ratio"`
	Rounds   []roundResult  `json:"rounds"`
}

type reportConfig struct {
	Duration   string `json:"duration"`
	Clients    int    `json:"clients"`
	Keys       int    `json:"keys"`
	ValueSize  int    `json:"value_size"`
	Rounds     int    `json:"rounds"`
	Client     string `json:"client"`
	SharedConn bool   `json:"shared_conn"`
	PoolConns  int    `json:"baseline_pool_max_conns"`
}

// report is the whole result, as printed and as written by -json.
type report struct {
	Time        time.Time            `json:"time"`
	Config      reportConfig         `json:"config"`
	Environment benchkit.Environment `json:"environment"`
	Operations  []opResult           `json:"operations"`
	Goal        float64              `json:"goal_ratio"`
	Pass        bool                 `json:"pass"`
	Verdict     string               `json:"verdict"`
}

func newReport(cfg config, env benchkit.Environment, ops []string, rounds map[string][]roundResult) *report {
	r := &report{
		Time: time.Now().UTC().Truncate(time.Second),
		Config: reportConfig{
			Duration: cfg.duration.String(), Clients: cfg.clients, Keys: cfg.keys, ValueSize: cfg.valueSize,
			Rounds: cfg.rounds, Client: cfg.client, SharedConn: cfg.sharedConn, PoolConns: poolMaxMin,
		},
		Environment: env,
		Goal:        goalRatio,
		Pass:        true,
	}
	var parts, short []string
	for _, op := range ops {
		rr := rounds[op]
		res := opResult{Op: op, Rounds: rr}
		var bs, gs []benchkit.Stats
		var ratios []float64
		for _, x := range rr {
			bs = append(bs, x.Baseline)
			gs = append(gs, x.Gateway)
			ratios = append(ratios, x.Ratio)
		}
		res.Baseline, res.Gateway, res.Ratio = benchkit.MedianStats(bs), benchkit.MedianStats(gs), benchkit.Median(ratios)
		r.Operations = append(r.Operations, res)
		parts = append(parts, fmt.Sprintf("%s %.0f%%", op, 100*res.Ratio))
		if res.Ratio < goalRatio {
			r.Pass = false
			short = append(short, op)
		}
	}
	if r.Pass {
		r.Verdict = fmt.Sprintf("PASS: the gateway reaches at least %.0f%% of raw pgx throughput (%s)",
			100*goalRatio, strings.Join(parts, ", "))
	} else {
		r.Verdict = fmt.Sprintf("FAIL: %s below the goal of %.0f%% of raw pgx throughput (%s)",
			strings.Join(short, " and "), 100*goalRatio, strings.Join(parts, ", "))
	}
	return r
}

// print writes the result tables and the verdict.
func (r *report) print(w io.Writer) {
	client := "Go SDK"
	if r.Config.Client == "raw" {
		client = "generated gRPC client"
	}
	conn := "one connection per client"
	if r.Config.SharedConn {
		conn = "one shared connection"
	}
	fmt.Fprintf(w, "\nstate API: gateway (gRPC, %s, %s) vs raw pgx, %d clients, %d keys, %d-byte JSON values\n",
		client, conn, r.Config.Clients, r.Config.Keys, r.Config.ValueSize)
	rounds := "medians of %d rounds"
	if r.Config.Rounds == 1 {
		rounds = "%d round"
	}
	fmt.Fprintf(w, rounds+" of %s per side and operation; %d CPUs shared by clients, gateway and Postgres %s\n\n",
		r.Config.Rounds, r.Config.Duration, r.Environment.CPUs, r.Environment.Postgres)
	fmt.Fprintf(w, "%-9s  %14s  %13s  %5s  %s  %s\n",
		"operation", "baseline ops/s", "gateway ops/s", "ratio", benchkit.Pad("baseline p50 / p99", 19), "gateway p50 / p99")
	for _, o := range r.Operations {
		fmt.Fprintf(w, "%-9s  %14s  %13s  %5.2f  %s  %s\n", o.Op,
			benchkit.Thousands(o.Baseline.OpsPerSec), benchkit.Thousands(o.Gateway.OpsPerSec), o.Ratio,
			benchkit.Pad(benchkit.Ms(o.Baseline.P50Ms)+" / "+benchkit.Ms(o.Baseline.P99Ms), 19),
			benchkit.Ms(o.Gateway.P50Ms)+" / "+benchkit.Ms(o.Gateway.P99Ms))
	}
	var rows []benchkit.CPURow
	var phases []*benchkit.CPUStats
	for _, o := range r.Operations {
		rows = append(rows, benchkit.CPURow{Name: o.Op, Side: "baseline", CPU: o.Baseline.CPU},
			benchkit.CPURow{Name: o.Op, Side: "gateway", CPU: o.Gateway.CPU})
		for _, rr := range o.Rounds {
			phases = append(phases, rr.Baseline.CPU, rr.Gateway.CPU)
		}
	}
	benchkit.PrintCPUTable(w, "CPU time per operation in µs (client: this process; other: the rest of the machine)", "operation", rows)
	benchkit.PrintBusyNote(w, benchkit.OtherShare(phases...))
	fmt.Fprintf(w, "\nratio: median of the rounds' gateway/baseline throughput; per round:")
	for _, o := range r.Operations {
		fmt.Fprintf(w, " %s", o.Op)
		for _, x := range o.Rounds {
			fmt.Fprintf(w, " %.2f", x.Ratio)
		}
		fmt.Fprint(w, ";")
	}
	fmt.Fprintf(w, "\nverdict: %s\n", r.Verdict)
}
