package gateway

import (
	"log/slog"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/blockgate/blockgate/gateway/gatewaycluster"
	"github.com/blockgate/blockgate/tenants"
)

// TestOnMembers: the live node count divides the rate limits and is the
// cluster gauge.
func TestOnMembers(t *testing.T) {
	q, err := newQuotas(nil, tenants.Limits{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	n := &node{quotas: q}
	m := newMetrics()
	for _, tc := range []struct {
		name  string
		nodes []string
	}{
		{"three", []string{"a", "b", "c"}},
		{"one left", []string{"a", "b"}},
		{"alone", []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var nodes []gatewaycluster.Node
			for _, name := range tc.nodes {
				nodes = append(nodes, gatewaycluster.Node{Name: name})
			}
			n.onMembers(nodes, m)
			if got := q.rate.Share(); got != len(nodes) {
				t.Errorf("rate share %d, want %d", got, len(nodes))
			}
			var got dto.Metric
			if err := m.clusterNodes.Write(&got); err != nil {
				t.Fatal(err)
			}
			if got.GetGauge().GetValue() != float64(len(nodes)) {
				t.Errorf("blockgate_cluster_nodes %v, want %d", got.GetGauge().GetValue(), len(nodes))
			}
		})
	}
}
