package benchkit

import (
	"slices"
	"time"
)

// Stats summarizes one phase, or the median of several.
type Stats struct {
	Ops       int       `json:"ops"`
	Seconds   float64   `json:"seconds"`
	OpsPerSec float64   `json:"ops_per_sec"`
	P50Ms     float64   `json:"p50_ms"`
	P90Ms     float64   `json:"p90_ms"`
	P99Ms     float64   `json:"p99_ms"`
	P999Ms    float64   `json:"p999_ms"`
	MaxMs     float64   `json:"max_ms"`
	CPU       *CPUStats `json:"cpu,omitempty"`
}

// CPUStats is a phase's CPU time per operation, by process, in
// microseconds; CoresBusy is all of it divided by the phase's duration.
type CPUStats struct {
	ClientUsPerOp   float64 `json:"client_us_per_op"`
	GatewayUsPerOp  float64 `json:"gateway_us_per_op"`
	PostgresUsPerOp float64 `json:"postgres_us_per_op"`
	OtherUsPerOp    float64 `json:"other_us_per_op"`
	CoresBusy       float64 `json:"cores_busy"`
}

// Total is the CPU time per operation of all processes together.
func (c *CPUStats) Total() float64 {
	return c.ClientUsPerOp + c.GatewayUsPerOp + c.PostgresUsPerOp + c.OtherUsPerOp
}

// Summarize computes a phase's Stats: throughput over its elapsed time,
// exact latency percentiles, and CPU time per operation.
func Summarize(s Sample) Stats {
	st := Stats{
		Ops:     s.Ops,
		Seconds: s.Elapsed.Seconds(),
		P50Ms:   Millis(Percentile(s.Lat, 50)),
		P90Ms:   Millis(Percentile(s.Lat, 90)),
		P99Ms:   Millis(Percentile(s.Lat, 99)),
		P999Ms:  Millis(Percentile(s.Lat, 99.9)),
		MaxMs:   Millis(Percentile(s.Lat, 100)),
	}
	if s.Elapsed > 0 {
		st.OpsPerSec = float64(s.Ops) / s.Elapsed.Seconds()
	}
	if s.CPUOK && s.Ops > 0 && s.Elapsed > 0 {
		perOp := func(sec float64) float64 { return sec * 1e6 / float64(s.Ops) }
		st.CPU = &CPUStats{
			ClientUsPerOp:   perOp(s.CPU.Client),
			GatewayUsPerOp:  perOp(s.CPU.Gateway),
			PostgresUsPerOp: perOp(s.CPU.Postgres),
			OtherUsPerOp:    perOp(s.CPU.Other),
			CoresBusy:       (s.CPU.Client + s.CPU.Gateway + s.CPU.Postgres + s.CPU.Other) / s.Elapsed.Seconds(),
		}
	}
	return st
}

// Millis is d in (fractional) milliseconds, the unit of Stats.
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Median returns the median of xs (the mean of the middle two for an even
// count), 0 for none.
func Median(xs []float64) float64 {
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

// MedianStats takes the median of each field on its own. CPU is left out
// unless every phase has it.
func MedianStats(all []Stats) Stats {
	field := func(f func(Stats) float64) float64 {
		xs := make([]float64, len(all))
		for i, s := range all {
			xs[i] = f(s)
		}
		return Median(xs)
	}
	m := Stats{
		Ops:       int(field(func(s Stats) float64 { return float64(s.Ops) })),
		Seconds:   field(func(s Stats) float64 { return s.Seconds }),
		OpsPerSec: field(func(s Stats) float64 { return s.OpsPerSec }),
		P50Ms:     field(func(s Stats) float64 { return s.P50Ms }),
		P90Ms:     field(func(s Stats) float64 { return s.P90Ms }),
		P99Ms:     field(func(s Stats) float64 { return s.P99Ms }),
		P999Ms:    field(func(s Stats) float64 { return s.P999Ms }),
		MaxMs:     field(func(s Stats) float64 { return s.MaxMs }),
	}
	if len(all) > 0 && !slices.ContainsFunc(all, func(s Stats) bool { return s.CPU == nil }) {
		cpu := func(f func(*CPUStats) float64) float64 {
			return field(func(s Stats) float64 { return f(s.CPU) })
		}
		m.CPU = &CPUStats{
			ClientUsPerOp:   cpu(func(c *CPUStats) float64 { return c.ClientUsPerOp }),
			GatewayUsPerOp:  cpu(func(c *CPUStats) float64 { return c.GatewayUsPerOp }),
			PostgresUsPerOp: cpu(func(c *CPUStats) float64 { return c.PostgresUsPerOp }),
			OtherUsPerOp:    cpu(func(c *CPUStats) float64 { return c.OtherUsPerOp }),
			CoresBusy:       cpu(func(c *CPUStats) float64 { return c.CoresBusy }),
		}
	}
	return m
}
