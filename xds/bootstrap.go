package xds

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"sigs.k8s.io/yaml"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
)

// xdsClusterName is the static cluster of the xDS server in a bootstrap.
const xdsClusterName = "xds_cluster"

// BootstrapConfig describes an app's Envoy sidecar for Bootstrap.
type BootstrapConfig struct {
	Tenant tenants.ID
	App    string
	// Instance names this sidecar among the app's (a hostname, a pod
	// name); it is the last part of the node id. Required.
	Instance string
	// AppPort is the port the app listens on at 127.0.0.1, where the
	// inbound listener forwards; 0 for an app that takes no calls.
	AppPort int
	// JoinToken is the credential the sidecar presents to the xDS server.
	// Required.
	JoinToken string
	// XDSAddress is the gateway's xDS server, host:port.
	XDSAddress string
	// XDSTrustBundle, when set, makes the sidecar speak TLS to the xDS
	// server and verify it against this PEM bundle (the CA's), requiring
	// the gateway's SPIFFE ID spiffe://<TrustDomain>/gateway. Empty means
	// plaintext, which sends the join token in the clear.
	XDSTrustBundle []byte
	TrustDomain    spiffeid.TrustDomain
	// AdminPort is the port of Envoy's admin interface on 127.0.0.1
	// (9901 by convention); 0 for no admin interface.
	AdminPort int
}

// Bootstrap is a complete Envoy bootstrap (YAML) for an app's sidecar: its
// node id and metadata, a static cluster for the xDS server, and ADS for
// listeners and clusters (and through them routes, endpoints and secrets),
// the join token going as initial metadata on the ADS stream. The file
// holds a credential: keep it as private as the token.
func Bootstrap(c BootstrapConfig) ([]byte, error) {
	b, err := bootstrapProto(c)
	if err != nil {
		return nil, err
	}
	js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encoding the bootstrap: %w", err)
	}
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		return nil, fmt.Errorf("encoding the bootstrap: %w", err)
	}
	header := fmt.Sprintf("# Envoy bootstrap for app %s of tenant %s (node %s).\n# It holds a join token: keep it private.\n",
		c.App, c.Tenant, NodeID(c.Tenant, c.App, c.Instance))
	return append([]byte(header), y...), nil
}

func bootstrapProto(c BootstrapConfig) (*bootstrapv3.Bootstrap, error) {
	id := NodeID(c.Tenant, c.App, c.Instance)
	if _, _, _, err := ParseNodeID(id); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(c.JoinToken, tenantspg.JoinTokenPrefix) {
		return nil, fmt.Errorf("a join token (%s...) is required", tenantspg.JoinTokenPrefix)
	}
	host, port, err := splitHostPort(c.XDSAddress)
	if err != nil {
		return nil, fmt.Errorf("xDS address: %w", err)
	}
	if c.AppPort < 0 || c.AppPort > 65535 || c.AdminPort < 0 || c.AdminPort > 65535 {
		return nil, errors.New("app and admin ports must be 0 to 65535")
	}
	meta := map[string]any{MetaTenant: string(c.Tenant), MetaApp: c.App, MetaInstance: c.Instance}
	if c.AppPort > 0 {
		meta[MetaAppPort] = strconv.Itoa(c.AppPort)
	}
	md, err := structpb.NewStruct(meta)
	if err != nil {
		return nil, err
	}
	b := &builder{}
	xdsCluster := &clusterv3.Cluster{
		Name:                          xdsClusterName,
		ConnectTimeout:                durationpb.New(connectTimeout),
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS},
		DnsLookupFamily:               clusterv3.Cluster_V4_PREFERRED,
		LbPolicy:                      clusterv3.Cluster_ROUND_ROBIN,
		LoadAssignment:                loadAssignment(xdsClusterName, []hostPort{{host, port}}),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{httpProtocolOptionsKey: b.any(http2Options())},
	}
	if len(c.XDSTrustBundle) > 0 {
		if c.TrustDomain.IsZero() {
			return nil, errors.New("a trust domain is required to verify the xDS server")
		}
		sni := host
		if isIP(host) {
			sni = ""
		}
		xdsCluster.TransportSocket = b.staticUpstreamTLS(authca.GatewayID(c.TrustDomain).String(), sni, c.XDSTrustBundle)
	}
	out := &bootstrapv3.Bootstrap{
		Node: &core.Node{Id: id, Cluster: string(c.Tenant) + "/" + c.App, Metadata: md},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Clusters: []*clusterv3.Cluster{xdsCluster},
		},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &core.ApiConfigSource{
				ApiType:                   core.ApiConfigSource_GRPC,
				TransportApiVersion:       core.ApiVersion_V3,
				SetNodeOnFirstMessageOnly: true,
				GrpcServices: []*core.GrpcService{{
					TargetSpecifier: &core.GrpcService_EnvoyGrpc_{EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: xdsClusterName}},
					InitialMetadata: []*core.HeaderValue{{Key: "authorization", Value: "Bearer " + c.JoinToken}},
				}},
			},
			LdsConfig: adsSource(),
			CdsConfig: adsSource(),
		},
	}
	if c.AdminPort > 0 {
		out.Admin = &bootstrapv3.Admin{Address: socketAddress("127.0.0.1", uint32(c.AdminPort))}
	}
	if b.err != nil {
		return nil, b.err
	}
	if err := ValidateDeep(out); err != nil {
		return nil, fmt.Errorf("invalid bootstrap: %w", err)
	}
	return out, nil
}
