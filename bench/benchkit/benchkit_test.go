package benchkit

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var thousand []time.Duration
	for i := range 1000 {
		thousand = append(thousand, time.Duration(i+1))
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", []time.Duration{7}, 99, 7},
		{"median of four is the second", []time.Duration{1, 2, 3, 4}, 50, 2},
		{"p50 of 1000", thousand, 50, 500},
		{"p99 of 1000", thousand, 99, 990},
		{"p99.9 of 1000 is exact", thousand, 99.9, 999},
		{"p100 is the max", thousand, 100, 1000},
		{"p99 of 10 is the max", thousand[:10], 99, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%d values, %v) = %v, want %v", len(tt.sorted), tt.p, got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		want float64
	}{
		{"none", nil, 0},
		{"odd", []float64{3, 1, 2}, 2},
		{"even", []float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Median(tt.xs); got != tt.want {
				t.Errorf("Median(%v) = %v, want %v", tt.xs, got, tt.want)
			}
		})
	}
}

func TestJSONValue(t *testing.T) {
	for _, size := range []int{8, 100, 1024} {
		v := JSONValue(size)
		if len(v) != size {
			t.Errorf("JSONValue(%d) has %d bytes", size, len(v))
		}
		if !json.Valid(v) {
			t.Errorf("JSONValue(%d) is not JSON: %s", size, v)
		}
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999.4: "999", 1000: "1,000", 74691.2: "74,691", 1234567: "1,234,567"} {
		if got := Thousands(in); got != want {
			t.Errorf("Thousands(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestParseEnv(t *testing.T) {
	env, err := parseEnv(strings.NewReader("DAPR_GRPC_ENDPOINT=http://127.0.0.1:1\nDAPR_API_TOKEN=a=b\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if env["DAPR_GRPC_ENDPOINT"] != "http://127.0.0.1:1" || env["DAPR_API_TOKEN"] != "a=b" {
		t.Errorf("parseEnv = %v", env)
	}
}

func TestMerge(t *testing.T) {
	ms := time.Millisecond
	a := Sample{Ops: 2, Elapsed: time.Second, Lat: []time.Duration{1 * ms, 5 * ms}, CPU: CPUUsage{Client: 1, Gateway: 2}, CPUOK: true}
	b := Sample{Ops: 3, Elapsed: 2 * time.Second, Lat: []time.Duration{2 * ms, 3 * ms, 9 * ms}, CPU: CPUUsage{Client: 0.5, Postgres: 1}, CPUOK: true}
	m := Merge(a, b)
	if m.Ops != 5 || m.Elapsed != 3*time.Second || !m.CPUOK {
		t.Fatalf("Merge = %+v", m)
	}
	if want := []time.Duration{1 * ms, 2 * ms, 3 * ms, 5 * ms, 9 * ms}; !slices.Equal(m.Lat, want) {
		t.Fatalf("latencies %v, want %v", m.Lat, want)
	}
	if m.CPU != (CPUUsage{Client: 1.5, Gateway: 2, Postgres: 1}) {
		t.Fatalf("CPU %+v", m.CPU)
	}
	b.CPUOK = false
	if m := Merge(a, b); m.CPUOK || m.CPU != (CPUUsage{}) {
		t.Fatalf("CPU must be unknown when a slice could not measure it: %+v", m)
	}
	if m := Merge(); m.Ops != 0 || m.CPUOK || len(m.Lat) != 0 {
		t.Fatalf("Merge() = %+v", m)
	}
}
