package main

import (
	"fmt"
	"os"

	"github.com/blockgate/blockgate/bench/benchkit"
)

// results is everything measured, as written by -json.
type results struct {
	Env     benchkit.Environment `json:"environment"`
	Rate    float64              `json:"rate"`
	Seconds float64              `json:"seconds_per_phase"`
	Slice   float64              `json:"seconds_per_turn"`
	Workers int                  `json:"workers"`
	Rounds  int                  `json:"rounds"`
	// KeepAwake: idle spinners kept the CPUs from halting (-keep-awake).
	KeepAwake bool           `json:"keep_awake"`
	Protos    []*protoResult `json:"protocols"`
	Verdicts  []verdict      `json:"verdicts"`
}

// protoResult is one protocol's sides: direct, bare proxy and gateway.
type protoResult struct {
	Proto string        `json:"protocol"`
	Sides []*sideResult `json:"sides"`
	// Added is gateway minus direct, from the medians: what the goals
	// judge. ProxyAdded is bare proxy minus direct (any extra process hop
	// on this machine) and OverProxy gateway minus bare proxy (the
	// gateway's own work).
	Added      added `json:"added_ms"`
	ProxyAdded added `json:"bare_proxy_added_ms"`
	OverProxy  added `json:"gateway_over_bare_proxy_ms"`
}

// sideResult is one side's rounds and their median.
type sideResult struct {
	Name   string           `json:"side"`
	Label  string           `json:"label"`
	Rounds []benchkit.Stats `json:"rounds"`
	Median benchkit.Stats   `json:"median"`
}

// added is a difference of latencies at three percentiles, in ms.
type added struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
}

func minus(a, b benchkit.Stats) added {
	return added{a.P50Ms - b.P50Ms, a.P90Ms - b.P90Ms, a.P99Ms - b.P99Ms}
}

type verdict struct {
	Goal string  `json:"goal"`
	Got  float64 `json:"got_ms"`
	Pass bool    `json:"pass"`
	// Noise: the gateway came out faster than the direct call, which
	// only the machine's own stalls can do; no verdict.
	Noise bool `json:"noise"`
}

func newVerdict(goal string, got, limit float64) verdict {
	return verdict{Goal: goal, Got: got, Pass: got >= 0 && got <= limit, Noise: got < 0}
}

func newResults(cfg config, env benchkit.Environment) *results {
	return &results{Env: env, Rate: cfg.rate, Seconds: cfg.duration.Seconds(), Slice: cfg.slice.Seconds(),
		Workers: cfg.workers, Rounds: cfg.rounds, KeepAwake: cfg.keepAwake}
}

func (r *results) proto(name string) *protoResult {
	for _, p := range r.Protos {
		if p.Proto == name {
			return p
		}
	}
	p := &protoResult{Proto: name}
	for _, s := range []string{sideDirect, sideProxy, sideGateway} {
		p.Sides = append(p.Sides, &sideResult{Name: s})
	}
	r.Protos = append(r.Protos, p)
	return p
}

func (p *protoResult) side(name string) *sideResult {
	for _, s := range p.Sides {
		if s.Name == name {
			return s
		}
	}
	panic("invokebench: unknown side " + name)
}

func (r *results) add(s side, st benchkit.Stats) {
	sr := r.proto(s.proto).side(s.name)
	sr.Label, sr.Rounds = s.label, append(sr.Rounds, st)
}

func (r *results) finish() {
	for _, p := range r.Protos {
		for _, s := range p.Sides {
			s.Median = benchkit.MedianStats(s.Rounds)
		}
		direct, proxy, gw := p.side(sideDirect).Median, p.side(sideProxy).Median, p.side(sideGateway).Median
		p.Added, p.ProxyAdded, p.OverProxy = minus(gw, direct), minus(proxy, direct), minus(gw, proxy)
		r.Verdicts = append(r.Verdicts,
			newVerdict(fmt.Sprintf("%s: gateway adds ≤ %.1f ms at p50", p.Proto, goalAddedP50), p.Added.P50, goalAddedP50),
			newVerdict(fmt.Sprintf("%s: gateway adds ≤ %.0f ms at p99", p.Proto, goalAddedP99), p.Added.P99, goalAddedP99))
	}
}

func (r *results) print() {
	w := os.Stdout
	fmt.Fprintf(w, "\nservice invocation at %s req/s, open loop, %gs per side in turns of %gs, %d workers, median of %d round(s)\n",
		benchkit.Thousands(r.Rate), r.Seconds, r.Slice, r.Workers, r.Rounds)
	if r.KeepAwake {
		fmt.Fprintf(w, "CPUs kept awake by idle spinners (-keep-awake): no virtual CPU halted\n")
	}
	fmt.Fprintln(w)
	lw := len("side")
	for _, p := range r.Protos {
		for _, s := range p.Sides {
			lw = max(lw, len(s.Label))
		}
	}
	fmt.Fprintf(w, "%s  %7s  %7s  %7s  %7s  %7s  %7s\n", benchkit.Pad("side", lw), "req/s", "p50", "p90", "p99", "p99.9", "max")
	for _, p := range r.Protos {
		for _, s := range p.Sides {
			m := s.Median
			fmt.Fprintf(w, "%s  %7s  %7s  %7s  %7s  %7s  %7s\n", benchkit.Pad(s.Label, lw), benchkit.Thousands(m.OpsPerSec),
				benchkit.Ms(m.P50Ms), benchkit.Ms(m.P90Ms), benchkit.Ms(m.P99Ms), benchkit.Ms(m.P999Ms), benchkit.Ms(m.MaxMs))
		}
	}

	fmt.Fprintf(w, "\nadded latency\n\n%-8s  %-30s  %9s  %9s  %9s\n", "protocol", "", "p50", "p90", "p99")
	for _, p := range r.Protos {
		for _, d := range []struct {
			what string
			a    added
		}{
			{"gateway minus direct", p.Added},
			{"bare proxy minus direct", p.ProxyAdded},
			{"gateway minus bare proxy", p.OverProxy},
		} {
			fmt.Fprintf(w, "%-8s  %-30s  %+7.3fms  %+7.3fms  %+7.3fms\n", p.Proto, d.what, d.a.P50, d.a.P90, d.a.P99)
		}
	}
	for _, p := range r.Protos {
		if min(p.Added.P50, p.Added.P90, p.Added.P99) < 0 {
			fmt.Fprintf(w, "note: %s direct was slower than through the gateway at some percentile: that is noise\n"+
				"(the machine stalled during direct turns more than during gateway ones), and the verdicts on it mean nothing\n", p.Proto)
		}
	}
	fmt.Fprintf(w, "(Dapr publishes +%.2f ms p50 and +%.2f ms p99 for its sidecars at 1,000 rps, for context)\n",
		daprAddedP50, daprAddedP99)

	var rows []benchkit.CPURow
	var cpus []*benchkit.CPUStats
	for _, p := range r.Protos {
		for _, s := range p.Sides {
			rows = append(rows, benchkit.CPURow{Name: p.Proto, Side: s.Name, CPU: s.Median.CPU})
			cpus = append(cpus, s.Median.CPU)
		}
	}
	benchkit.PrintCPUTable(w, "CPU time per request, µs (client includes the target app, which runs in this process;\n"+
		"on the proxy rows the gateway column is the bare proxy process)", "protocol", rows)
	benchkit.PrintBusyNote(w, benchkit.OtherShare(cpus...))

	fmt.Fprintf(w, "\nverdicts:\n")
	for _, v := range r.Verdicts {
		res := "FAIL"
		switch {
		case v.Noise:
			res = "NO VERDICT (noise)"
		case v.Pass:
			res = "PASS"
		}
		fmt.Fprintf(w, "  %-38s %s (%+.3f ms)\n", v.Goal, res, v.Got)
	}
}
