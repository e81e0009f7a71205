package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/blockgate/blockgate/bench/benchkit"
)

// acceptedTolerance is how far from its limit the noisy tenant's accepted
// rate may be for the verdict, as a share of the limit.
const acceptedTolerance = 0.10

// results is everything measured, as written by -json.
type results struct {
	Env        benchkit.Environment `json:"environment"`
	Rate       float64              `json:"quiet_rate"`
	NoisyRate  float64              `json:"noisy_rate"`
	LimitRPS   float64              `json:"limit_rps"`
	LimitBurst int                  `json:"limit_burst"`
	Seconds    float64              `json:"seconds_per_phase"`
	Workers    int                  `json:"workers_per_tenant"`
	Rounds     int                  `json:"rounds"`
	Protos     []*protoResult       `json:"protocols"`
	Verdicts   []verdict            `json:"verdicts"`
}

// phaseResult is what one phase measured.
type phaseResult struct {
	// Quiet is the quiet tenant's throughput and latency; its CPU is left
	// out, see CPU.
	Quiet       benchkit.Stats `json:"quiet"`
	QuietErrors int            `json:"quiet_errors"`
	FirstError  string         `json:"first_error,omitempty"`
	// Noisy is nil when the quiet tenant ran alone.
	Noisy *noisyResult `json:"noisy,omitempty"`
	// CPU is per request of either tenant answered during the quiet
	// tenant's load: with the neighbour, most of them are the noisy one's.
	CPU *benchkit.CPUStats `json:"cpu_per_request,omitempty"`
	// Usage is the CPU time spent during the quiet tenant's load.
	Usage *cpuSeconds `json:"cpu_seconds,omitempty"`
}

// cpuSeconds is benchkit.CPUUsage as -json writes it.
type cpuSeconds struct {
	Client   float64 `json:"client"`
	Gateway  float64 `json:"gateway"`
	Postgres float64 `json:"postgres"`
	Other    float64 `json:"other"`
}

// noisyResult is the noisy tenant's answers during the quiet tenant's
// load.
type noisyResult struct {
	Counts         answerCounts `json:"counts"`
	SentPerSec     float64      `json:"sent_per_sec"` // calls answered, per second
	AcceptedPerSec float64      `json:"accepted_per_sec"`
	RefusedPerSec  float64      `json:"refused_per_sec"`
	RefusedShare   float64      `json:"refused_share"` // of the calls answered
}

// newPhaseResult summarizes a phase: the quiet tenant's sample, its
// errors and, with the neighbour, the noisy tenant's answers over the
// elapsed window.
func newPhaseResult(s benchkit.Sample, errs int, firstErr string, noisy *answerCounts, elapsed time.Duration) phaseResult {
	pr := phaseResult{Quiet: benchkit.Summarize(s), QuietErrors: errs, FirstError: firstErr}
	pr.Quiet.CPU = nil
	all := s.Ops
	if noisy != nil {
		n := &noisyResult{Counts: *noisy}
		if sec := elapsed.Seconds(); sec > 0 {
			n.SentPerSec = float64(noisy.Calls()) / sec
			n.AcceptedPerSec = float64(noisy.Accepted) / sec
			n.RefusedPerSec = float64(noisy.Refused) / sec
		}
		if c := noisy.Calls(); c > 0 {
			n.RefusedShare = float64(noisy.Refused) / float64(c)
		}
		pr.Noisy = n
		all += noisy.Calls()
	}
	if s.CPUOK {
		pr.Usage = &cpuSeconds{Client: s.CPU.Client, Gateway: s.CPU.Gateway, Postgres: s.CPU.Postgres, Other: s.CPU.Other}
		pr.CPU = benchkit.Summarize(benchkit.Sample{Ops: all, Elapsed: s.Elapsed, CPU: s.CPU, CPUOK: true}).CPU
	}
	return pr
}

// percentiles holds one number for each reported percentile.
type percentiles struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
}

func latencies(s benchkit.Stats) percentiles {
	return percentiles{P50: s.P50Ms, P90: s.P90Ms, P99: s.P99Ms, P999: s.P999Ms}
}

// compare returns with minus alone, in ms, and with / alone (0 for a zero
// alone, which JSON can carry and NaN cannot).
func compare(alone, with benchkit.Stats) (diff, ratio percentiles) {
	a, w := latencies(alone), latencies(with)
	div := func(x, y float64) float64 {
		if y == 0 {
			return 0
		}
		return x / y
	}
	diff = percentiles{w.P50 - a.P50, w.P90 - a.P90, w.P99 - a.P99, w.P999 - a.P999}
	ratio = percentiles{div(w.P50, a.P50), div(w.P90, a.P90), div(w.P99, a.P99), div(w.P999, a.P999)}
	return diff, ratio
}

// protoResult is one protocol's two phases.
type protoResult struct {
	Proto       string        `json:"protocol"`
	Label       string        `json:"label"`
	AloneRounds []phaseResult `json:"alone_rounds"`
	WithRounds  []phaseResult `json:"with_neighbour_rounds"`
	// Alone and With are medians over the rounds, errors are summed.
	Alone       benchkit.Stats `json:"alone"`
	With        benchkit.Stats `json:"with_neighbour"`
	AloneErrors int            `json:"alone_errors"`
	WithErrors  int            `json:"with_neighbour_errors"`
	// DiffMs is With minus Alone at each percentile, Ratio With / Alone.
	DiffMs percentiles `json:"diff_ms"`
	Ratio  percentiles `json:"ratio"`
	// Noisy is the median of the noisy tenant's per-round results.
	Noisy noisyResult `json:"noisy"`
	// AloneCPU and WithCPU are medians of the phases' CPU per request;
	// NoisyCPU is the median of each round's CPU time with the neighbour
	// minus alone, per call of the noisy tenant: what its calls cost.
	AloneCPU *benchkit.CPUStats `json:"alone_cpu_per_request,omitempty"`
	WithCPU  *benchkit.CPUStats `json:"with_neighbour_cpu_per_request,omitempty"`
	NoisyCPU *benchkit.CPUStats `json:"cpu_per_noisy_call,omitempty"`
}

type verdict struct {
	Goal string  `json:"goal"`
	Got  float64 `json:"got"`
	Pass bool    `json:"pass"`
}

func newResults(cfg config, env benchkit.Environment) *results {
	return &results{
		Env: env, Rate: cfg.rate, NoisyRate: cfg.noisyRate, LimitRPS: cfg.limitRPS, LimitBurst: cfg.limitBurst,
		Seconds: cfg.duration.Seconds(), Workers: cfg.workers, Rounds: cfg.rounds,
	}
}

func (r *results) add(p proto, with bool, pr phaseResult) {
	var q *protoResult
	for _, x := range r.Protos {
		if x.Proto == p.name {
			q = x
		}
	}
	if q == nil {
		q = &protoResult{Proto: p.name, Label: p.label}
		r.Protos = append(r.Protos, q)
	}
	if with {
		q.WithRounds = append(q.WithRounds, pr)
	} else {
		q.AloneRounds = append(q.AloneRounds, pr)
	}
}

func (r *results) finish() {
	for _, p := range r.Protos {
		p.finish()
		r.Verdicts = append(r.Verdicts,
			verdict{fmt.Sprintf("%s: no quiet errors beside the neighbour", p.Label), float64(p.WithErrors), p.WithErrors == 0},
			verdict{fmt.Sprintf("%s: noisy accepted within %.0f%% of %g/s", p.Label, 100*acceptedTolerance, r.LimitRPS),
				p.Noisy.AcceptedPerSec, math.Abs(p.Noisy.AcceptedPerSec-r.LimitRPS) <= acceptedTolerance*r.LimitRPS})
	}
}

func (p *protoResult) finish() {
	quiet := func(prs []phaseResult) (benchkit.Stats, int) {
		var all []benchkit.Stats
		errs := 0
		for _, pr := range prs {
			all = append(all, pr.Quiet)
			errs += pr.QuietErrors
		}
		return benchkit.MedianStats(all), errs
	}
	p.Alone, p.AloneErrors = quiet(p.AloneRounds)
	p.With, p.WithErrors = quiet(p.WithRounds)
	p.DiffMs, p.Ratio = compare(p.Alone, p.With)
	p.AloneCPU, p.WithCPU = medianCPU(p.AloneRounds), medianCPU(p.WithRounds)

	var noisy []noisyResult
	var extra []*benchkit.CPUStats
	for i, pr := range p.WithRounds {
		if pr.Noisy == nil {
			continue
		}
		noisy = append(noisy, *pr.Noisy)
		if i < len(p.AloneRounds) {
			extra = append(extra, perNoisyCall(p.AloneRounds[i], pr))
		}
	}
	p.Noisy = medianNoisy(noisy)
	p.NoisyCPU = medianOf(extra)
}

// perNoisyCall is a round's CPU time with the neighbour minus alone, per
// call of the noisy tenant, and the extra cores it kept busy. Both phases
// made the same quiet calls, so the difference is the noisy tenant's
// (and noise, which can make it negative). Nil without CPU numbers.
func perNoisyCall(alone, with phaseResult) *benchkit.CPUStats {
	if alone.Usage == nil || with.Usage == nil || with.Noisy == nil || with.Noisy.Counts.Calls() == 0 || with.Quiet.Seconds <= 0 {
		return nil
	}
	a, w := *alone.Usage, *with.Usage
	per := func(x, y float64) float64 { return (x - y) * 1e6 / float64(with.Noisy.Counts.Calls()) }
	return &benchkit.CPUStats{
		ClientUsPerOp:   per(w.Client, a.Client),
		GatewayUsPerOp:  per(w.Gateway, a.Gateway),
		PostgresUsPerOp: per(w.Postgres, a.Postgres),
		OtherUsPerOp:    per(w.Other, a.Other),
		CoresBusy:       (w.Client + w.Gateway + w.Postgres + w.Other - a.Client - a.Gateway - a.Postgres - a.Other) / with.Quiet.Seconds,
	}
}

// medianCPU is the median of the phases' CPU per request, nil unless
// every phase has it.
func medianCPU(prs []phaseResult) *benchkit.CPUStats {
	cs := make([]*benchkit.CPUStats, len(prs))
	for i, pr := range prs {
		cs[i] = pr.CPU
	}
	return medianOf(cs)
}

// medianOf takes the median of each field, nil unless every entry has
// numbers.
func medianOf(cs []*benchkit.CPUStats) *benchkit.CPUStats {
	all := make([]benchkit.Stats, len(cs))
	for i, c := range cs {
		all[i].CPU = c
	}
	return benchkit.MedianStats(all).CPU
}

// medianNoisy takes the median of each field of the rounds' results.
func medianNoisy(ns []noisyResult) noisyResult {
	field := func(f func(noisyResult) float64) float64 {
		xs := make([]float64, len(ns))
		for i, n := range ns {
			xs[i] = f(n)
		}
		return benchkit.Median(xs)
	}
	return noisyResult{
		Counts: answerCounts{
			Accepted: int(field(func(n noisyResult) float64 { return float64(n.Counts.Accepted) })),
			Refused:  int(field(func(n noisyResult) float64 { return float64(n.Counts.Refused) })),
			Other:    int(field(func(n noisyResult) float64 { return float64(n.Counts.Other) })),
		},
		SentPerSec:     field(func(n noisyResult) float64 { return n.SentPerSec }),
		AcceptedPerSec: field(func(n noisyResult) float64 { return n.AcceptedPerSec }),
		RefusedPerSec:  field(func(n noisyResult) float64 { return n.RefusedPerSec }),
		RefusedShare:   field(func(n noisyResult) float64 { return n.RefusedShare }),
	}
}

func (r *results) print() { r.write(os.Stdout) }

func (r *results) write(w io.Writer) {
	fmt.Fprintf(w, "\ntenant quiet's GET of one state key at %s req/s, open loop, alone and beside tenant noisy at %s req/s;\n"+
		"both limited to %s req/s with a burst of %d; %gs per phase, %d workers per tenant, median of %d round(s)\n\n",
		benchkit.Thousands(r.Rate), benchkit.Thousands(r.NoisyRate), benchkit.Thousands(r.LimitRPS), r.LimitBurst,
		r.Seconds, r.Workers, r.Rounds)

	const sideW = len("gRPC with neighbour")
	fmt.Fprintf(w, "%s  %7s  %7s  %7s  %7s  %7s  %7s  %6s\n",
		benchkit.Pad("quiet tenant", sideW), "req/s", "p50", "p90", "p99", "p99.9", "max", "errors")
	row := func(label string, s benchkit.Stats, errs int) {
		fmt.Fprintf(w, "%s  %7s  %s  %s  %s  %s  %s  %6d\n", benchkit.Pad(label, sideW), benchkit.Thousands(s.OpsPerSec),
			right(benchkit.Ms(s.P50Ms), 7), right(benchkit.Ms(s.P90Ms), 7), right(benchkit.Ms(s.P99Ms), 7),
			right(benchkit.Ms(s.P999Ms), 7), right(benchkit.Ms(s.MaxMs), 7), errs)
	}
	for _, p := range r.Protos {
		row(p.Label+" alone", p.Alone, p.AloneErrors)
		row(p.Label+" with neighbour", p.With, p.WithErrors)
	}
	if r.Rounds > 1 {
		fmt.Fprintf(w, "(errors are summed over the rounds)\n")
	}

	fmt.Fprintf(w, "\nquiet tenant's latency with the neighbour minus alone (with / alone)\n\n")
	fmt.Fprintf(w, "%-8s  %18s  %18s  %18s  %18s\n", "protocol", "p50", "p90", "p99", "p99.9")
	cell := func(d, q float64) string { return right(fmt.Sprintf("%+.3fms (%.2f×)", d, q), 18) }
	for _, p := range r.Protos {
		fmt.Fprintf(w, "%-8s  %s  %s  %s  %s\n", p.Label, cell(p.DiffMs.P50, p.Ratio.P50),
			cell(p.DiffMs.P90, p.Ratio.P90), cell(p.DiffMs.P99, p.Ratio.P99), cell(p.DiffMs.P999, p.Ratio.P999))
	}

	fmt.Fprintf(w, "\nnoisy tenant during the quiet tenant's load (refused: HTTP 429, gRPC ResourceExhausted)\n\n")
	fmt.Fprintf(w, "%-8s  %10s  %14s  %13s  %13s  %5s\n", "protocol", "sent req/s", "accepted req/s", "refused req/s", "refused share", "other")
	for _, p := range r.Protos {
		n := p.Noisy
		fmt.Fprintf(w, "%-8s  %10s  %14s  %13s  %12.1f%%  %5d\n", p.Label, benchkit.Thousands(n.SentPerSec),
			benchkit.Thousands(n.AcceptedPerSec), benchkit.Thousands(n.RefusedPerSec), 100*n.RefusedShare, n.Counts.Other)
	}

	var rows []benchkit.CPURow
	var cpus []*benchkit.CPUStats
	for _, p := range r.Protos {
		rows = append(rows, benchkit.CPURow{Name: p.Label, Side: "alone, per quiet request", CPU: p.AloneCPU},
			benchkit.CPURow{Name: p.Label, Side: "with neighbour, per request", CPU: p.WithCPU},
			benchkit.CPURow{Name: p.Label, Side: "extra per noisy call", CPU: p.NoisyCPU})
		cpus = append(cpus, p.AloneCPU, p.WithCPU)
	}
	benchkit.PrintCPUTable(w, "CPU time per request, µs (client is both tenants' clients; \"extra\" is with minus alone,\n"+
		"per call of the noisy tenant, and its cores busy the extra cores)", "protocol", rows)
	benchkit.PrintBusyNote(w, benchkit.OtherShare(cpus...))

	fmt.Fprintf(w, "\nverdicts:\n")
	for _, v := range r.Verdicts {
		res := "FAIL"
		if v.Pass {
			res = "PASS"
		}
		fmt.Fprintf(w, "  %-48s %s (%.0f)\n", v.Goal, res, v.Got)
	}
}

// right pads s on the left to n characters (not bytes: µ and × are two).
func right(s string, n int) string {
	return strings.Repeat(" ", max(0, n-utf8.RuneCountInString(s))) + s
}
