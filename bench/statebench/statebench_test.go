package main

import (
	"strings"
	"testing"
	"time"

	"github.com/blockgate/blockgate/bench/benchkit"
)

func TestReportVerdict(t *testing.T) {
	round := func(base, gw float64) roundResult {
		return roundResult{Baseline: benchkit.Stats{OpsPerSec: base}, Gateway: benchkit.Stats{OpsPerSec: gw}, Ratio: gw / base}
	}
	cfg := config{duration: time.Second, clients: 1, keys: 1, valueSize: 8, rounds: 3, client: "sdk"}
	pass := newReport(cfg, benchkit.Environment{}, []string{"save", "get"}, map[string][]roundResult{
		"save": {round(100, 80), round(100, 70), round(100, 90)},
		"get":  {round(100, 75), round(100, 60), round(100, 71)},
	})
	if !pass.Pass || pass.Operations[0].Ratio != 0.8 || pass.Operations[1].Ratio != 0.71 {
		t.Errorf("pass: %+v", pass)
	}
	fail := newReport(cfg, benchkit.Environment{}, []string{"save", "get"}, map[string][]roundResult{
		"save": {round(100, 80)},
		"get":  {round(100, 50)},
	})
	if fail.Pass || !strings.Contains(fail.Verdict, "get below") {
		t.Errorf("fail: %s", fail.Verdict)
	}
	var b strings.Builder
	fail.print(&b)
	if !strings.Contains(b.String(), "verdict: FAIL") {
		t.Errorf("print:\n%s", b.String())
	}
}
