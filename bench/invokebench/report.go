package main

import (
	"fmt"
	"os"

	"github.com/blockgate/blockgate/bench/benchkit"
)

// results is everything measured, as written by -json.
type results struct {
	Env      benchkit.Environment `json:"environment"`
	Rate     float64              `json:"rate"`
	Seconds  float64              `json:"seconds_per_phase"`
	Workers  int                  `json:"workers"`
	Rounds   int                  `json:"rounds"`
	Protos   []*protoResult       `json:"protocols"`
	Verdicts []verdict            `json:"verdicts"`
}

// protoResult is one protocol's two sides.
type protoResult struct {
	Proto        string           `json:"protocol"`
	DirectLabel  string           `json:"direct_label"`
	GatewayLabel string           `json:"gateway_label"`
	DirectRounds []benchkit.Stats `json:"direct_rounds"`
	GWRounds     []benchkit.Stats `json:"gateway_rounds"`
	Direct       benchkit.Stats   `json:"direct"`
	Gateway      benchkit.Stats   `json:"gateway"`
	// Added is gateway minus direct, in ms, from the medians.
	AddedP50 float64 `json:"added_p50_ms"`
	AddedP90 float64 `json:"added_p90_ms"`
	AddedP99 float64 `json:"added_p99_ms"`
}

type verdict struct {
	Goal string  `json:"goal"`
	Got  float64 `json:"got_ms"`
	Pass bool    `json:"pass"`
}

func newResults(cfg config, env benchkit.Environment) *results {
	return &results{Env: env, Rate: cfg.rate, Seconds: cfg.duration.Seconds(), Workers: cfg.workers, Rounds: cfg.rounds}
}

func (r *results) add(s side, st benchkit.Stats) {
	var p *protoResult
	for _, q := range r.Protos {
		if q.Proto == s.proto {
			p = q
		}
	}
	if p == nil {
		p = &protoResult{Proto: s.proto}
		r.Protos = append(r.Protos, p)
	}
	if s.name == "direct" {
		p.DirectLabel, p.DirectRounds = s.label, append(p.DirectRounds, st)
	} else {
		p.GatewayLabel, p.GWRounds = s.label, append(p.GWRounds, st)
	}
}

func (r *results) finish() {
	for _, p := range r.Protos {
		p.Direct, p.Gateway = benchkit.MedianStats(p.DirectRounds), benchkit.MedianStats(p.GWRounds)
		p.AddedP50 = p.Gateway.P50Ms - p.Direct.P50Ms
		p.AddedP90 = p.Gateway.P90Ms - p.Direct.P90Ms
		p.AddedP99 = p.Gateway.P99Ms - p.Direct.P99Ms
		r.Verdicts = append(r.Verdicts,
			verdict{fmt.Sprintf("%s: gateway adds ≤ %.1f ms at p50", p.Proto, goalAddedP50), p.AddedP50, p.AddedP50 <= goalAddedP50},
			verdict{fmt.Sprintf("%s: gateway adds ≤ %.0f ms at p99", p.Proto, goalAddedP99), p.AddedP99, p.AddedP99 <= goalAddedP99})
	}
}

func (r *results) print() {
	w := os.Stdout
	fmt.Fprintf(w, "\nservice invocation at %s req/s, open loop, %gs per phase, %d workers, median of %d round(s)\n\n",
		benchkit.Thousands(r.Rate), r.Seconds, r.Workers, r.Rounds)
	lw := len("side")
	for _, p := range r.Protos {
		lw = max(lw, len(p.DirectLabel), len(p.GatewayLabel))
	}
	fmt.Fprintf(w, "%s  %7s  %7s  %7s  %7s  %7s  %7s\n", benchkit.Pad("side", lw), "req/s", "p50", "p90", "p99", "p99.9", "max")
	row := func(label string, s benchkit.Stats) {
		fmt.Fprintf(w, "%s  %7s  %7s  %7s  %7s  %7s  %7s\n", benchkit.Pad(label, lw), benchkit.Thousands(s.OpsPerSec),
			benchkit.Ms(s.P50Ms), benchkit.Ms(s.P90Ms), benchkit.Ms(s.P99Ms), benchkit.Ms(s.P999Ms), benchkit.Ms(s.MaxMs))
	}
	for _, p := range r.Protos {
		row(p.DirectLabel, p.Direct)
		row(p.GatewayLabel, p.Gateway)
	}

	fmt.Fprintf(w, "\nadded by the gateway (gateway minus direct)\n\n%-8s  %8s  %8s  %8s\n", "protocol", "p50", "p90", "p99")
	for _, p := range r.Protos {
		fmt.Fprintf(w, "%-8s  %+7.3fms  %+7.3fms  %+7.3fms\n", p.Proto, p.AddedP50, p.AddedP90, p.AddedP99)
	}
	for _, p := range r.Protos {
		if min(p.AddedP50, p.AddedP90, p.AddedP99) < 0 {
			fmt.Fprintf(w, "note: %s direct was slower than through the gateway at some percentile: that is noise\n"+
				"(other load during the direct phase), and the verdicts on it mean nothing\n", p.Proto)
		}
	}
	fmt.Fprintf(w, "(Dapr publishes +%.2f ms p50 and +%.2f ms p99 for its sidecars at 1,000 rps, for context)\n",
		daprAddedP50, daprAddedP99)

	var rows []benchkit.CPURow
	var cpus []*benchkit.CPUStats
	for _, p := range r.Protos {
		rows = append(rows, benchkit.CPURow{Name: p.Proto, Side: "direct", CPU: p.Direct.CPU},
			benchkit.CPURow{Name: p.Proto, Side: "gateway", CPU: p.Gateway.CPU})
		cpus = append(cpus, p.Direct.CPU, p.Gateway.CPU)
	}
	benchkit.PrintCPUTable(w, "CPU time per request, µs (client includes the target app, which runs in this process)", "protocol", rows)
	benchkit.PrintBusyNote(w, benchkit.OtherShare(cpus...))

	fmt.Fprintf(w, "\nverdicts:\n")
	for _, v := range r.Verdicts {
		res := "FAIL"
		if v.Pass {
			res = "PASS"
		}
		fmt.Fprintf(w, "  %-38s %s (%+.3f ms)\n", v.Goal, res, v.Got)
	}
}
