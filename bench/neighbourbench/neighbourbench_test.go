package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/blockgate/blockgate/bench/benchkit"
)

func TestValidate(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "blockgate")
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	ok := config{bin: bin, rate: 200, noisyRate: 3000, limitRPS: 300, limitBurst: 300,
		duration: 20 * time.Second, workers: 64, rounds: 1}
	tests := []struct {
		name    string
		change  func(*config)
		wantErr bool
	}{
		{"defaults", func(*config) {}, false},
		{"no rate", func(c *config) { c.rate = 0 }, true},
		{"no request in the duration", func(c *config) { c.duration = time.Millisecond; c.rate = 10 }, true},
		{"no noisy rate", func(c *config) { c.noisyRate = 0 }, true},
		{"too many noisy requests", func(c *config) { c.noisyRate = 1e6; c.duration = time.Hour }, true},
		{"no limit", func(c *config) { c.limitRPS = 0 }, true},
		{"no burst", func(c *config) { c.limitBurst = 0 }, true},
		{"quiet at its limit", func(c *config) { c.rate = 300 }, true},
		{"no workers", func(c *config) { c.workers = 0 }, true},
		{"no rounds", func(c *config) { c.rounds = 0 }, true},
		{"no binary", func(c *config) { c.bin = filepath.Join(t.TempDir(), "missing") }, true},
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

func TestAnswers(t *testing.T) {
	httpTests := []struct {
		status int
		want   answer
	}{
		{200, accepted}, {204, accepted}, {429, refused}, {403, other}, {500, other}, {503, other},
	}
	for _, tt := range httpTests {
		if got := httpAnswer(tt.status); got != tt.want {
			t.Errorf("httpAnswer(%d) = %d, want %d", tt.status, got, tt.want)
		}
	}
	grpcTests := []struct {
		err  error
		want answer
	}{
		{nil, accepted},
		{status.Error(codes.ResourceExhausted, "slow down"), refused},
		{status.Error(codes.Unavailable, "down"), other},
		{errors.New("plain"), other},
	}
	for _, tt := range grpcTests {
		if got := grpcAnswer(tt.err); got != tt.want {
			t.Errorf("grpcAnswer(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// TestHTTPOps checks what the ops count against a server answering by
// path: /ok the expected value, /other another value, /limited 429.
func TestHTTPOps(t *testing.T) {
	want := []byte(`{"v":"x"}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("dapr-api-token") != "tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/ok":
			_, _ = w.Write(want)
		case "/other":
			_, _ = w.Write([]byte(`{"v":"y"}`))
		case "/limited":
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	c := httpClient(1)
	defer c.CloseIdleConnections()

	var errs quietErrors
	for _, path := range []string{"/ok", "/other", "/limited", "/ok"} {
		if n, err := quietHTTPOp(c, srv.URL+path, "tok", want, &errs)(t.Context()); n != 1 || err != nil {
			t.Fatalf("quiet %s: %d, %v; want 1, nil", path, n, err)
		}
	}
	if errs.count() != 2 || !strings.Contains(errs.firstError(), `want "{\"v\":\"x\"}"`) {
		t.Errorf("quiet errors: %d, first %q; want 2, the wrong value first", errs.count(), errs.firstError())
	}

	var counts noisyCounts
	for _, path := range []string{"/ok", "/limited", "/limited", "/ok", "/limited"} {
		if n, err := noisyHTTPOp(c, srv.URL+path, "tok", &counts)(t.Context()); n != 1 || err != nil {
			t.Fatalf("noisy %s: %d, %v; want 1, nil", path, n, err)
		}
	}
	if _, err := noisyHTTPOp(c, srv.URL+"/ok", "wrong", &counts)(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, want := counts.snapshot(), (answerCounts{Accepted: 2, Refused: 3, Other: 1}); got != want {
		t.Errorf("noisy counts %+v, want %+v", got, want)
	}
}

func TestCompare(t *testing.T) {
	alone := benchkit.Stats{P50Ms: 1, P90Ms: 2, P99Ms: 4, P999Ms: 0}
	with := benchkit.Stats{P50Ms: 1.5, P90Ms: 2, P99Ms: 10, P999Ms: 3}
	diff, ratio := compare(alone, with)
	if want := (percentiles{0.5, 0, 6, 3}); diff != want {
		t.Errorf("diff %+v, want %+v", diff, want)
	}
	if want := (percentiles{1.5, 1, 2.5, 0}); ratio != want {
		t.Errorf("ratio %+v, want %+v", ratio, want)
	}
}

func TestNewPhaseResult(t *testing.T) {
	s := benchkit.Sample{
		Ops: 4000, Elapsed: 20 * time.Second,
		Lat:   []time.Duration{time.Millisecond, 2 * time.Millisecond},
		CPU:   benchkit.CPUUsage{Client: 2, Gateway: 4, Postgres: 1, Other: 1},
		CPUOK: true,
	}
	noisy := answerCounts{Accepted: 6000, Refused: 54000, Other: 0}
	pr := newPhaseResult(s, 0, "", &noisy, 20*time.Second)
	if pr.Quiet.CPU != nil {
		t.Error("the quiet stats kept a CPU split")
	}
	n := pr.Noisy
	if n.SentPerSec != 3000 || n.AcceptedPerSec != 300 || n.RefusedPerSec != 2700 || n.RefusedShare != 0.9 {
		t.Errorf("noisy %+v", n)
	}
	// 8 CPU seconds over 4,000 + 60,000 requests: 125 µs each.
	if pr.CPU == nil || math.Abs(pr.CPU.Total()-125) > 1e-9 || pr.CPU.GatewayUsPerOp != 62.5 {
		t.Errorf("cpu per request %+v, want 125 µs in all, 62.5 in the gateway", pr.CPU)
	}
	if alone := newPhaseResult(s, 3, "boom", nil, 0); alone.Noisy != nil || alone.CPU.Total() != 2000 || alone.QuietErrors != 3 {
		t.Errorf("alone: %+v", alone)
	}
}

// phase makes a phaseResult for the report tests.
func phase(p50, p99 float64, errs int, usage benchkit.CPUUsage, noisy *answerCounts) phaseResult {
	s := benchkit.Sample{Ops: 4000, Elapsed: 20 * time.Second, Lat: []time.Duration{time.Duration(p50 * 1e6)}, CPU: usage, CPUOK: true}
	pr := newPhaseResult(s, errs, "", noisy, 20*time.Second)
	pr.Quiet.P50Ms, pr.Quiet.P99Ms = p50, p99
	return pr
}

func TestFinish(t *testing.T) {
	alone := benchkit.CPUUsage{Client: 1, Gateway: 1, Postgres: 1}
	with := benchkit.CPUUsage{Client: 4, Gateway: 7, Postgres: 1}
	noisy := func(acc int) *answerCounts { a := answerCounts{Accepted: acc, Refused: 60000 - acc}; return &a }
	r := &results{LimitRPS: 300, Rounds: 3}
	for _, pr := range []phaseResult{phase(1, 4, 0, alone, nil), phase(3, 9, 0, alone, nil), phase(2, 5, 1, alone, nil)} {
		r.add(proto{name: "http", label: "HTTP"}, false, pr)
	}
	for _, pr := range []phaseResult{
		phase(2, 8, 0, with, noisy(6000)), phase(9, 90, 2, with, noisy(6100)), phase(3, 10, 0, with, noisy(5000)),
	} {
		r.add(proto{name: "http", label: "HTTP"}, true, pr)
	}
	r.finish()

	p := r.Protos[0]
	if p.Alone.P50Ms != 2 || p.With.P50Ms != 3 || p.Alone.P99Ms != 5 || p.With.P99Ms != 10 {
		t.Errorf("medians: alone p50 %g p99 %g, with p50 %g p99 %g; want 2, 5, 3, 10",
			p.Alone.P50Ms, p.Alone.P99Ms, p.With.P50Ms, p.With.P99Ms)
	}
	if p.DiffMs.P50 != 1 || p.Ratio.P99 != 2 {
		t.Errorf("diff p50 %g, ratio p99 %g; want 1, 2", p.DiffMs.P50, p.Ratio.P99)
	}
	if p.AloneErrors != 1 || p.WithErrors != 2 {
		t.Errorf("errors alone %d, with %d; want the sums 1, 2", p.AloneErrors, p.WithErrors)
	}
	if p.Noisy.AcceptedPerSec != 300 || p.Noisy.Counts.Accepted != 6000 {
		t.Errorf("noisy median %+v, want 300/s, 6000", p.Noisy)
	}
	// 9 extra CPU seconds over 60,000 noisy calls: 150 µs, 100 of them the
	// gateway's; 9 s in 20 s is 0.45 cores.
	if c := p.NoisyCPU; c == nil || math.Abs(c.Total()-150) > 1e-9 || math.Abs(c.GatewayUsPerOp-100) > 1e-9 || math.Abs(c.CoresBusy-0.45) > 1e-9 {
		t.Errorf("cpu per noisy call %+v", c)
	}
	if len(r.Verdicts) != 2 || r.Verdicts[0].Pass || !r.Verdicts[1].Pass {
		t.Errorf("verdicts %+v, want errors FAIL, accepted PASS", r.Verdicts)
	}

	var out bytes.Buffer
	r.write(&out)
	for _, s := range []string{"HTTP with neighbour", "+1.000ms (1.50×)", "extra per noisy call", "FAIL (2)"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("the report lacks %q:\n%s", s, out.String())
		}
	}
	if _, err := json.Marshal(r); err != nil {
		t.Errorf("-json: %v", err)
	}
}
