package main

import (
	"fmt"
	"io"
	"time"

	"github.com/blockgate/blockgate/bench/benchkit"
)

// roundStats is one side of one test in one round.
type roundStats struct {
	benchkit.Stats
	// Deliver only: the rate the publishers achieved, messages delivered
	// more than once, and the publish calls' own latency (until the
	// publish was acknowledged, a part of the publish→deliver latency).
	PublishRate  float64 `json:"publish_rate,omitempty"`
	Repeats      int     `json:"repeats,omitempty"`
	PublishP50Ms float64 `json:"publish_p50_ms,omitempty"`
	PublishP99Ms float64 `json:"publish_p99_ms,omitempty"`
}

// results gathers the rounds: test → side → one entry per round.
type results struct {
	tests  []test
	rounds map[string]map[string][]roundStats
}

func newResults(tests []test) *results {
	r := &results{tests: tests, rounds: map[string]map[string][]roundStats{}}
	for _, t := range tests {
		r.rounds[t.name] = map[string][]roundStats{}
	}
	return r
}

func (r *results) add(test, side string, rs roundStats) {
	r.rounds[test][side] = append(r.rounds[test][side], rs)
}

// sideResult is one side of a test over all rounds.
type sideResult struct {
	Side   string         `json:"side"`
	Median benchkit.Stats `json:"median"`
	// Publish and bulk: the median of the rounds' throughput ratios to the
	// baseline, and the ratios.
	Ratio       float64   `json:"ratio,omitempty"`
	RoundRatios []float64 `json:"round_ratios,omitempty"`
	// Deliver: the median of the rounds' latency ratios to the baseline.
	P50Ratio       float64      `json:"p50_ratio,omitempty"`
	P99Ratio       float64      `json:"p99_ratio,omitempty"`
	RoundP99Ratios []float64    `json:"round_p99_ratios,omitempty"`
	Rounds         []roundStats `json:"rounds"`
}

type testResult struct {
	Test  string       `json:"test"`
	Sides []sideResult `json:"sides"` // the baseline first
}

// goalResult is the verdict on one goal.
type goalResult struct {
	Goal    string  `json:"goal"`
	Value   float64 `json:"value"`
	Target  float64 `json:"target"`
	Pass    bool    `json:"pass"`
	Verdict string  `json:"verdict"`
}

type environment struct {
	benchkit.Environment
	NATSServer string `json:"nats_server"`
	NATSURL    string `json:"nats_url"`
}

type reportConfig struct {
	Duration       string  `json:"duration"`
	Publishers     int     `json:"publishers"`
	PayloadSize    int     `json:"payload_size"`
	Batch          int     `json:"batch"`
	Rate           float64 `json:"deliver_rate"`
	Rounds         int     `json:"rounds"`
	SharedNATSConn bool    `json:"shared_nats_conn"`
}

// report is the whole result, as printed and as written by -json.
type report struct {
	Time        time.Time    `json:"time"`
	Config      reportConfig `json:"config"`
	Environment environment  `json:"environment"`
	Tests       []testResult `json:"tests"`
	// StoredBytesPerMsg is what one message takes in its stream, by side:
	// the gateway stores a CloudEvent around the payload.
	StoredBytesPerMsg map[string]float64 `json:"stored_bytes_per_msg"`
	Goals             []goalResult       `json:"goals"`
}

func newReport(cfg config, env environment, res *results, stored map[string]float64) *report {
	r := &report{
		Time: time.Now().UTC().Truncate(time.Second),
		Config: reportConfig{
			Duration: cfg.duration.String(), Publishers: cfg.publishers, PayloadSize: cfg.payloadSize,
			Batch: cfg.batch, Rate: cfg.rate, Rounds: cfg.rounds, SharedNATSConn: cfg.sharedNATSConn,
		},
		Environment:       env,
		StoredBytesPerMsg: stored,
	}
	for _, t := range res.tests {
		tr := testResult{Test: t.name}
		base := res.rounds[t.name][t.sides[0].name]
		for _, s := range t.sides {
			rounds := res.rounds[t.name][s.name]
			sr := sideResult{Side: s.name, Rounds: rounds}
			all := make([]benchkit.Stats, len(rounds))
			for i, x := range rounds {
				all[i] = x.Stats
			}
			sr.Median = benchkit.MedianStats(all)
			if s.name != t.sides[0].name {
				var p50s []float64
				for i, x := range rounds {
					b := base[i]
					if t.name == testDeliver {
						p50s = append(p50s, x.P50Ms/b.P50Ms)
						sr.RoundP99Ratios = append(sr.RoundP99Ratios, x.P99Ms/b.P99Ms)
					} else {
						sr.RoundRatios = append(sr.RoundRatios, x.OpsPerSec/b.OpsPerSec)
					}
				}
				sr.Ratio = benchkit.Median(sr.RoundRatios)
				sr.P50Ratio, sr.P99Ratio = benchkit.Median(p50s), benchkit.Median(sr.RoundP99Ratios)
			}
			tr.Sides = append(tr.Sides, sr)
		}
		r.Tests = append(r.Tests, tr)
	}
	if s, ok := r.side(testPublish, sideGRPC); ok {
		r.Goals = append(r.Goals, ratioGoal("gateway sync publish over gRPC", s.Ratio))
	}
	if s, ok := r.side(testPublish, sideHTTP); ok {
		r.Goals = append(r.Goals, ratioGoal("gateway sync publish over HTTP", s.Ratio))
	}
	if s, ok := r.side(testBulk, sideGRPC); ok {
		g := goalResult{
			Goal:   fmt.Sprintf("gateway bulk publish over gRPC (batches of %d) ≥ %s msg/s", cfg.batch, benchkit.Thousands(goalBulkRate)),
			Value:  s.Median.OpsPerSec,
			Target: goalBulkRate,
			Pass:   s.Median.OpsPerSec >= goalBulkRate,
		}
		g.Verdict = fmt.Sprintf("%s: %s msg/s", passFail(g.Pass), benchkit.Thousands(g.Value))
		if b, ok := r.side(testBulk, sideBaseline); ok {
			g.Verdict += fmt.Sprintf(" (raw JetStream async: %s msg/s, ratio %.2f)", benchkit.Thousands(b.Median.OpsPerSec), s.Ratio)
		}
		r.Goals = append(r.Goals, g)
	}
	return r
}

func ratioGoal(what string, ratio float64) goalResult {
	g := goalResult{
		Goal:   fmt.Sprintf("%s ≥ %.0f%% of raw JetStream sync publish", what, 100*goalPublishRatio),
		Value:  ratio,
		Target: goalPublishRatio,
		Pass:   ratio >= goalPublishRatio,
	}
	g.Verdict = fmt.Sprintf("%s: %.0f%%", passFail(g.Pass), 100*ratio)
	return g
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

// side finds a side's result.
func (r *report) side(test, side string) (sideResult, bool) {
	for _, t := range r.Tests {
		if t.Test != test {
			continue
		}
		for _, s := range t.Sides {
			if s.Side == side {
				return s, true
			}
		}
	}
	return sideResult{}, false
}

// label says what a side of a test is.
func label(test, side string) string {
	switch {
	case side == sideBaseline && test == testBulk:
		return "raw JetStream, async batch"
	case side == sideBaseline && test == testDeliver:
		return "raw JetStream, pull consumer"
	case side == sideBaseline:
		return "raw JetStream"
	case test == testBulk:
		return "gateway gRPC, PublishEvents"
	case test == testDeliver:
		return "gateway gRPC, Subscribe"
	case side == sideGRPC:
		return "gateway gRPC, PublishEvent"
	}
	return "gateway HTTP, POST /v1.0/publish"
}

// print writes the result tables and the verdicts.
func (r *report) print(w io.Writer) {
	c := r.Config
	conn := "one NATS connection each"
	if c.SharedNATSConn {
		conn = "one shared NATS connection"
	}
	fmt.Fprintf(w, "\npub/sub API: gateway (Go SDK over gRPC, net/http over HTTP) vs raw JetStream (nats.go, %s)\n", conn)
	rounds := "medians of %d rounds"
	if c.Rounds == 1 {
		rounds = "%d round"
	}
	fmt.Fprintf(w, "%d publishers, %d-byte JSON payloads; "+rounds+" of %s per side and test;\n"+
		"%d CPUs shared by the clients, the gateway with its NATS server %s, and Postgres\n\n",
		c.Publishers, c.PayloadSize, c.Rounds, c.Duration, r.Environment.CPUs, r.Environment.NATSServer)

	const lw = 32
	var rows []benchkit.CPURow
	var phases []*benchkit.CPUStats
	header := false
	for _, t := range r.Tests {
		for _, s := range t.Sides {
			rows = append(rows, benchkit.CPURow{Name: t.Test, Side: label(t.Test, s.Side), CPU: s.Median.CPU})
			for _, x := range s.Rounds {
				phases = append(phases, x.CPU)
			}
			if t.Test == testDeliver {
				continue
			}
			if !header {
				fmt.Fprintf(w, "%-7s  %s  %9s  %5s  %s\n", "test", benchkit.Pad("side", lw), "msg/s", "ratio", "call p50 / p99")
				header = true
			}
			ratio := ""
			if s.Side != sideBaseline {
				ratio = fmt.Sprintf("%.2f", s.Ratio)
			}
			fmt.Fprintf(w, "%-7s  %s  %9s  %5s  %s\n", t.Test, benchkit.Pad(label(t.Test, s.Side), lw),
				benchkit.Thousands(s.Median.OpsPerSec), ratio, benchkit.Ms(s.Median.P50Ms)+" / "+benchkit.Ms(s.Median.P99Ms))
		}
		if t.Test == testBulk {
			fmt.Fprintf(w, "(bulk: msg/s counts messages; a call is a batch of %d)\n", c.Batch)
		}
	}

	for _, t := range r.Tests {
		if t.Test != testDeliver {
			continue
		}
		if header {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "publish→deliver latency at %s msg/s\n\n", benchkit.Thousands(c.Rate))
		fmt.Fprintf(w, "%s  %9s  %8s  %8s  %8s  %8s  %s  %s\n", benchkit.Pad("side", lw), "msg/s", "p50", "p90", "p99", "p99.9",
			benchkit.Pad("ratio p50 / p99", 15), "of which publish p50 / p99")
		for _, s := range t.Sides {
			ratio := ""
			if s.Side != sideBaseline {
				ratio = fmt.Sprintf("%.2f / %.2f", s.P50Ratio, s.P99Ratio)
			}
			var p50s, p99s []float64
			for _, x := range s.Rounds {
				p50s, p99s = append(p50s, x.PublishP50Ms), append(p99s, x.PublishP99Ms)
			}
			m := s.Median
			fmt.Fprintf(w, "%s  %9s  %8s  %8s  %8s  %8s  %s  %s\n", benchkit.Pad(label(t.Test, s.Side), lw),
				benchkit.Thousands(m.OpsPerSec), benchkit.Ms(m.P50Ms), benchkit.Ms(m.P90Ms), benchkit.Ms(m.P99Ms), benchkit.Ms(m.P999Ms),
				benchkit.Pad(ratio, 15), benchkit.Ms(benchkit.Median(p50s))+" / "+benchkit.Ms(benchkit.Median(p99s)))
		}
	}

	benchkit.PrintCPUTable(w, "CPU time per message in µs (client: this process; gateway: the gateway process with its\n"+
		"embedded NATS server, so on the baseline side the NATS server alone; other: the rest of the machine)", "test", rows)
	benchkit.PrintBusyNote(w, benchkit.OtherShare(phases...))
	if b, g := r.StoredBytesPerMsg[sideBaseline], r.StoredBytesPerMsg[sideGRPC]; b > 0 && g > 0 {
		fmt.Fprintf(w, "\nstored per message: baseline %.0f bytes, gateway %.0f bytes (a CloudEvent around the payload)\n", b, g)
	}

	fmt.Fprintf(w, "\nratios are medians of the rounds' gateway/baseline ratios; per round:")
	for _, t := range r.Tests {
		for _, s := range t.Sides {
			xs := s.RoundRatios
			what := " " + t.Test + " " + s.Side
			if t.Test == testDeliver {
				xs, what = s.RoundP99Ratios, " "+t.Test+" "+s.Side+" p99"
			}
			if len(xs) == 0 {
				continue
			}
			fmt.Fprint(w, what)
			for _, x := range xs {
				fmt.Fprintf(w, " %.2f", x)
			}
			fmt.Fprint(w, ";")
		}
	}
	fmt.Fprintln(w)
	for _, g := range r.Goals {
		fmt.Fprintf(w, "verdict: %s: %s\n", g.Goal, g.Verdict)
	}
}
