package gateway

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockgate/blockgate/admin"
	"github.com/blockgate/blockgate/gateway/gatewaycluster"
	"github.com/blockgate/blockgate/gateway/gatewaynats"
)

// A cluster is N nodes sharing one Postgres, whose embedded NATS servers
// route to each other (Config.ClusterName) so that JetStream replicates, or
// which share an external NATS cluster (Config.NATSURL). Registry changes
// reach every node through Postgres notifications; the nodes learn of each
// other through gatewaycluster's heartbeats, which give the rate limits'
// share and the replicas of JetStream streams and buckets.

// maxReplicas is the replicas of streams and buckets in a cluster big
// enough: RAFT with three survives losing one server.
const maxReplicas = 3

// natsConfig is the embedded NATS server's configuration: a lone server as
// always without ClusterName, else one node of the NATS cluster.
func (n *node) natsConfig() gatewaynats.Config {
	cfg := gatewaynats.Config{Port: n.cfg.NATSPort, StoreDir: filepath.Join(n.cfg.DataDir, "nats"), Logger: n.cfg.Logger}
	if n.cfg.ClusterName != "" {
		host := n.cfg.ClusterHost
		if host == "" {
			host = n.cfg.Host
		}
		cfg.ServerName = n.cfg.NodeName
		cfg.Cluster = gatewaynats.Cluster{Name: n.cfg.ClusterName, Host: host, Port: n.cfg.ClusterPort,
			Routes: n.cfg.ClusterPeers, Secret: n.cfg.ClusterSecret}
		if !n.cfg.ClusterPlainRoutes {
			cfg.Cluster.TLS = n.ca.RouteTLSConfig()
		}
	}
	return cfg
}

// replicas is what streams and buckets are created with: min(3, the
// cluster's size as known at start). The embedded cluster's size is the
// number of servers its routes name; an external cluster's is the number
// of servers the client has learnt of (1 for a lone server). Membership
// raises it when the embedded cluster grows (onMembers).
func (n *node) replicas() int {
	size := 1
	switch {
	case n.nats != nil:
		size = n.nats.SeedSize()
	case n.nc.ConnectedClusterName() != "":
		size = len(n.nc.Servers())
	}
	return max(1, min(maxReplicas, size))
}

// newMembership builds the heartbeats of this node, served at ep.
func (n *node) newMembership(ep Endpoints, m *metrics) (*gatewaycluster.Membership, error) {
	js, err := jetstream.New(n.nc)
	if err != nil {
		return nil, err
	}
	return gatewaycluster.New(js, gatewaycluster.Config{
		Self: gatewaycluster.Node{Name: n.cfg.NodeName, HTTP: ep.HTTP, GRPC: ep.GRPC, Admin: ep.Admin,
			Version: n.cfg.Version, StartedAt: time.Now().UTC()},
		Replicas: n.replicas(),
		OnChange: func(nodes []gatewaycluster.Node) { n.onMembers(nodes, m) },
		Logger:   n.cfg.Logger,
	})
}

// onMembers follows the live nodes: each enforces its share of the rate
// limits, and an embedded cluster that has grown moves streams and the
// membership bucket to more replicas (never fewer: a node lost for a while
// should come back to its replicas, not have them taken away).
func (n *node) onMembers(nodes []gatewaycluster.Node, m *metrics) {
	n.quotas.SetNodes(len(nodes))
	m.clusterNodes.Set(float64(len(nodes)))
	if n.nats != nil && n.nats.Clustered() {
		r := min(maxReplicas, len(nodes))
		n.broker.SetReplicas(r)
		n.members.SetReplicas(r)
		if n.sidecars != nil {
			n.sidecars.SetReplicas(r)
		}
	}
}

// clusterView is the admin API's view of the cluster.
type clusterView struct{ m *gatewaycluster.Membership }

// Nodes implements admin.Cluster.
func (v clusterView) Nodes() []admin.ClusterNode {
	members := v.m.Members()
	out := make([]admin.ClusterNode, len(members))
	for i, m := range members {
		out[i] = admin.ClusterNode{Name: m.Name, HTTP: m.HTTP, GRPC: m.GRPC, Admin: m.Admin, Version: m.Version,
			Started: m.StartedAt, LastSeen: m.LastSeen}
	}
	return out
}

// readyz says whether the node can serve, for the admin API's /readyz:
// Postgres answers and JetStream is current (in an embedded cluster: it
// has a meta leader that this node follows). The errors are for anyone who
// asks, so they carry no detail.
func (n *node) readyz(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := n.pool.Ping(ctx); err != nil {
		n.cfg.Logger.Debug("not ready: postgres", "err", err)
		return errors.New("postgres does not answer")
	}
	if n.nc.Status() != nats.CONNECTED {
		return errors.New("not connected to NATS")
	}
	if n.nats != nil {
		if err := n.nats.Current(); err != nil {
			n.cfg.Logger.Debug("not ready: JetStream", "err", err)
			return errors.New("JetStream is not current: no meta leader, or this node has not caught up")
		}
		return nil
	}
	js, err := jetstream.New(n.nc)
	if err == nil {
		_, err = js.AccountInfo(ctx)
	}
	if err != nil {
		n.cfg.Logger.Debug("not ready: JetStream", "err", err)
		return errors.New("JetStream does not answer")
	}
	return nil
}
