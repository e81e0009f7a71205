package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/blockgate/blockgate/bench/benchkit"
)

func TestStamp(t *testing.T) {
	for _, size := range []int{minPayloadSize, 200, 1024} {
		tmpl := deliverTemplate(size)
		if len(tmpl) != size {
			t.Fatalf("deliverTemplate(%d) has %d bytes", size, len(tmpl))
		}
		sent := time.Unix(1763772000, 123456789)
		p := stamp(tmpl, 7, 1234, sent)
		if len(p) != size || !json.Valid(p) {
			t.Fatalf("stamp(%d bytes) = %s", size, p)
		}
		if strings.Contains(string(tmpl), "1234") {
			t.Fatal("stamp changed its template")
		}
		run, seq, got, err := parseStamp(p)
		if err != nil || run != 7 || seq != 1234 || !got.Equal(sent) {
			t.Errorf("parseStamp(%s) = %d, %d, %v, %v", p[:60], run, seq, got, err)
		}
	}
}

func TestParseStampReencoded(t *testing.T) {
	// A subscriber may get the payload re-encoded: other order, spaces.
	run, seq, sent, err := parseStamp([]byte(`{ "v": "x", "t": "1000", "s": "2", "r": "3" }`))
	if err != nil || run != 3 || seq != 2 || sent.UnixNano() != 1000 {
		t.Errorf("parseStamp = %d, %d, %v, %v", run, seq, sent, err)
	}
	if _, _, _, err := parseStamp([]byte(`{"v":"x"}`)); err == nil {
		t.Error("parseStamp accepted a payload without a stamp")
	}
}

func TestCollector(t *testing.T) {
	tmpl := deliverTemplate(256)
	c := newCollector(1, 3)
	now := time.Now()
	c.got(stamp(tmpl, 0, 0, now)) // an earlier run: ignored
	c.got(stamp(tmpl, 1, 0, now))
	c.got(stamp(tmpl, 1, 0, now)) // a redelivery: counted once
	c.got(stamp(tmpl, 1, 2, now))
	select {
	case <-c.done:
		t.Fatal("done after 2 of 3 messages")
	default:
	}
	c.got(stamp(tmpl, 1, 1, now))
	select {
	case <-c.done:
	default:
		t.Fatal("not done after 3 of 3 messages")
	}
	if len(c.lat) != 3 || c.repeats != 1 || c.bad != nil {
		t.Errorf("collector: %d latencies, %d repeats, bad %v", len(c.lat), c.repeats, c.bad)
	}
	c.got(stamp(tmpl, 1, 5, now))
	if c.bad == nil {
		t.Error("a sequence number out of range went unnoticed")
	}
}

func TestReportGoals(t *testing.T) {
	cfg := config{duration: time.Second, publishers: 1, payloadSize: 1024, batch: 100, rate: 10, rounds: 3}
	tests := []test{
		{testPublish, []side{{name: sideBaseline}, {name: sideGRPC}, {name: sideHTTP}}},
		{testBulk, []side{{name: sideBaseline}, {name: sideGRPC}}},
		{testDeliver, []side{{name: sideBaseline}, {name: sideGRPC}}},
	}
	res := newResults(tests)
	rate := func(x float64) roundStats { return roundStats{Stats: benchkit.Stats{OpsPerSec: x}} }
	lat := func(p50, p99 float64) roundStats { return roundStats{Stats: benchkit.Stats{P50Ms: p50, P99Ms: p99}} }
	for _, x := range []struct{ base, grpc, http float64 }{{100, 70, 50}, {100, 55, 58}, {100, 61, 70}} {
		res.add(testPublish, sideBaseline, rate(x.base))
		res.add(testPublish, sideGRPC, rate(x.grpc))
		res.add(testPublish, sideHTTP, rate(x.http))
	}
	for _, x := range []float64{60_000, 40_000, 55_000} {
		res.add(testBulk, sideBaseline, rate(100_000))
		res.add(testBulk, sideGRPC, rate(x))
	}
	for range 3 {
		res.add(testDeliver, sideBaseline, lat(1, 2))
		res.add(testDeliver, sideGRPC, lat(3, 8))
	}
	r := newReport(cfg, environment{}, res, map[string]float64{sideBaseline: 1100, sideGRPC: 1400})
	want := []struct {
		pass  bool
		value float64
	}{{true, 0.61}, {false, 0.58}, {true, 55_000}}
	if len(r.Goals) != len(want) {
		t.Fatalf("%d goals, want %d", len(r.Goals), len(want))
	}
	for i, w := range want {
		if g := r.Goals[i]; g.Pass != w.pass || g.Value != w.value {
			t.Errorf("goal %q: pass %v value %v, want %v %v", g.Goal, g.Pass, g.Value, w.pass, w.value)
		}
	}
	if s, _ := r.side(testDeliver, sideGRPC); s.P50Ratio != 3 || s.P99Ratio != 4 {
		t.Errorf("deliver ratios %v / %v, want 3 / 4", s.P50Ratio, s.P99Ratio)
	}
	var b strings.Builder
	r.print(&b)
	for _, s := range []string{"verdict: gateway sync publish over HTTP ≥ 60% of raw JetStream sync publish: FAIL: 58%",
		"gateway bulk publish over gRPC (batches of 100) ≥ 50,000 msg/s: PASS: 55,000 msg/s", "3.00 / 4.00"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("print lacks %q:\n%s", s, b.String())
		}
	}
}
