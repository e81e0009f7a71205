package xds

import (
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacfilter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Names of the resources in an Envoy node's snapshot.
const (
	listenerOutboundHTTP = "outbound_http"
	listenerOutboundGRPC = "outbound_grpc"
	listenerInbound      = "inbound"
	routeOutboundHTTP    = "outbound_http"
	routeOutboundGRPC    = "outbound_grpc"
	routeInbound         = "inbound"
	clusterGatewayHTTP   = "gateway|http"
	clusterGatewayGRPC   = "gateway|grpc"

	// headerAppID names the target app of a call in Dapr's header-based
	// service invocation (HTTP) and gRPC proxying.
	headerAppID = "dapr-app-id"
	// headerCallerAppID tells the callee who called, as daprd does.
	headerCallerAppID = "dapr-caller-app-id"

	// httpProtocolOptionsKey is the extension name of HttpProtocolOptions
	// in a cluster's typed_extension_protocol_options.
	httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

	connectTimeout = 5 * time.Second
)

// targetCluster names the cluster of a target app's instances.
func targetCluster(app string) string { return "outbound|" + app }

// localCluster names the cluster of the node's own app.
func localCluster(port int) string { return "inbound|" + strconv.Itoa(port) }

// envoyConfig builds the listeners, routes, clusters and endpoints of an
// Envoy sidecar of app with its app on appPort (0: no inbound listener).
// Every node of the app with the same port shares them; only the secrets
// are the node's own.
func (b *builder) envoyConfig(v *view, app string, appPort int) *configSet {
	set := &configSet{}
	self := b.appID(v, app)
	var httpRoutes, grpcRoutes []*routev3.Route
	for _, target := range v.directTargets(app) {
		set.add(b.targetCluster(v, self, target))
		if cla := b.targetEndpoints(v, target); cla != nil {
			set.add(cla)
		}
		httpRoutes = append(httpRoutes, b.invokeRoute(app, target))
		grpcRoutes = append(grpcRoutes, b.headerRoute(app, target, "grpc"))
	}
	// Header-based invocation over HTTP comes after every path-based
	// route, so that /v1.0/invoke/<target>/... wins over the header.
	for _, target := range v.directTargets(app) {
		httpRoutes = append(httpRoutes, b.headerRoute(app, target, "http"))
	}
	httpRoutes = append(httpRoutes, b.gatewayRoute(clusterGatewayHTTP))
	grpcRoutes = append(grpcRoutes, b.gatewayRoute(clusterGatewayGRPC))

	set.add(b.outboundListener(listenerOutboundHTTP, OutboundHTTPPort, routeOutboundHTTP, false))
	set.add(b.outboundListener(listenerOutboundGRPC, OutboundGRPCPort, routeOutboundGRPC, true))
	set.add(b.routeConfig(routeOutboundHTTP, "dapr_http", httpRoutes))
	set.add(b.routeConfig(routeOutboundGRPC, "dapr_grpc", grpcRoutes))
	set.add(b.gatewayCluster(self, clusterGatewayHTTP, b.gwHTTPHost, b.gwHTTPPort, false))
	set.add(b.gatewayCluster(self, clusterGatewayGRPC, b.gwGRPCHost, b.gwGRPCPort, true))

	if appPort > 0 {
		set.add(b.inboundListener(v, app, self))
		set.add(b.routeConfig(routeInbound, "app", []*routev3.Route{{
			Name:  "app",
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: localCluster(appPort)},
				Timeout:          durationpb.New(0),
			}},
		}}))
		set.add(b.localCluster(appPort))
	}
	return set
}

func (b *builder) outboundListener(name string, port uint32, routeName string, grpc bool) *listenerv3.Listener {
	m := &hcm.HttpConnectionManager{
		StatPrefix:     name,
		CodecType:      hcm.HttpConnectionManager_AUTO,
		RouteSpecifier: rds(routeName),
		HttpFilters:    []*hcm.HttpFilter{b.routerFilter()},
	}
	if grpc {
		// gRPC apps speak HTTP/2 with prior knowledge.
		m.CodecType = hcm.HttpConnectionManager_HTTP2
		m.Http2ProtocolOptions = &core.Http2ProtocolOptions{}
		// Dapr's streams (subscriptions, actors, workflows) may be quiet
		// for longer than the default five minutes.
		m.StreamIdleTimeout = durationpb.New(0)
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: socketAddress("127.0.0.1", port),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{b.hcmFilter(m)},
		}},
	}
}

// inboundListener accepts mTLS from the trust domain, admits the callers
// that policy allows (RBAC on the peer's SPIFFE ID) and the gateway, and
// tells the app who called in x-forwarded-client-cert.
func (b *builder) inboundListener(v *view, app, self string) *listenerv3.Listener {
	m := &hcm.HttpConnectionManager{
		StatPrefix:                  listenerInbound,
		CodecType:                   hcm.HttpConnectionManager_AUTO,
		RouteSpecifier:              rds(routeInbound),
		HttpFilters:                 []*hcm.HttpFilter{b.rbacFilter(v, app), b.routerFilter()},
		ForwardClientCertDetails:    hcm.HttpConnectionManager_SANITIZE_SET,
		SetCurrentClientCertDetails: &hcm.HttpConnectionManager_SetCurrentClientCertDetails{Uri: true},
	}
	return &listenerv3.Listener{
		Name:    listenerInbound,
		Address: socketAddress("0.0.0.0", b.inboundPort),
		FilterChains: []*listenerv3.FilterChain{{
			Filters:         []*listenerv3.Filter{b.hcmFilter(m)},
			TransportSocket: b.downstreamTLS(self),
		}},
	}
}

// rbacFilter admits, on the inbound listener of app, the SPIFFE IDs of the
// apps that may invoke every method of it, and the gateway's.
func (b *builder) rbacFilter(v *view, app string) *hcm.HttpFilter {
	policies := map[string]*rbacv3.Policy{
		"gateway": principalPolicy(b.gatewayID().String()),
	}
	for _, caller := range v.callers(app) {
		policies["app:"+caller] = principalPolicy(b.appID(v, caller))
	}
	return &hcm.HttpFilter{
		Name: wellknown.HTTPRoleBasedAccessControl,
		ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: b.any(&rbacfilter.RBAC{
			Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: policies},
		})},
	}
}

func principalPolicy(spiffeID string) *rbacv3.Policy {
	return &rbacv3.Policy{
		Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
		Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Authenticated_{
			Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: exact(spiffeID)},
		}}},
	}
}

func (b *builder) routerFilter() *hcm.HttpFilter {
	return &hcm.HttpFilter{
		Name:       wellknown.Router,
		ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: b.any(&routerv3.Router{})},
	}
}

func (b *builder) hcmFilter(m *hcm.HttpConnectionManager) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name:       wellknown.HTTPConnectionManager,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: b.any(m)},
	}
}

func rds(name string) *hcm.HttpConnectionManager_Rds {
	return &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{ConfigSource: adsSource(), RouteConfigName: name}}
}

func (b *builder) routeConfig(name, vhost string, routes []*routev3.Route) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    vhost,
			Domains: []string{"*"},
			Routes:  routes,
		}},
	}
}

// invokeRoute sends /v1.0/invoke/<target>/method/<rest> to the target's
// sidecars as /<rest> (query kept), as daprd does.
func (b *builder) invokeRoute(caller, target string) *routev3.Route {
	return &routev3.Route{
		Name:  "invoke|" + target,
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/v1.0/invoke/" + target + "/method/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: targetCluster(target)},
			PrefixRewrite:    "/",
			Timeout:          durationpb.New(0),
		}},
		RequestHeadersToAdd: callerHeader(caller),
	}
}

// headerRoute sends a call carrying dapr-app-id: <target> (gRPC proxying,
// or HTTP invocation by header) to the target's sidecars unchanged.
func (b *builder) headerRoute(caller, target, proto string) *routev3.Route {
	return &routev3.Route{
		Name: proto + "|" + target,
		Match: &routev3.RouteMatch{
			PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
			Headers: []*routev3.HeaderMatcher{{
				Name:                 headerAppID,
				HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact(target)},
			}},
		},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: targetCluster(target)},
			Timeout:          durationpb.New(0),
		}},
		RequestHeadersToAdd: callerHeader(caller),
	}
}

// callerHeader sets dapr-caller-app-id, overwriting what the app sent. The
// callee's sidecar passes the verified identity in
// x-forwarded-client-cert as well.
func callerHeader(caller string) []*core.HeaderValueOption {
	return []*core.HeaderValueOption{{
		Header:       &core.HeaderValue{Key: headerCallerAppID, Value: caller},
		AppendAction: core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}}
}

// gatewayRoute sends everything else to the gateway.
func (b *builder) gatewayRoute(cluster string) *routev3.Route {
	return &routev3.Route{
		Name:  "gateway",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
			// Streams (subscriptions, actors, workflows) last as long as
			// they last.
			Timeout: durationpb.New(0),
		}},
	}
}

// targetCluster is the cluster of a target app's sidecars: EDS when every
// host is an IP address (Envoy takes only addresses over EDS), otherwise
// STRICT_DNS with the endpoints inline. The protocol follows the caller's
// (HTTP/1.1 from 3500, HTTP/2 from 50001); the upstream is mTLS with the
// node's SVID, and the peer must present exactly the target's SPIFFE ID.
func (b *builder) targetCluster(v *view, self, target string) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:           targetCluster(target),
		ConnectTimeout: durationpb.New(connectTimeout),
		LbPolicy:       clusterv3.Cluster_ROUND_ROBIN,
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			httpProtocolOptionsKey: b.any(downstreamProtocolOptions()),
		},
		TransportSocket:  b.upstreamTLS(self, b.appID(v, target), "", nil),
		OutlierDetection: &clusterv3.OutlierDetection{},
	}
	eps := v.sidecarEndpoints(target, b.inboundPort)
	if allIPs(eps) {
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
		c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()}
	} else {
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		c.DnsLookupFamily = clusterv3.Cluster_V4_PREFERRED
		c.LoadAssignment = loadAssignment(c.Name, eps)
	}
	return c
}

// targetEndpoints is the ClusterLoadAssignment of an EDS target cluster,
// nil for a STRICT_DNS one.
func (b *builder) targetEndpoints(v *view, target string) *endpointv3.ClusterLoadAssignment {
	eps := v.sidecarEndpoints(target, b.inboundPort)
	if !allIPs(eps) {
		return nil
	}
	return loadAssignment(targetCluster(target), eps)
}

// gatewayCluster reaches the gateway's API (HTTP or gRPC) over mTLS, with
// the node's SVID as the app's credential; the gateway must present its
// own SPIFFE ID. STRICT_DNS, so that a name that resolves to several
// gateway nodes spreads the load.
func (b *builder) gatewayCluster(self, name, host string, port uint32, grpc bool) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(connectTimeout),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS},
		DnsLookupFamily:      clusterv3.Cluster_V4_PREFERRED,
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		LoadAssignment:       loadAssignment(name, []hostPort{{host, port}}),
	}
	var alpn []string
	if grpc {
		// grpc-go servers refuse TLS without ALPN h2.
		alpn = []string{"h2"}
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsKey: b.any(http2Options())}
	}
	sni := host
	if isIP(host) {
		sni = ""
	}
	c.TransportSocket = b.upstreamTLS(self, b.gatewayID().String(), sni, alpn)
	return c
}

// localCluster is the node's own app on 127.0.0.1, spoken to in the
// protocol the caller used.
func (b *builder) localCluster(port int) *clusterv3.Cluster {
	name := localCluster(port)
	return &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(connectTimeout),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		LoadAssignment:       loadAssignment(name, []hostPort{{"127.0.0.1", uint32(port)}}),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			httpProtocolOptionsKey: b.any(downstreamProtocolOptions()),
		},
	}
}

// downstreamProtocolOptions speak to the upstream in the protocol the
// downstream used.
func downstreamProtocolOptions() *upstreamhttp.HttpProtocolOptions {
	return &upstreamhttp.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttp.HttpProtocolOptions_UseDownstreamProtocolConfig{
			UseDownstreamProtocolConfig: &upstreamhttp.HttpProtocolOptions_UseDownstreamHttpConfig{
				HttpProtocolOptions:  &core.Http1ProtocolOptions{},
				Http2ProtocolOptions: &core.Http2ProtocolOptions{},
			},
		},
	}
}

// http2Options speak HTTP/2 to the upstream, as gRPC needs.
func http2Options() *upstreamhttp.HttpProtocolOptions {
	return &upstreamhttp.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &core.Http2ProtocolOptions{},
				},
			},
		},
	}
}

func loadAssignment(cluster string, eps []hostPort) *endpointv3.ClusterLoadAssignment {
	lb := make([]*endpointv3.LbEndpoint, 0, len(eps))
	for _, ep := range eps {
		lb = append(lb, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: socketAddress(ep.host, ep.port),
			}},
		})
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: cluster,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			// gRPC's xDS client refuses a locality without a name.
			Locality:    &core.Locality{Region: "blockgate"},
			LbEndpoints: lb,
			// gRPC's xDS client ignores a locality without a weight.
			LoadBalancingWeight: wrapperspb.UInt32(1),
		}},
	}
}

func socketAddress(host string, port uint32) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Protocol:      core.SocketAddress_TCP,
		Address:       host,
		PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
	}}}
}

func adsSource() *core.ConfigSource {
	return &core.ConfigSource{
		ResourceApiVersion:    core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
	}
}

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}
