package xds

import (
	"encoding/json"
	"errors"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/blockgate/blockgate/tenants"
)

// proxylessConfig builds the snapshot of a proxyless gRPC client of app:
// for each gRPC app it may invoke every method of, a client listener
// named after the app (what "xds:///<app>" asks for) with its route
// inline, an EDS cluster and its endpoints, the app's registered
// instances themselves. grpcs:// instances are reached over mTLS with
// the client's certificate provider; grpc:// ones in plaintext.
func (b *builder) proxylessConfig(v *view, app string) *configSet {
	set := &configSet{}
	for _, target := range v.ids {
		if v.reach(app, target) != reachAll {
			continue
		}
		eps, tls := grpcEndpoints(v.apps[target])
		if len(eps) == 0 {
			continue
		}
		cluster := targetCluster(target)
		set.add(b.apiListener(target, cluster))
		c := &clusterv3.Cluster{
			Name:                 cluster,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
			LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		}
		if tls {
			c.TransportSocket = b.proxylessTLS(b.appID(v, target))
		}
		set.add(c)
		set.add(loadAssignment(cluster, eps))
	}
	return set
}

// apiListener is the client listener of a proxyless client for target:
// an HttpConnectionManager with the route inline (one round trip less
// than RDS) that sends every call to cluster.
func (b *builder) apiListener(target, cluster string) *listenerv3.Listener {
	m := &hcm.HttpConnectionManager{
		StatPrefix: "proxyless",
		RouteSpecifier: &hcm.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: target,
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    target,
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Name:  target,
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
					}},
				}},
			}},
		}},
		HttpFilters: []*hcm.HttpFilter{b.routerFilter()},
	}
	return &listenerv3.Listener{
		Name:        target,
		ApiListener: &listenerv3.ApiListener{ApiListener: b.any(m)},
	}
}

// ProxylessConfig describes a proxyless gRPC client for ProxylessBootstrap.
type ProxylessConfig struct {
	Tenant   tenants.ID
	App      string
	Instance string
	// XDSAddress is the gateway's xDS server, host:port. The server must
	// serve TLS with a certificate valid for host (the gateway's
	// certificate names its DNS names and addresses).
	XDSAddress string
	// CertificateFile and PrivateKeyFile are the app's SVID and its key,
	// and CAFile the trust bundle, all PEM (as the admin API's SVID
	// endpoint returns them). They authenticate the client to the xDS
	// server, and are the certificate provider for mTLS to other apps;
	// gRPC rereads them when they change.
	CertificateFile, PrivateKeyFile, CAFile string
}

// ProxylessBootstrap is the xDS bootstrap (JSON, for GRPC_XDS_BOOTSTRAP or
// GRPC_XDS_BOOTSTRAP_CONFIG) of a proxyless gRPC client of an app, which
// then dials "xds:///<app-id>" to call another app of its tenant. The
// client must use xDS credentials (google.golang.org/grpc/credentials/xds)
// for the calls to be mTLS. It authenticates to the xDS server with its
// SVID: gRPC sends no join token.
func ProxylessBootstrap(c ProxylessConfig) ([]byte, error) {
	if _, _, _, err := ParseNodeID(NodeID(c.Tenant, c.App, c.Instance)); err != nil {
		return nil, err
	}
	if _, _, err := splitHostPort(c.XDSAddress); err != nil {
		return nil, fmt.Errorf("xDS address: %w", err)
	}
	if c.CertificateFile == "" || c.PrivateKeyFile == "" || c.CAFile == "" {
		return nil, errors.New("a proxyless client needs its SVID, its key and the trust bundle as files")
	}
	files := map[string]string{
		"certificate_file":    c.CertificateFile,
		"private_key_file":    c.PrivateKeyFile,
		"ca_certificate_file": c.CAFile,
	}
	provider := map[string]any{"refresh_interval": "60s"}
	for k, v := range files {
		provider[k] = v
	}
	doc := map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      c.XDSAddress,
			"channel_creds":   []any{map[string]any{"type": "tls", "config": files}},
			"server_features": []string{"xds_v3"},
		}},
		"node": map[string]any{
			"id": NodeID(c.Tenant, c.App, c.Instance),
			"metadata": map[string]any{
				MetaTenant: string(c.Tenant), MetaApp: c.App, MetaInstance: c.Instance, MetaProxyless: true,
			},
		},
		"certificate_providers": map[string]any{
			ProxylessCertProvider: map[string]any{"plugin_name": "file_watcher", "config": provider},
		},
	}
	return json.MarshalIndent(doc, "", "  ")
}
