package xds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/auth/authpolicy"
	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
)

// Defaults and fixed ports.
const (
	// DefaultPort is the gateway's xDS port.
	DefaultPort = 18000
	// DefaultInboundPort is where every Envoy sidecar's inbound mTLS
	// listener listens, and so where other sidecars reach it.
	DefaultInboundPort = 15000
	// DefaultSVIDTTL is the lifetime of the SVIDs served over SDS.
	DefaultSVIDTTL = time.Hour
	// OutboundHTTPPort and OutboundGRPCPort are the sidecar's listeners on
	// 127.0.0.1 for the app's Dapr calls: Dapr's default ports, so that an
	// SDK finds them without configuration.
	OutboundHTTPPort = 3500
	OutboundGRPCPort = 50001
)

// Authority is what the server needs of the certificate authority;
// *authca.CA is one. Its methods must be safe for concurrent use.
type Authority interface {
	TrustDomain() spiffeid.TrustDomain
	// NewSVID issues a key and an X.509-SVID for id, owned by the caller.
	NewSVID(ctx context.Context, id spiffeid.ID, ttl time.Duration) (*x509svid.SVID, error)
	// BundlePEM is the trust bundle, a copy owned by the caller.
	BundlePEM() []byte
	// Verify checks a presented chain and returns its SPIFFE ID.
	Verify(chain []*x509.Certificate) (spiffeid.ID, error)
}

var _ Authority = (*authca.CA)(nil)

// TokenVerifier checks join tokens; *tenantspg.Registry is one. It returns
// an error wrapping tenantspg.ErrInvalidJoinToken for a token that must be
// refused (unknown, expired, revoked) and any other error when it could
// not tell. It is called once per stream, concurrently.
type TokenVerifier interface {
	VerifyJoinToken(ctx context.Context, token string) (tenantspg.JoinToken, error)
}

var _ TokenVerifier = (*tenantspg.Registry)(nil)

// Source gives the configuration a tenant's snapshots are built from. The
// server calls it when a tenant's first node connects and on every
// Refresh of the tenant, from one goroutine at a time per server. What it
// returns belongs to the server and must not be changed afterwards.
type Source interface {
	TenantConfig(ctx context.Context, tenant tenants.ID) (TenantConfig, error)
}

// SourceFunc is a Source in one function.
type SourceFunc func(ctx context.Context, tenant tenants.ID) (TenantConfig, error)

// TenantConfig implements Source.
func (f SourceFunc) TenantConfig(ctx context.Context, tenant tenants.ID) (TenantConfig, error) {
	return f(ctx, tenant)
}

// TenantConfig is what one tenant's snapshots are built from.
type TenantConfig struct {
	// Apps are the tenant's apps with their instances. A node whose app is
	// not among them is refused, and its streams end when it disappears.
	Apps []tenants.App
	// Policy is the tenant's access policy; nil means none, every call is
	// allowed (Dapr's rule without a Configuration).
	Policy *authpolicy.Set
	// Sidecars names the apps known to run Envoy sidecars; the others are
	// reached through the gateway. Without Config.Presence, apps with a
	// sidecar connected to this server count as well, and Sidecars need
	// only name those connected to other gateway nodes; with it, Sidecars
	// is the whole list, this server's own sidecars included. See the
	// package documentation, "Endpoints".
	Sidecars []string
}

// Presence is told which Envoy sidecars are connected to a Server, so that
// something outside it can make their presence known to every gateway node
// (Config.Presence).
type Presence interface {
	// SetSidecar reports that the Envoy node tenant/app/instance is now
	// connected (its first stream was admitted) or not (its last stream
	// ended). Proxyless nodes are not reported. It is called with the
	// server's connection lock held, so that calls come in the order of
	// the events they report: it must return quickly, must not block, and
	// must not call the Server.
	SetSidecar(tenant tenants.ID, app, instance string, connected bool)
}

// Config configures a Server.
type Config struct {
	// Listener is where ADS is served. Required; Run closes it.
	Listener net.Listener
	// TLS, when set, serves ADS over TLS with this config: typically the
	// CA's ServerTLSConfig, which asks for an SVID as client certificate.
	// Nil serves plaintext, where join tokens travel in the clear: for a
	// loopback listener or a network that is otherwise protected.
	TLS *tls.Config
	// CA issues the sidecars' SVIDs and verifies the nodes' client
	// certificates. Required.
	CA Authority
	// Source gives each tenant's apps and access policy. Required.
	Source Source
	// JoinTokens verifies join tokens; nil accepts only SVIDs.
	JoinTokens TokenVerifier
	// Presence, when set, is told of every Envoy sidecar that connects and
	// leaves, and makes the Source the only judge of which apps run
	// sidecars: the server then takes TenantConfig.Sidecars as the whole
	// list, does not add the sidecars connected to it, and does not
	// refresh a tenant when they come and go. Whoever gathers presence
	// across the gateway nodes must fill Sidecars and call Refresh when a
	// tenant's list changes; nodes that see the same list then serve the
	// same snapshots. Nil (a lone gateway, tests): the server counts its
	// own connected sidecars besides TenantConfig.Sidecars and refreshes
	// the tenant on an app's first and last sidecar.
	Presence Presence
	// GatewayHTTP and GatewayGRPC are the host:port at which sidecars reach
	// the gateway's HTTP and gRPC APIs (the regional endpoint, over mTLS).
	// Required.
	GatewayHTTP, GatewayGRPC string
	// InboundPort is the port of every sidecar's inbound listener.
	// Default DefaultInboundPort (15000).
	InboundPort int
	// SVIDTTL is the lifetime of the SVIDs served to sidecars; they are
	// renewed after two thirds of it. Default DefaultSVIDTTL (1h).
	SVIDTTL time.Duration
	// Clock is the time. Default time.Now.
	Clock func() time.Time
	// Logger receives the server's logs; nil discards.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.InboundPort == 0 {
		c.InboundPort = DefaultInboundPort
	}
	if c.SVIDTTL == 0 {
		c.SVIDTTL = DefaultSVIDTTL
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports what is wrong with c, defaults applied. New calls it.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Listener == nil {
		errs = append(errs, errors.New("a listener is required"))
	}
	if c.CA == nil {
		errs = append(errs, errors.New("a certificate authority is required"))
	} else if c.CA.TrustDomain().IsZero() {
		errs = append(errs, errors.New("the certificate authority has no trust domain"))
	}
	if c.Source == nil {
		errs = append(errs, errors.New("a source of tenant configuration is required"))
	}
	for name, addr := range map[string]string{"gateway HTTP": c.GatewayHTTP, "gateway gRPC": c.GatewayGRPC} {
		if _, _, err := splitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s address: %w", name, err))
		}
	}
	if c.InboundPort < 1 || c.InboundPort > 65535 {
		errs = append(errs, fmt.Errorf("inbound port %d is not a port", c.InboundPort))
	}
	if c.SVIDTTL < time.Minute {
		errs = append(errs, fmt.Errorf("SVID lifetime %s is under a minute", c.SVIDTTL))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("xds config: %w", err)
	}
	return nil
}

// splitHostPort splits host:port and checks the port.
func splitHostPort(addr string) (string, uint32, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 || host == "" {
		return "", 0, fmt.Errorf("%q is not host:port", addr)
	}
	return host, uint32(port), nil
}
