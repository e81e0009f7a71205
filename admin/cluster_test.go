package admin

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

type fakeCluster []ClusterNode

func (f fakeCluster) Nodes() []ClusterNode { return append([]ClusterNode(nil), f...) }

func TestClusterNodes(t *testing.T) {
	ev := newEnv(t)
	var nodes []ClusterNode
	ev.decode(ev.must(platformToken, "GET", "/v1/cluster/nodes", "", http.StatusOK), &nodes)
	if nodes == nil || len(nodes) != 0 {
		t.Fatalf("without a cluster: %v, want an empty list", nodes)
	}

	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ev.svc.SetCluster(fakeCluster{
		{Name: "gw-1", HTTP: "10.0.0.1:3500", GRPC: "10.0.0.1:50001", Admin: "10.0.0.1:8080", Version: "v1", Started: started, LastSeen: started},
		{Name: "gw-2", Version: "v1"},
	})
	ev.decode(ev.must(platformToken, "GET", "/v1/cluster/nodes", "", http.StatusOK), &nodes)
	if len(nodes) != 2 || nodes[0].Name != "gw-1" || nodes[0].GRPC != "10.0.0.1:50001" || !nodes[0].Started.Equal(started) {
		t.Fatalf("nodes %+v", nodes)
	}
	if code, body := ev.do("", "GET", "/v1/cluster/nodes", ""); code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d %s", code, body)
	}
	if code, body := ev.do(ev.acmeAdmin.Text, "GET", "/v1/cluster/nodes", ""); code != http.StatusForbidden {
		t.Fatalf("a tenant admin: %d %s", code, body)
	}
}

func TestReadyz(t *testing.T) {
	ev := newEnv(t)
	ev.must("", "GET", "/readyz", "", http.StatusOK)
	var ready error
	ev.h.cfg.Ready = func(context.Context) error { return ready }
	ev.must("", "GET", "/readyz", "", http.StatusOK)
	ready = errors.New("JetStream has no meta leader")
	body := ev.must("", "GET", "/readyz", "", http.StatusServiceUnavailable)
	if errorCode(body) != "ERR_NOT_READY" {
		t.Fatalf("not ready: %s", body)
	}
	// Liveness does not depend on the dependencies.
	ev.must("", "GET", "/healthz", "", http.StatusNoContent)
}
