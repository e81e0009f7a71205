package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/blockgate/blockgate/xds"
)

// kind is a resource type an Envoy node asks for.
type kind int

const (
	kindLDS kind = iota
	kindCDS
	kindEDS
	kindRDS
	kindSDS
	numKinds
)

var (
	kindNames = [numKinds]string{"LDS", "CDS", "EDS", "RDS", "SDS"}
	kindURLs  = [numKinds]string{resource.ListenerType, resource.ClusterType, resource.EndpointType, resource.RouteType, resource.SecretType}
)

func (k kind) String() string { return kindNames[k] }

// kindOf is the kind of a type URL; ok is false for a type Envoy did not
// ask for here.
func kindOf(typeURL string) (kind, bool) {
	i := slices.Index(kindURLs[:], typeURL)
	return kind(i), i >= 0
}

// changedCluster is the name the server gives the cluster of the changed
// app's sidecars (targetCluster in package xds); the test checks that the
// nodes find it.
var changedCluster = "outbound|" + appName(changedApp)

// subscription is what a node asked for of one kind, and the last
// response of it, which the node ACKed.
type subscription struct {
	// names are the resources asked for, sorted; none for the wildcard
	// kinds (LDS, CDS).
	names           []string
	asked, acked    bool
	version, nonce  string
	firstAckedAfter time.Duration
}

// simNode is a simulated Envoy sidecar: one ADS stream (state of the
// world) on which it asks, ACKs and reports to a tracker. A node is used
// by one goroutine.
type simNode struct {
	k    int
	spec nodeSpec
	tr   *tracker

	st     discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	opened time.Time
	subs   [numKinds]subscription
	// The secrets the clusters and the listeners name.
	clusterSecrets, listenerSecrets []string
	configured                      bool
}

// run opens the node's stream on conn and serves it until ctx ends or the
// stream fails; it always returns an error.
func (n *simNode) run(ctx context.Context, conn grpc.ClientConnInterface) error {
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+joinToken(n.spec.app))
	n.opened = time.Now()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("opening the stream: %w", err)
	}
	n.st = st
	meta, err := structpb.NewStruct(map[string]any{xds.MetaAppPort: appPort})
	if err != nil {
		return err
	}
	node := &core.Node{Id: n.spec.id, Cluster: appName(n.spec.app), UserAgentName: "envoy", Metadata: meta}
	// Envoy asks for the clusters first, then the listeners, both
	// wildcard; its node goes in the first request only.
	if err := n.ask(kindCDS, nil, node); err != nil {
		return err
	}
	if err := n.ask(kindLDS, nil, nil); err != nil {
		return err
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		if err := n.handle(resp); err != nil {
			return err
		}
	}
}

// ask sends a request of kind k for names (nil: wildcard), with the
// version and nonce of the last response of that kind.
func (n *simNode) ask(k kind, names []string, node *core.Node) error {
	s := &n.subs[k]
	s.names, s.asked = names, true
	return n.st.Send(&discovery.DiscoveryRequest{
		Node:          node,
		TypeUrl:       kindURLs[k],
		ResourceNames: names,
		VersionInfo:   s.version,
		ResponseNonce: s.nonce,
	})
}

// want asks for names of kind k unless they are what the node asked for
// already.
func (n *simNode) want(k kind, names []string) error {
	if len(names) == 0 || (n.subs[k].asked && slices.Equal(n.subs[k].names, names)) {
		return nil
	}
	return n.ask(k, names, nil)
}

// handle asks for what a response names, then ACKs it.
func (n *simNode) handle(resp *discovery.DiscoveryResponse) error {
	k, ok := kindOf(resp.GetTypeUrl())
	if !ok || !n.subs[k].asked {
		return fmt.Errorf("a response of type %s, which the node did not ask for", resp.GetTypeUrl())
	}
	n.tr.received(k)
	endpoints := -1
	switch k {
	case kindCDS:
		eds, secrets, err := clusterNames(resp.GetResources())
		if err != nil {
			return err
		}
		n.clusterSecrets = secrets
		if err := n.want(kindEDS, eds); err != nil {
			return err
		}
		if err := n.want(kindSDS, union(n.clusterSecrets, n.listenerSecrets)); err != nil {
			return err
		}
	case kindLDS:
		rds, secrets, err := listenerNames(resp.GetResources())
		if err != nil {
			return err
		}
		n.listenerSecrets = secrets
		if err := n.want(kindRDS, rds); err != nil {
			return err
		}
		if err := n.want(kindSDS, union(n.clusterSecrets, n.listenerSecrets)); err != nil {
			return err
		}
	case kindEDS:
		var err error
		if endpoints, err = endpointCount(resp.GetResources(), changedCluster); err != nil {
			return err
		}
	}
	s := &n.subs[k]
	s.version, s.nonce = resp.GetVersionInfo(), resp.GetNonce()
	if err := n.ask(k, s.names, nil); err != nil {
		return err
	}
	at := time.Now()
	if !s.acked {
		s.acked = true
		s.firstAckedAfter = at.Sub(n.opened)
	}
	n.tr.acked(n.k, at, endpoints)
	if !n.configured && n.complete() {
		n.configured = true
		var first [numKinds]time.Duration
		for k := range numKinds {
			first[k] = n.subs[k].firstAckedAfter
		}
		n.tr.configured(n.k, at, at.Sub(n.opened), first)
	}
	return nil
}

// complete says whether the node has ACKed the listeners, the clusters,
// and a response of every other kind it asked for: its first full
// configuration.
func (n *simNode) complete() bool {
	if !n.subs[kindLDS].acked || !n.subs[kindCDS].acked {
		return false
	}
	for _, s := range n.subs {
		if s.asked && !s.acked {
			return false
		}
	}
	return true
}

// clusterNames lists the clusters' EDS service names and the secrets their
// TLS contexts take over SDS, each sorted and once.
func clusterNames(rs []*anypb.Any) (eds, secrets []string, err error) {
	for _, r := range rs {
		c := &clusterv3.Cluster{}
		if err := r.UnmarshalTo(c); err != nil {
			return nil, nil, fmt.Errorf("a cluster: %w", err)
		}
		if c.GetType() == clusterv3.Cluster_EDS {
			name := c.GetEdsClusterConfig().GetServiceName()
			if name == "" {
				name = c.GetName()
			}
			eds = append(eds, name)
		}
		if tc := c.GetTransportSocket().GetTypedConfig(); tc.MessageIs(&tlsv3.UpstreamTlsContext{}) {
			u := &tlsv3.UpstreamTlsContext{}
			if err := tc.UnmarshalTo(u); err != nil {
				return nil, nil, fmt.Errorf("the TLS context of cluster %s: %w", c.GetName(), err)
			}
			secrets = append(secrets, sdsNames(u.GetCommonTlsContext())...)
		}
	}
	return sortedSet(eds), sortedSet(secrets), nil
}

// listenerNames lists the route configurations the listeners' HTTP
// connection managers take over RDS and the secrets their TLS contexts take
// over SDS, each sorted and once.
func listenerNames(rs []*anypb.Any) (rds, secrets []string, err error) {
	for _, r := range rs {
		l := &listenerv3.Listener{}
		if err := r.UnmarshalTo(l); err != nil {
			return nil, nil, fmt.Errorf("a listener: %w", err)
		}
		for _, fc := range l.GetFilterChains() {
			if tc := fc.GetTransportSocket().GetTypedConfig(); tc.MessageIs(&tlsv3.DownstreamTlsContext{}) {
				d := &tlsv3.DownstreamTlsContext{}
				if err := tc.UnmarshalTo(d); err != nil {
					return nil, nil, fmt.Errorf("the TLS context of listener %s: %w", l.GetName(), err)
				}
				secrets = append(secrets, sdsNames(d.GetCommonTlsContext())...)
			}
			for _, f := range fc.GetFilters() {
				if tc := f.GetTypedConfig(); tc.MessageIs(&hcm.HttpConnectionManager{}) {
					m := &hcm.HttpConnectionManager{}
					if err := tc.UnmarshalTo(m); err != nil {
						return nil, nil, fmt.Errorf("the HTTP connection manager of listener %s: %w", l.GetName(), err)
					}
					if name := m.GetRds().GetRouteConfigName(); name != "" {
						rds = append(rds, name)
					}
				}
			}
		}
	}
	return sortedSet(rds), sortedSet(secrets), nil
}

// sdsNames are the secrets a TLS context takes over SDS: certificates and
// validation contexts.
func sdsNames(c *tlsv3.CommonTlsContext) []string {
	var out []string
	for _, s := range c.GetTlsCertificateSdsSecretConfigs() {
		out = append(out, s.GetName())
	}
	if s := c.GetValidationContextSdsSecretConfig(); s != nil {
		out = append(out, s.GetName())
	}
	if s := c.GetCombinedValidationContext().GetValidationContextSdsSecretConfig(); s != nil {
		out = append(out, s.GetName())
	}
	return out
}

// endpointCount is how many endpoints the assignment of cluster has among
// rs, -1 if it is not there.
func endpointCount(rs []*anypb.Any, cluster string) (int, error) {
	for _, r := range rs {
		cla := &endpointv3.ClusterLoadAssignment{}
		if err := r.UnmarshalTo(cla); err != nil {
			return 0, fmt.Errorf("a cluster load assignment: %w", err)
		}
		if cla.GetClusterName() != cluster {
			continue
		}
		n := 0
		for _, l := range cla.GetEndpoints() {
			n += len(l.GetLbEndpoints())
		}
		return n, nil
	}
	return -1, nil
}

// union is the sorted set of the names in a and b.
func union(a, b []string) []string { return sortedSet(slices.Concat(a, b)) }

func sortedSet(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
