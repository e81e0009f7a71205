package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	"github.com/blockgate/blockgate/bench/benchkit"
)

// nodesMeter measures a deployment's CPU time by process: the clients
// (this process), every gateway node (each with the NATS server it
// embeds), Postgres and the rest of the machine. It is one
// benchkit.CPUMeter per node, the first of which also reads Postgres.
type nodesMeter struct {
	meters []*benchkit.CPUMeter
}

func newNodesMeter(gatewayPIDs []int, postmasterPID int) *nodesMeter {
	m := &nodesMeter{}
	for i, pid := range gatewayPIDs {
		cm := &benchkit.CPUMeter{GatewayPID: pid}
		if i == 0 {
			cm.PostmasterPID = postmasterPID
		}
		m.meters = append(m.meters, cm)
	}
	return m
}

// nodesSample is one sample of each node's meter.
type nodesSample []benchkit.CPUSample

func (m *nodesMeter) sample() nodesSample {
	s := make(nodesSample, len(m.meters))
	for i, cm := range m.meters {
		s[i] = cm.Sample()
	}
	return s
}

// until returns the CPU time spent between a and b, the gateway's being
// that of all the nodes, and each node's own; ok is false if it could not
// be measured.
func (a nodesSample) until(b nodesSample) (u benchkit.CPUUsage, nodes []float64, ok bool) {
	var first benchkit.CPUUsage
	nodes = make([]float64, len(a))
	for i := range a {
		ui, ok := a[i].Until(b[i])
		if !ok {
			return benchkit.CPUUsage{}, nil, false
		}
		if i == 0 {
			first = ui
		}
		nodes[i] = ui.Gateway
	}
	return combineNodes(first, nodes), nodes, true
}

// combineNodes turns the usage measured with node 1 as "the gateway",
// whose Other holds the other nodes' time too, into one whose Gateway is
// every node's.
func combineNodes(first benchkit.CPUUsage, nodes []float64) benchkit.CPUUsage {
	u := first
	u.Gateway = 0
	for _, g := range nodes {
		u.Gateway += g
	}
	u.Other = max(0, first.Other-(u.Gateway-first.Gateway))
	return u
}

// loadAverage reads the 1, 5 and 15-minute load averages; nil where there
// is no /proc/loadavg.
func loadAverage() []float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	la, err := parseLoadavg(b)
	if err != nil {
		return nil
	}
	return la
}

// parseLoadavg parses /proc/loadavg: "0.32 1.02 1.58 2/345 6789".
func parseLoadavg(b []byte) ([]float64, error) {
	f := bytes.Fields(b)
	if len(f) < 3 {
		return nil, fmt.Errorf("/proc/loadavg: %q", b)
	}
	la := make([]float64, 3)
	for i := range la {
		x, err := strconv.ParseFloat(string(f[i]), 64)
		if err != nil {
			return nil, fmt.Errorf("/proc/loadavg: %w", err)
		}
		la[i] = x
	}
	return la, nil
}
