package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// stats summarizes one phase, or the median of several.
type stats struct {
	Ops       int       `json:"ops"`
	Seconds   float64   `json:"seconds"`
	OpsPerSec float64   `json:"ops_per_sec"`
	P50Ms     float64   `json:"p50_ms"`
	P90Ms     float64   `json:"p90_ms"`
	P99Ms     float64   `json:"p99_ms"`
	P999Ms    float64   `json:"p999_ms"`
	MaxMs     float64   `json:"max_ms"`
	CPU       *cpuStats `json:"cpu,omitempty"`
}

// cpuStats is a phase's CPU time per operation, by process, in
// microseconds; CoresBusy is all of it divided by the phase's duration.
type cpuStats struct {
	ClientUsPerOp   float64 `json:"client_us_per_op"`
	GatewayUsPerOp  float64 `json:"gateway_us_per_op"`
	PostgresUsPerOp float64 `json:"postgres_us_per_op"`
	OtherUsPerOp    float64 `json:"other_us_per_op"`
	CoresBusy       float64 `json:"cores_busy"`
}

func (c *cpuStats) total() float64 {
	return c.ClientUsPerOp + c.GatewayUsPerOp + c.PostgresUsPerOp + c.OtherUsPerOp
}

// roundResult is one round of one operation.
type roundResult struct {
	Baseline stats   `json:"baseline"`
	Gateway  stats   `json:"gateway"`
	Ratio    float64 `json:"ratio"` // gateway / baseline throughput
}

// opResult is one operation over all rounds: medians, and the rounds.
type opResult struct {
	Op       string        `json:"op"`
	Baseline stats         `json:"baseline"`
	Gateway  stats         `json:"gateway"`
	Ratio    float64       `json:"ratio"`
	Rounds   []roundResult `json:"rounds"`
}

type environment struct {
	CPUs     int    `json:"cpus"`
	GOOS     string `json:"goos"`
	GOARCH   string `json:"goarch"`
	Go       string `json:"go"`
	Postgres string `json:"postgres"`
	Gateway  string `json:"gateway_version"`
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
	Time        time.Time    `json:"time"`
	Config      reportConfig `json:"config"`
	Environment environment  `json:"environment"`
	Operations  []opResult   `json:"operations"`
	Goal        float64      `json:"goal_ratio"`
	Pass        bool         `json:"pass"`
	Verdict     string       `json:"verdict"`
}

func summarize(s sample) stats {
	msOf := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	st := stats{
		Ops:       s.ops,
		Seconds:   s.elapsed.Seconds(),
		OpsPerSec: float64(s.ops) / s.elapsed.Seconds(),
		P50Ms:     msOf(percentile(s.lat, 50)),
		P90Ms:     msOf(percentile(s.lat, 90)),
		P99Ms:     msOf(percentile(s.lat, 99)),
		P999Ms:    msOf(percentile(s.lat, 99.9)),
		MaxMs:     msOf(percentile(s.lat, 100)),
	}
	if s.cpuOK && s.ops > 0 {
		perOp := func(sec float64) float64 { return sec * 1e6 / float64(s.ops) }
		st.CPU = &cpuStats{
			ClientUsPerOp:   perOp(s.cpu.client),
			GatewayUsPerOp:  perOp(s.cpu.gateway),
			PostgresUsPerOp: perOp(s.cpu.postgres),
			OtherUsPerOp:    perOp(s.cpu.other),
			CoresBusy:       (s.cpu.client + s.cpu.gateway + s.cpu.postgres + s.cpu.other) / s.elapsed.Seconds(),
		}
	}
	return st
}

// median returns the median of xs (the mean of the middle two for an even
// count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// medianStats takes the median of each field on its own.
func medianStats(all []stats) stats {
	field := func(f func(stats) float64) float64 {
		xs := make([]float64, len(all))
		for i, s := range all {
			xs[i] = f(s)
		}
		return median(xs)
	}
	m := stats{
		Ops:       int(field(func(s stats) float64 { return float64(s.Ops) })),
		Seconds:   field(func(s stats) float64 { return s.Seconds }),
		OpsPerSec: field(func(s stats) float64 { return s.OpsPerSec }),
		P50Ms:     field(func(s stats) float64 { return s.P50Ms }),
		P90Ms:     field(func(s stats) float64 { return s.P90Ms }),
		P99Ms:     field(func(s stats) float64 { return s.P99Ms }),
		P999Ms:    field(func(s stats) float64 { return s.P999Ms }),
		MaxMs:     field(func(s stats) float64 { return s.MaxMs }),
	}
	if !slices.ContainsFunc(all, func(s stats) bool { return s.CPU == nil }) {
		cpu := func(f func(*cpuStats) float64) float64 {
			return field(func(s stats) float64 { return f(s.CPU) })
		}
		m.CPU = &cpuStats{
			ClientUsPerOp:   cpu(func(c *cpuStats) float64 { return c.ClientUsPerOp }),
			GatewayUsPerOp:  cpu(func(c *cpuStats) float64 { return c.GatewayUsPerOp }),
			PostgresUsPerOp: cpu(func(c *cpuStats) float64 { return c.PostgresUsPerOp }),
			OtherUsPerOp:    cpu(func(c *cpuStats) float64 { return c.OtherUsPerOp }),
			CoresBusy:       cpu(func(c *cpuStats) float64 { return c.CoresBusy }),
		}
	}
	return m
}

func newReport(cfg config, env environment, ops []string, rounds map[string][]roundResult) *report {
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
		var bs, gs []stats
		var ratios []float64
		for _, x := range rr {
			bs = append(bs, x.Baseline)
			gs = append(gs, x.Gateway)
			ratios = append(ratios, x.Ratio)
		}
		res.Baseline, res.Gateway, res.Ratio = medianStats(bs), medianStats(gs), median(ratios)
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
		"operation", "baseline ops/s", "gateway ops/s", "ratio", pad("baseline p50 / p99", 19), "gateway p50 / p99")
	for _, o := range r.Operations {
		fmt.Fprintf(w, "%-9s  %14s  %13s  %5.2f  %s  %s\n", o.Op,
			thousands(o.Baseline.OpsPerSec), thousands(o.Gateway.OpsPerSec), o.Ratio,
			pad(ms(o.Baseline.P50Ms)+" / "+ms(o.Baseline.P99Ms), 19), ms(o.Gateway.P50Ms)+" / "+ms(o.Gateway.P99Ms))
	}
	if r.Operations[0].Baseline.CPU != nil {
		fmt.Fprintf(w, "\nCPU time per operation in µs (client: this process; other: the rest of the machine)\n\n")
		fmt.Fprintf(w, "%-9s  %-8s  %6s  %7s  %8s  %5s  %5s  %10s\n",
			"operation", "side", "client", "gateway", "postgres", "other", "total", "cores busy")
		for _, o := range r.Operations {
			for _, s := range []struct {
				name string
				c    *cpuStats
			}{{"baseline", o.Baseline.CPU}, {"gateway", o.Gateway.CPU}} {
				fmt.Fprintf(w, "%-9s  %-8s  %6.0f  %7.0f  %8.0f  %5.0f  %5.0f  %10.2f\n", o.Op, s.name,
					s.c.ClientUsPerOp, s.c.GatewayUsPerOp, s.c.PostgresUsPerOp, s.c.OtherUsPerOp, s.c.total(), s.c.CoresBusy)
			}
		}
	}
	if share := r.otherShare(); share > otherWarn {
		fmt.Fprintf(w, "\nnote: other processes used up to %.0f%% of the CPU time in a phase; the machine was busy, so\n"+
			"the ratios are less reliable than usual\n", 100*share)
	}
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

// otherWarn is the share of a phase's CPU time taken by other processes
// above which the report says the machine was busy.
const otherWarn = 0.10

// otherShare is the largest share of CPU time that processes other than
// the client, the gateway and Postgres took in any phase.
func (r *report) otherShare() float64 {
	var share float64
	for _, o := range r.Operations {
		for _, rr := range o.Rounds {
			for _, c := range []*cpuStats{rr.Baseline.CPU, rr.Gateway.CPU} {
				if c != nil && c.total() > 0 {
					share = max(share, c.OtherUsPerOp/c.total())
				}
			}
		}
	}
	return share
}

// write saves the report as indented JSON.
func (r *report) write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing -json: %w", err)
	}
	return nil
}

// pad pads s with spaces to n characters (not bytes: µ is two).
func pad(s string, n int) string {
	return s + strings.Repeat(" ", max(0, n-utf8.RuneCountInString(s)))
}

// thousands formats a rate as a whole number with thousands separators.
func thousands(x float64) string {
	s := strconv.FormatInt(int64(x+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// ms formats a latency in milliseconds with three significant digits.
func ms(x float64) string {
	switch {
	case x < 1:
		return fmt.Sprintf("%.0fµs", x*1000)
	case x < 10:
		return fmt.Sprintf("%.2fms", x)
	case x < 100:
		return fmt.Sprintf("%.1fms", x)
	}
	return fmt.Sprintf("%.0fms", x)
}
