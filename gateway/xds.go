package gateway

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockgate/blockgate/gateway/gatewaysidecars"
	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
	"github.com/blockgate/blockgate/xds"
)

// startXDS builds the xDS control plane on l: ADS over TLS with the
// gateway's certificate, sidecars authenticated by join tokens or their
// SVIDs, each tenant's configuration from the registry and its access
// policies. Sidecars reach the gateway's APIs at the public host.
//
// Which apps run sidecars is the cluster's view, not this node's:
// gatewaysidecars shares the sidecars connected to each node through a
// JetStream bucket, fills TenantConfig.Sidecars from it, and refreshes a
// tenant when its list changes, so that every node serves the same
// snapshots. serve runs it with the background loops.
func (n *node) startXDS(l net.Listener, httpPort, grpcPort int) error {
	host := n.publicHost()
	js, err := jetstream.New(n.nc)
	if err != nil {
		return fmt.Errorf("xDS sidecar presence: %w", err)
	}
	presence, err := gatewaysidecars.New(js, gatewaysidecars.Config{
		Node:     n.cfg.NodeName,
		Replicas: n.replicas(),
		// Called only once Run has started, after n.xds is set.
		OnChange: func(tenant tenants.ID) { n.xds.Refresh(tenant) },
		Logger:   n.cfg.Logger,
	})
	if err != nil {
		return fmt.Errorf("xDS sidecar presence: %w", err)
	}
	srv, err := xds.New(xds.Config{
		Listener:    l,
		TLS:         n.serverTLS(),
		CA:          n.ca,
		Source:      presence.Source(xds.NewRegistrySource(n.registry, n.policies.cache)),
		Presence:    presence,
		JoinTokens:  n.registry,
		GatewayHTTP: net.JoinHostPort(host, strconv.Itoa(httpPort)),
		GatewayGRPC: net.JoinHostPort(host, strconv.Itoa(grpcPort)),
		Logger:      n.cfg.Logger,
	})
	if err != nil {
		return fmt.Errorf("xDS server: %w", err)
	}
	n.xds, n.sidecars = srv, presence
	return nil
}

// publicHost is the name sidecars and clients use to reach this gateway
// (its load balancer in a cluster): --public-host, else the first of the
// TLS names.
func (n *node) publicHost() string {
	if n.cfg.PublicHost != "" {
		return n.cfg.PublicHost
	}
	return n.cfg.TLSNames[0]
}

// onXDSChange keeps the sidecars' configuration in step with the registry:
// an app, an instance, a policy or a tenant change rebuilds that tenant's
// snapshots; a revoked join token ends the streams it opened.
func (n *node) onXDSChange(c tenantspg.Change) {
	if n.xds == nil {
		return
	}
	switch c.Kind {
	case tenantspg.ResyncKind, tenantspg.CAKind:
		n.xds.RefreshAll()
	case "app", "tenant", tenantspg.PolicyKind:
		n.xds.Refresh(c.Tenant)
	case tenantspg.JoinTokenKind:
		n.xds.CloseTokenStreams(c.ID)
	}
}

// sidecarAdmin is the xDS control plane as the admin API sees it.
type sidecarAdmin struct{ n *node }

func (s sidecarAdmin) Status(tenant tenants.ID) []xds.NodeStatus { return s.n.xdsStatus(tenant) }

func (s sidecarAdmin) Bootstrap(ctx context.Context, tenant tenants.ID, app, instance string, appPort int, joinToken string) ([]byte, error) {
	return s.n.envoyBootstrap(ctx, tenant, app, instance, appPort, joinToken)
}

// xdsStatus lists the sidecars connected to this node, one tenant's or
// (tenant "") all.
func (n *node) xdsStatus(tenant tenants.ID) []xds.NodeStatus {
	if n.xds == nil {
		return nil
	}
	var out []xds.NodeStatus
	for _, s := range n.xds.Status() {
		if tenant == "" || s.Tenant == tenant {
			out = append(out, s)
		}
	}
	return out
}

// envoyBootstrap makes the Envoy bootstrap of an app's sidecar, with its
// join token, for the admin API.
func (n *node) envoyBootstrap(_ context.Context, tenant tenants.ID, app, instance string, appPort int, joinToken string) ([]byte, error) {
	if n.xds == nil {
		return nil, fmt.Errorf("this gateway runs no xDS server (--xds-port -1)")
	}
	return xds.Bootstrap(xds.BootstrapConfig{
		Tenant: tenant, App: app, Instance: instance, AppPort: appPort, JoinToken: joinToken,
		XDSAddress:     net.JoinHostPort(n.publicHost(), strconv.Itoa(n.xdsPort)),
		XDSTrustBundle: n.ca.BundlePEM(), TrustDomain: n.ca.TrustDomain(), AdminPort: 9901,
	})
}
