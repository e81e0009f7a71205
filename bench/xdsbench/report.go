package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/blockgate/blockgate/bench/benchkit"
)

// results is everything measured, as written by -json.
type results struct {
	Env            environment `json:"environment"`
	Date           string      `json:"date"`
	Nodes          int         `json:"nodes"`
	Apps           int         `json:"apps"`
	StreamsPerConn int         `json:"streams_per_connection"`
	Conns          int         `json:"connections"`
	// LoadBefore and LoadAfter are the machine's load averages (1, 5 and
	// 15 minutes) before the control plane started and after it stopped.
	LoadBefore [3]float64     `json:"load_before"`
	LoadAfter  [3]float64     `json:"load_after"`
	Connect    connectResult  `json:"connect"`
	Changes    []changeResult `json:"changes"`
	// Fanout is the median of each number over the changes.
	Fanout changeResult `json:"fanout_median"`
	Memory memoryResult `json:"memory"`
}

// environment describes the machine and the software measured.
type environment struct {
	CPUs           int    `json:"cpus"`
	GOOS           string `json:"goos"`
	GOARCH         string `json:"goarch"`
	Go             string `json:"go"`
	GoControlPlane string `json:"go_control_plane"`
	GRPC           string `json:"grpc"`
}

// latency is a distribution over the nodes, in milliseconds.
type latency struct {
	P50Ms float64 `json:"p50_ms"`
	P90Ms float64 `json:"p90_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

// cpuUse is a phase's CPU time in seconds: the control plane's (the
// child), the simulated nodes' (this process) and the rest of the
// machine's.
type cpuUse struct {
	ControlPlane float64 `json:"control_plane_s"`
	Nodes        float64 `json:"nodes_s"`
	Other        float64 `json:"other_s"`
}

// connectResult is the connect phase.
type connectResult struct {
	// AllConfiguredMs runs from the first stream's opening to the last
	// node's first full configuration.
	AllConfiguredMs float64 `json:"all_configured_ms"`
	// PerNode is each node's time from its stream's opening to its first
	// full configuration.
	PerNode latency `json:"per_node"`
	// FirstAck is, by kind, the time from a node's stream's opening to
	// its first ACK of that kind, over the nodes that asked for it.
	FirstAck map[string]latency `json:"first_ack"`
	// SettledMs runs from the first stream's opening to the last ACK
	// before a quiet second.
	SettledMs float64 `json:"settled_ms"`
	// ResponsesPerNode counts the responses of each kind, over the nodes.
	ResponsesPerNode map[string]float64 `json:"responses_per_node"`
	CPU              *cpuUse            `json:"cpu,omitempty"`
}

// changeResult is one change, or the median of several.
type changeResult struct {
	Change int `json:"change,omitempty"`
	// Endpoints is the changed app's endpoint count the nodes had to ACK.
	Endpoints int `json:"endpoints,omitempty"`
	// The time from the Refresh call to each node's ACK; MaxMs is when
	// every node had ACKed.
	latency
	// ResponsesPerNode counts the responses of each kind from the Refresh
	// call until a quiet half second after the last ACK, over the nodes.
	ResponsesPerNode map[string]float64 `json:"responses_per_node"`
	// CPU is from just before the Refresh call to the last ACK.
	CPU *cpuUse `json:"cpu,omitempty"`
}

// memoryResult is the control plane's memory before any node connected,
// with every node connected, and after they left.
type memoryResult struct {
	Before    memStats `json:"before"`
	Connected memStats `json:"connected"`
	After     memStats `json:"after"`
	// Per connected node: (Connected - Before) / nodes.
	HeapPerNode       float64 `json:"heap_bytes_per_node"`
	RSSPerNode        float64 `json:"rss_bytes_per_node"`
	GoroutinesPerNode float64 `json:"goroutines_per_node"`
}

func newResults(cfg config) *results {
	return &results{
		Env:            newEnvironment(),
		Date:           time.Now().UTC().Format(time.RFC3339),
		Nodes:          cfg.nodes,
		Apps:           cfg.apps,
		StreamsPerConn: cfg.streamsPerConn,
		Conns:          cfg.conns(),
		LoadBefore:     loadAvg(),
	}
}

func newEnvironment() environment {
	env := environment{CPUs: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			switch d.Path {
			case "github.com/envoyproxy/go-control-plane":
				env.GoControlPlane = d.Version
			case "google.golang.org/grpc":
				env.GRPC = d.Version
			}
		}
	}
	return env
}

// latencyOf summarizes durations (which it sorts).
func latencyOf(ds []time.Duration) latency {
	slices.Sort(ds)
	return latency{
		P50Ms: benchkit.Millis(benchkit.Percentile(ds, 50)),
		P90Ms: benchkit.Millis(benchkit.Percentile(ds, 90)),
		P99Ms: benchkit.Millis(benchkit.Percentile(ds, 99)),
		MaxMs: benchkit.Millis(benchkit.Percentile(ds, 100)),
	}
}

// perNode divides response counts by the nodes, by kind.
func perNode(counts [numKinds]int, nodes int) map[string]float64 {
	out := map[string]float64{}
	for k := range numKinds {
		if counts[k] > 0 {
			out[k.String()] = float64(counts[k]) / float64(nodes)
		}
	}
	return out
}

func summarizeConnect(tr *tracker, start, configured, settled time.Time, responses [numKinds]int, nodes int) connectResult {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	c := connectResult{
		AllConfiguredMs:  benchkit.Millis(configured.Sub(start)),
		PerNode:          latencyOf(slices.Clone(tr.configuredIn)),
		FirstAck:         map[string]latency{},
		SettledMs:        benchkit.Millis(settled.Sub(start)),
		ResponsesPerNode: perNode(responses, nodes),
	}
	// configured is when the wait noticed; the last node's own time is
	// the exact end.
	if last := slices.MaxFunc(tr.configuredAt, time.Time.Compare); !last.IsZero() {
		c.AllConfiguredMs = benchkit.Millis(last.Sub(start))
	}
	for k := range numKinds {
		var ds []time.Duration
		for _, f := range tr.firstAcks {
			if f[k] > 0 {
				ds = append(ds, f[k])
			}
		}
		if len(ds) > 0 {
			c.FirstAck[k.String()] = latencyOf(ds)
		}
	}
	return c
}

func summarizeChange(c, want int, refreshAt time.Time, acks []time.Time, before, after [numKinds]int, nodes int) changeResult {
	ds := make([]time.Duration, 0, len(acks))
	for _, at := range acks {
		if !at.IsZero() {
			ds = append(ds, at.Sub(refreshAt))
		}
	}
	var delta [numKinds]int
	for k := range numKinds {
		delta[k] = after[k] - before[k]
	}
	return changeResult{Change: c, Endpoints: want, latency: latencyOf(ds), ResponsesPerNode: perNode(delta, nodes)}
}

func cpuOf(u benchkit.CPUUsage) *cpuUse {
	return &cpuUse{ControlPlane: u.Gateway, Nodes: u.Client, Other: u.Other}
}

// finish computes the medians and the memory per node.
func (r *results) finish() {
	med := func(f func(changeResult) float64) float64 {
		xs := make([]float64, len(r.Changes))
		for i, c := range r.Changes {
			xs[i] = f(c)
		}
		return benchkit.Median(xs)
	}
	m := changeResult{
		latency: latency{
			P50Ms: med(func(c changeResult) float64 { return c.P50Ms }),
			P90Ms: med(func(c changeResult) float64 { return c.P90Ms }),
			P99Ms: med(func(c changeResult) float64 { return c.P99Ms }),
			MaxMs: med(func(c changeResult) float64 { return c.MaxMs }),
		},
		ResponsesPerNode: map[string]float64{},
	}
	for _, k := range kindNames {
		if v := med(func(c changeResult) float64 { return c.ResponsesPerNode[k] }); v > 0 {
			m.ResponsesPerNode[k] = v
		}
	}
	if !slices.ContainsFunc(r.Changes, func(c changeResult) bool { return c.CPU == nil }) {
		m.CPU = &cpuUse{
			ControlPlane: med(func(c changeResult) float64 { return c.CPU.ControlPlane }),
			Nodes:        med(func(c changeResult) float64 { return c.CPU.Nodes }),
			Other:        med(func(c changeResult) float64 { return c.CPU.Other }),
		}
	}
	r.Fanout = m
	mem := &r.Memory
	n := float64(r.Nodes)
	mem.HeapPerNode = (float64(mem.Connected.HeapAlloc) - float64(mem.Before.HeapAlloc)) / n
	mem.RSSPerNode = (float64(mem.Connected.RSS) - float64(mem.Before.RSS)) / n
	mem.GoroutinesPerNode = float64(mem.Connected.Goroutines-mem.Before.Goroutines) / n
}

func (r *results) print(w io.Writer) {
	fmt.Fprintf(w, "\nxDS control plane: %s simulated Envoy nodes (ADS, state of the world, over TLS; %d stream(s) per connection, %s connections),\n"+
		"1 tenant of %d apps with 2 instances each; the control plane in its own process\n",
		benchkit.Thousands(float64(r.Nodes)), r.StreamsPerConn, benchkit.Thousands(float64(r.Conns)), r.Apps)

	c := r.Connect
	fmt.Fprintf(w, "\nconnect: every node opens its stream at once\n\n")
	fmt.Fprintf(w, "  every node has its first full configuration  %8s after the first stream opened\n", benchkit.Ms(c.AllConfiguredMs))
	fmt.Fprintf(w, "  settled (the last response)                  %8s (the tenant is rebuilt as apps get their first sidecar)\n", benchkit.Ms(c.SettledMs))
	fmt.Fprintf(w, "\n  from a node's stream opening to     %8s  %8s  %8s  %8s\n", "p50", "p90", "p99", "max")
	row := func(label string, l latency) {
		fmt.Fprintf(w, "  %-34s  %8s  %8s  %8s  %8s\n", label, benchkit.Ms(l.P50Ms), benchkit.Ms(l.P90Ms), benchkit.Ms(l.P99Ms), benchkit.Ms(l.MaxMs))
	}
	for _, k := range []kind{kindCDS, kindLDS, kindEDS, kindRDS, kindSDS} {
		if l, ok := c.FirstAck[k.String()]; ok {
			row("its first "+k.String()+" ACK", l)
		}
	}
	row("its first full configuration", c.PerNode)
	fmt.Fprintf(w, "\n  responses per node: %s\n", responseNote(c.ResponsesPerNode))
	if c.CPU != nil {
		fmt.Fprintf(w, "  CPU: control plane %.2f s (%.0f µs per node), nodes %.2f s, other %.2f s\n",
			c.CPU.ControlPlane, c.CPU.ControlPlane*1e6/float64(r.Nodes), c.CPU.Nodes, c.CPU.Other)
	}

	fmt.Fprintf(w, "\nfan-out: an instance added to %s, which every node calls, then Server.Refresh;\n"+
		"the time from the Refresh call to each node's ACK of the new endpoints\n\n", appName(changedApp))
	fmt.Fprintf(w, "%-8s  %9s  %8s  %8s  %8s  %10s  %22s  %s\n", "change", "endpoints", "p50", "p90", "p99", "all acked",
		"CPU ctl plane / other", "responses per node")
	changeRow := func(label, endpoints string, ch changeResult) {
		cpu := "–"
		if ch.CPU != nil {
			cpu = fmt.Sprintf("%.0f ms / %.0f ms", ch.CPU.ControlPlane*1000, ch.CPU.Other*1000)
		}
		fmt.Fprintf(w, "%-8s  %9s  %8s  %8s  %8s  %10s  %22s  %s\n", label, endpoints,
			benchkit.Ms(ch.P50Ms), benchkit.Ms(ch.P90Ms), benchkit.Ms(ch.P99Ms), benchkit.Ms(ch.MaxMs), cpu, responseNote(ch.ResponsesPerNode))
	}
	for _, ch := range r.Changes {
		changeRow(strconv.Itoa(ch.Change), strconv.Itoa(ch.Endpoints), ch)
	}
	changeRow("median", "", r.Fanout)
	share := otherShare(r.Connect.CPU)
	for _, ch := range r.Changes {
		share = max(share, otherShare(ch.CPU))
	}
	if share > benchkit.OtherWarn {
		fmt.Fprintf(w, "\nnote: other processes used up to %.0f%% of the CPU time in a phase; the machine was busy, so\n"+
			"these times are longer than the control plane alone would take\n", 100*share)
	}

	m := r.Memory
	fmt.Fprintf(w, "\ncontrol plane memory (its process, after a GC that returned the free memory)\n\n")
	fmt.Fprintf(w, "%-22s  %10s  %10s  %10s\n", "", "live heap", "RSS", "goroutines")
	memRow := func(label string, s memStats) {
		fmt.Fprintf(w, "%-22s  %10s  %10s  %10s\n", label, bytesOf(float64(s.HeapAlloc)), bytesOf(float64(s.RSS)), benchkit.Thousands(float64(s.Goroutines)))
	}
	memRow("before any node", m.Before)
	memRow(benchkit.Thousands(float64(r.Nodes))+" nodes connected", m.Connected)
	fmt.Fprintf(w, "%-22s  %10s  %10s  %10.1f\n", "per connected node", bytesOf(m.HeapPerNode), bytesOf(m.RSSPerNode), m.GoroutinesPerNode)
	memRow("after the nodes left", m.After)
	if m.After.PeakRSS > 0 {
		fmt.Fprintf(w, "peak RSS (VmHWM) %s\n", bytesOf(float64(m.After.PeakRSS)))
	}
	fmt.Fprintf(w, "\nload average (1, 5, 15 min): %.2f %.2f %.2f before, %.2f %.2f %.2f after\n",
		r.LoadBefore[0], r.LoadBefore[1], r.LoadBefore[2], r.LoadAfter[0], r.LoadAfter[1], r.LoadAfter[2])
}

// otherShare is the share of a phase's CPU time that other processes
// took.
func otherShare(c *cpuUse) float64 {
	if c == nil || c.ControlPlane+c.Nodes+c.Other <= 0 {
		return 0
	}
	return c.Other / (c.ControlPlane + c.Nodes + c.Other)
}

// responseNote lists responses per node by kind, in Envoy's order.
func responseNote(m map[string]float64) string {
	var parts []string
	for _, k := range []kind{kindCDS, kindLDS, kindEDS, kindRDS, kindSDS} {
		if v, ok := m[k.String()]; ok {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, v))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// cpuNote is a change's CPU for a progress line.
func cpuNote(c *cpuUse) string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf("; CPU control plane %.0f ms, nodes %.0f ms, other %.0f ms", c.ControlPlane*1000, c.Nodes*1000, c.Other*1000)
}

// bytesOf formats a byte count in KiB or MiB.
func bytesOf(b float64) string {
	switch {
	case b < 0:
		return "-" + bytesOf(-b)
	case b < 1<<20:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", b/(1<<20))
}

// loadAvg is the machine's load average, zeros where /proc cannot say.
func loadAvg() [3]float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return [3]float64{}
	}
	return parseLoadAvg(b)
}

// parseLoadAvg reads the first three fields of /proc/loadavg.
func parseLoadAvg(b []byte) [3]float64 {
	var out [3]float64
	for i, f := range bytes.Fields(b) {
		if i == 3 {
			break
		}
		out[i], _ = strconv.ParseFloat(string(f), 64)
	}
	return out
}

// parseStatus reads VmRSS and VmHWM, in bytes, from /proc/<pid>/status.
func parseStatus(b []byte) (rss, peak uint64) {
	for line := range bytes.Lines(b) {
		name, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			continue
		}
		v, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			continue
		}
		switch string(name) {
		case "VmRSS":
			rss = v << 10
		case "VmHWM":
			peak = v << 10
		}
	}
	return rss, peak
}
