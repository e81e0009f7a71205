package xds

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/auth/authpolicy"
	"github.com/blockgate/blockgate/tenants"
)

// deterministic marshals maps in key order, so that equal resources have
// equal bytes: versions are hashes of those bytes, and must agree across
// gateway nodes and across builds.
var deterministic = proto.MarshalOptions{Deterministic: true}

// builder turns a tenant's configuration into xDS resources. It holds no
// state between builds but the first error: a builder is used by one
// goroutine, for one build.
type builder struct {
	td          spiffeid.TrustDomain
	gwHTTPHost  string
	gwHTTPPort  uint32
	gwGRPCHost  string
	gwGRPCPort  uint32
	inboundPort uint32

	err error
}

func newBuilder(cfg Config) (*builder, error) {
	b := &builder{td: cfg.CA.TrustDomain(), inboundPort: uint32(cfg.InboundPort)}
	var err error
	if b.gwHTTPHost, b.gwHTTPPort, err = splitHostPort(cfg.GatewayHTTP); err != nil {
		return nil, err
	}
	if b.gwGRPCHost, b.gwGRPCPort, err = splitHostPort(cfg.GatewayGRPC); err != nil {
		return nil, err
	}
	return b, nil
}

// fresh returns a copy of b with no error, for one build.
func (b *builder) fresh() *builder {
	c := *b
	c.err = nil
	return &c
}

// any packs m deterministically.
func (b *builder) any(m proto.Message) *anypb.Any {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, deterministic); err != nil && b.err == nil {
		b.err = fmt.Errorf("packing %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return a
}

// appID is the SPIFFE ID of an app of v's tenant.
func (b *builder) appID(v *view, app string) string {
	id, err := authca.AppID(b.td, tenants.Principal{Tenant: v.tenant, AppID: app})
	if err != nil && b.err == nil {
		b.err = err
	}
	return id.String()
}

func (b *builder) gatewayID() spiffeid.ID { return authca.GatewayID(b.td) }

// view is one tenant's configuration as the builds of its nodes read it.
// It is immutable once made, except for its memo of reaches, which only
// the goroutine that builds uses.
type view struct {
	tenant   tenants.ID
	td       string
	apps     map[string]tenants.App
	ids      []string // sorted
	policy   *authpolicy.Set
	sidecars map[string]bool
	reaches  map[[2]string]reach
}

// newView makes the view of tenant's configuration cfg; local names the
// apps with a sidecar connected to this server.
func newView(tenant tenants.ID, td spiffeid.TrustDomain, cfg TenantConfig, local []string) *view {
	v := &view{
		tenant:   tenant,
		td:       td.Name(),
		apps:     make(map[string]tenants.App, len(cfg.Apps)),
		policy:   cfg.Policy,
		sidecars: map[string]bool{},
		reaches:  map[[2]string]reach{},
	}
	for _, a := range cfg.Apps {
		if _, dup := v.apps[a.ID]; !dup {
			v.ids = append(v.ids, a.ID)
		}
		v.apps[a.ID] = a
	}
	slices.Sort(v.ids)
	for _, a := range slices.Concat(cfg.Sidecars, local) {
		v.sidecars[a] = true
	}
	return v
}

func (v *view) reach(caller, target string) reach {
	k := [2]string{caller, target}
	r, ok := v.reaches[k]
	if !ok {
		r = reachOf(v.policy, v.tenant, v.td, caller, target)
		v.reaches[k] = r
	}
	return r
}

// directTargets are the apps that app's sidecar calls straight at their
// sidecars: it may invoke every method of them, they run sidecars, and
// they have registered instances.
func (v *view) directTargets(app string) []string {
	var out []string
	for _, t := range v.ids {
		if v.sidecars[t] && v.reach(app, t) == reachAll && len(v.sidecarEndpoints(t, 1)) > 0 {
			out = append(out, t)
		}
	}
	return out
}

// callers are the apps of the tenant that may invoke every method of app.
func (v *view) callers(app string) []string {
	var out []string
	for _, c := range v.ids {
		if v.reach(c, app) == reachAll {
			out = append(out, c)
		}
	}
	return out
}

// hostPort is an endpoint address.
type hostPort struct {
	host string
	port uint32
}

// sidecarEndpoints are where target's sidecars listen: the host of each
// registered instance endpoint, at the inbound port; each host once.
func (v *view) sidecarEndpoints(target string, port uint32) []hostPort {
	var out []hostPort
	for _, ep := range v.apps[target].Endpoints() {
		u, err := url.Parse(ep)
		if err != nil || u.Hostname() == "" {
			continue
		}
		hp := hostPort{u.Hostname(), port}
		if !slices.Contains(out, hp) {
			out = append(out, hp)
		}
	}
	return out
}

// grpcEndpoints are the instances of a gRPC app, for proxyless clients
// that call them directly: those of the scheme of the first (grpc:// or
// grpcs://, which means TLS), with an explicit port.
func grpcEndpoints(a tenants.App) (eps []hostPort, tls bool) {
	if !a.SpeaksGRPC() {
		return nil, false
	}
	scheme := ""
	for _, ep := range a.Endpoints() {
		u, err := url.Parse(ep)
		if err != nil {
			continue
		}
		if scheme == "" {
			scheme = u.Scheme
		}
		port, err := strconv.ParseUint(u.Port(), 10, 16)
		if u.Scheme != scheme || u.Hostname() == "" || err != nil || port == 0 {
			continue
		}
		hp := hostPort{u.Hostname(), uint32(port)}
		if !slices.Contains(eps, hp) {
			eps = append(eps, hp)
		}
	}
	return eps, scheme == "grpcs"
}

func isIP(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

func allIPs(eps []hostPort) bool {
	for _, ep := range eps {
		if !isIP(ep.host) {
			return false
		}
	}
	return true
}

// configSet is the configuration part of a snapshot (everything but the
// secrets), shared by the nodes of one app with the same options. It is
// immutable once finished.
type configSet struct {
	items    [types.UnknownType][]types.Resource
	versions [types.UnknownType]string
	// version sums up the versions of the types, for Status.
	version string
	// indexed are items by name, as snapshots hold them: the snapshots
	// of the set's nodes share them, since go-control-plane only reads a
	// snapshot's resources.
	indexed [types.UnknownType]cache.Resources
}

// configTypes are the resource types of a configSet.
var configTypes = []types.ResponseType{types.Listener, types.Route, types.Cluster, types.Endpoint}

func (s *configSet) add(r types.Resource) {
	var t types.ResponseType
	switch r.(type) {
	case *listenerv3.Listener:
		t = types.Listener
	case *routev3.RouteConfiguration:
		t = types.Route
	case *clusterv3.Cluster:
		t = types.Cluster
	case *endpointv3.ClusterLoadAssignment:
		t = types.Endpoint
	case *tlsv3.Secret:
		t = types.Secret
	default:
		panic(fmt.Sprintf("xds: configSet.add(%T)", r))
	}
	s.items[t] = append(s.items[t], r)
}

// finish validates every resource (Any contents included) that known has
// not seen pass, computes the versions, and checks that the resources are
// consistent (every route configuration and endpoints named, and only
// those). known may be nil, to validate everything.
func (s *configSet) finish(known *validated) error {
	for _, t := range configTypes {
		v, err := hashResources(s.items[t], func(r types.Resource, raw []byte) error {
			if err := known.validate(t, r, raw); err != nil {
				return fmt.Errorf("%s %s: %w", typeName(t), cache.GetResourceName(r), err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		s.versions[t] = v
		s.indexed[t] = cache.NewResources(v, s.items[t])
	}
	s.version = hashStrings(s.versions[types.Listener], s.versions[types.Route], s.versions[types.Cluster], s.versions[types.Endpoint])
	// Consistency concerns the configuration types alone, so it holds
	// for every node's snapshot of the set.
	if err := s.snapshot(nil, "").Consistent(); err != nil {
		return fmt.Errorf("inconsistent snapshot: %w", err)
	}
	return nil
}

// snapshot puts s together with a node's secrets (nil for none) under
// secretsVersion.
func (s *configSet) snapshot(secrets []types.Resource, secretsVersion string) *cache.Snapshot {
	snap := &cache.Snapshot{}
	for _, t := range configTypes {
		snap.Resources[t] = s.indexed[t]
	}
	snap.Resources[types.Secret] = cache.NewResources(secretsVersion, secrets)
	return snap
}

// hashResources is the version of a list of resources: a hash of their
// names and deterministic encodings, in name order. Equal inputs give the
// same version on every gateway node. check, if not nil, is called with
// each resource and its encoding; its error is returned.
func hashResources(rs []types.Resource, check func(r types.Resource, raw []byte) error) (string, error) {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b types.Resource) int {
		return strings.Compare(cache.GetResourceName(a), cache.GetResourceName(b))
	})
	h := sha256.New()
	var n [8]byte
	for _, r := range sorted {
		raw, err := deterministic.Marshal(r)
		if err != nil {
			return "", fmt.Errorf("hashing %s: %w", cache.GetResourceName(r), err)
		}
		if check != nil {
			if err := check(r, raw); err != nil {
				return "", err
			}
		}
		name := cache.GetResourceName(r)
		binary.BigEndian.PutUint64(n[:], uint64(len(name)))
		h.Write(n[:])
		h.Write([]byte(name))
		binary.BigEndian.PutUint64(n[:], uint64(len(raw)))
		h.Write(n[:])
		h.Write(raw)
	}
	return hex.EncodeToString(h.Sum(nil)[:8]), nil
}

func hashStrings(ss ...string) string {
	h := sha256.New()
	for _, s := range ss {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// typeName is the short name of a resource type, as Status reports it.
func typeName(t types.ResponseType) string {
	switch t {
	case types.Listener:
		return "LDS"
	case types.Route:
		return "RDS"
	case types.Cluster:
		return "CDS"
	case types.Endpoint:
		return "EDS"
	case types.Secret:
		return "SDS"
	}
	return strconv.Itoa(int(t))
}

// typeNameOf is typeName for a type URL; other URLs are returned as they
// are.
func typeNameOf(typeURL string) string {
	t := cache.GetResponseType(typeURL)
	if t == types.UnknownType {
		return typeURL
	}
	return typeName(t)
}
