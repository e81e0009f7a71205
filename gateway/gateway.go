// Package gateway is the composition root of a blockgate node: it starts the
// dependencies (Postgres, embedded NATS), builds the registry, the token
// authority and the block services, and serves the Dapr HTTP and gRPC APIs,
// the admin API and metrics until its context ends.
//
// Every long-lived part runs under one errgroup, so the first failure stops
// the node; only main handles signals. Shutdown lets in-flight requests
// finish (bounded by Config.ShutdownTimeout) and then stops the background
// loops, NATS and the private Postgres, in that order.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/blockgate/blockgate/appchannel"
	"github.com/blockgate/blockgate/auth"
	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/auth/authjwt"
	"github.com/blockgate/blockgate/auth/authoidc"
	"github.com/blockgate/blockgate/auth/authpolicy"
	"github.com/blockgate/blockgate/blocks/invoke"
	"github.com/blockgate/blockgate/blocks/metadata"
	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/blocks/pubsub/pubsubjs"
	"github.com/blockgate/blockgate/blocks/state"
	"github.com/blockgate/blockgate/blocks/state/statemem"
	"github.com/blockgate/blockgate/blocks/state/statepg"
	"github.com/blockgate/blockgate/gateway/gatewaycluster"
	"github.com/blockgate/blockgate/gateway/gatewaynats"
	"github.com/blockgate/blockgate/gateway/gatewaypg"
	"github.com/blockgate/blockgate/gateway/gatewaysidecars"
	"github.com/blockgate/blockgate/migrations"
	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
	"github.com/blockgate/blockgate/xds"
)

// node is one running gateway: its dependencies and services.
type node struct {
	cfg Config

	pg       *gatewaypg.Server // nil with an external Postgres
	pool     *pgxpool.Pool
	nats     *gatewaynats.Server // nil with an external NATS
	natsURL  string
	nc       *nats.Conn
	registry *tenantspg.Registry
	tokens   *authjwt.Authority
	authn    *auth.Authenticator
	comps    *tenants.ComponentCache
	statepg  *statepg.Backend
	// background runs the sweepers of in-memory stores, which are opened
	// lazily on first use; close cancels it and waits.
	background     context.Context
	stopBackground context.CancelFunc
	backgroundWG   sync.WaitGroup
	state          *state.Service
	pubsub         *pubsub.Service
	// broker is the JetStream broker; the state outbox relays publish to it.
	broker *pubsubjs.Broker
	// deliveries runs push deliveries to apps with endpoints.
	deliveries *deliveries
	apps       *tenants.AppCache
	resilience *resiliencies
	channel    *appchannel.Channel
	ca         *authca.CA
	oidc       *authoidc.Verifier
	quotas     *quotas
	policies   policies
	// xds serves sidecars' configuration; nil with --xds-port -1.
	xds      *xds.Server
	xdsPort  int
	sidecars *gatewaysidecars.Presence // the cluster's sidecars, for xds (xds.go)
	invoke   *invoke.Service
	metadata *metadata.Service
	// members are the live nodes of the cluster (cluster.go).
	members *gatewaycluster.Membership
}

// Run starts a node and serves until ctx is done or a part fails.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	n := newNode(cfg)
	defer n.close()
	if err := n.start(ctx); err != nil {
		return err
	}
	return n.serve(ctx)
}

func newNode(cfg Config) *node {
	n := &node{cfg: cfg}
	n.background, n.stopBackground = context.WithCancel(context.Background())
	return n
}

// openMemoryStore opens a state.in-memory component and sweeps its expired
// items until the node stops. Its data lives as long as this node and this
// revision of the component, as with Dapr's in-memory store.
func (n *node) openMemoryStore(tenants.Component) (state.Store, error) {
	s := statemem.New(statemem.WithLogger(n.cfg.Logger.With("block", "state", "component", "state.in-memory")))
	n.backgroundWG.Add(2)
	go func() {
		defer n.backgroundWG.Done()
		_ = s.Run(n.background)
	}()
	go func() {
		defer n.backgroundWG.Done()
		_ = s.RunRelay(n.background, n.broker.PublishBatch)
	}()
	return s, nil
}

// start brings up dependencies and builds services. On error, close undoes
// whatever started.
func (n *node) start(ctx context.Context) error {
	log := n.cfg.Logger
	if err := os.MkdirAll(n.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}

	pgURL := n.cfg.PostgresURL
	if pgURL == "" {
		log.Info("starting private Postgres", "dir", filepath.Join(n.cfg.DataDir, "postgres"))
		pg, err := gatewaypg.Start(ctx, gatewaypg.Config{Dir: filepath.Join(n.cfg.DataDir, "postgres"), Logger: log})
		if err != nil {
			return fmt.Errorf("starting private Postgres (or pass --postgres-url): %w", err)
		}
		n.pg = pg
		pgURL = pg.URL()
	}
	if err := n.migrate(ctx, pgURL); err != nil {
		return err
	}
	poolCfg, err := pgxpool.ParseConfig(pgURL)
	if err != nil {
		return fmt.Errorf("parsing --postgres-url: %w", err)
	}
	if poolCfg.MaxConns < 32 {
		poolCfg.MaxConns = 32
	}
	if n.pool, err = pgxpool.NewWithConfig(ctx, poolCfg); err != nil {
		return fmt.Errorf("connecting to Postgres: %w", err)
	}

	n.registry = tenantspg.New(n.pool, log)
	n.tokens = authjwt.New(n.registry, authjwt.Config{}, log)
	if err := n.tokens.Load(ctx); err != nil {
		return fmt.Errorf("loading token signing keys: %w", err)
	}
	if err := n.startIdentity(ctx); err != nil {
		return err
	}
	// After the CA: the routes between the nodes' NATS servers use its
	// certificates.
	n.natsURL = n.cfg.NATSURL
	if n.natsURL == "" {
		ns, err := gatewaynats.Start(ctx, n.natsConfig())
		if err != nil {
			return fmt.Errorf("starting embedded NATS: %w", err)
		}
		n.nats = ns
		n.natsURL = ns.ClientURL()
	}
	n.authn = auth.NewAuthenticator(n.tokens, n.registry, log, auth.Options{Federated: n.oidc, TrustDomain: n.ca.TrustDomain()})
	if err := n.authn.Refresh(ctx); err != nil {
		return fmt.Errorf("loading token revocations: %w", err)
	}
	if n.quotas, err = newQuotas(n.registry, n.cfg.DefaultLimits, log); err != nil {
		return err
	}
	n.policies = policies{cache: authpolicy.NewCache(n.registry, n.ca.TrustDomain().Name(), time.Minute)}
	n.comps = tenants.NewComponentCache(n.registry.Components, 30*time.Second)
	n.statepg = statepg.NewBackend(n.pool, log)
	n.state = state.NewService(n.comps, map[string]state.Opener{
		"state.postgresql": func(c tenants.Component) (state.Store, error) { return n.statepg.Open(c.Tenant, c.Name), nil },
		"state.in-memory":  n.openMemoryStore,
	}, log)
	n.state.SetAccess(n.policies)
	n.state.SetWriteGuard(n.quotas.StateWrite)
	n.nc, err = nats.Connect(n.natsURL, nats.Name("blockgate"), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return fmt.Errorf("connecting to NATS at %s: %w", n.natsURL, err)
	}
	broker, err := pubsubjs.New(n.nc, pubsubjs.Config{
		TenantMaxBytes: n.pubsubMaxBytes, DefaultMaxBytes: n.cfg.PubsubMaxBytes, Replicas: n.replicas(), Logger: log,
	})
	if err != nil {
		return fmt.Errorf("starting the JetStream broker: %w", err)
	}
	n.broker = broker
	n.pubsub = pubsub.NewService(n.comps, broker, log)
	n.pubsub.SetAccess(n.policies)
	n.channel = appchannel.New(appchannel.Config{Apps: n.registry.AppsWithEndpoints, Logger: log})
	n.deliveries = newDeliveries(n.registry, n.pubsub, n.channel, log)
	n.apps = tenants.NewAppCache(n.registry.App, 30*time.Second)
	n.resilience = newResiliencies(n.registry)
	n.invoke = invoke.NewService(invoke.Config{Apps: n.apps, Policies: n.resilience.Policy, Channel: n.channel,
		Authorize: n.policies.Authorize, Logger: log})
	n.metadata = metadata.NewService(n.comps, n.registry, n.capabilities, n.pubsub.Active, n.cfg.Version)
	return nil
}

// pubsubMaxBytes reads a tenant's pub/sub storage limit from the registry
// when the broker creates or updates the tenant's stream; 0 (the default)
// when the registry cannot say.
func (n *node) pubsubMaxBytes(tenant tenants.ID) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t, err := n.registry.Tenant(ctx, tenant)
	if err != nil {
		n.cfg.Logger.Warn("reading tenant limits failed; using the default", "tenant", tenant, "err", err)
		return 0
	}
	return t.Limits.PubsubMaxBytes
}

// capabilities reports a component's Dapr capabilities, by block.
func (n *node) capabilities(c tenants.Component) []string {
	switch c.Kind() {
	case "state":
		return n.state.Capabilities(c)
	case "pubsub":
		return n.pubsub.Capabilities(c)
	}
	return nil
}

// migrate brings the schema up to date over a dedicated connection.
func (n *node) migrate(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connecting to Postgres to migrate: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, _, err := migrations.Apply(ctx, conn, n.cfg.Logger); err != nil {
		return fmt.Errorf("migrating the schema: %w", err)
	}
	return nil
}

// ready reports whether the node's dependencies answer.
func (n *node) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := n.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if n.nats != nil {
		if err := n.nats.Healthy(); err != nil {
			return err
		}
	}
	return nil
}

// onRegistryChange drops cached registry data a change makes stale.
func (n *node) onRegistryChange(ctx context.Context, c tenantspg.Change) {
	// Sidecars rebuild after the caches below have dropped what changed.
	defer n.onXDSChange(c)
	switch c.Kind {
	case tenantspg.ResyncKind:
		n.reloadIdentity(ctx, true, true)
		n.quotas.Invalidate("")
		n.policies.cache.InvalidateAll()
		n.comps.InvalidateAll()
		n.apps.InvalidateAll()
		n.resilience.InvalidateAll()
		n.refreshAuth(ctx, true)
		n.deliveries.Changed()
	case "component", "tenant":
		if c.Kind == "tenant" {
			n.reloadIdentity(ctx, false, true) // a deleted tenant's federations are gone
			n.quotas.Invalidate(c.Tenant)
			n.policies.cache.Invalidate(c.Tenant)
		}
		n.comps.Invalidate(c.Tenant)
		n.apps.Invalidate(c.Tenant)
		n.deliveries.Changed()
	case "subscription":
		n.deliveries.Changed()
	case "resiliency":
		n.resilience.Invalidate(c.Tenant)
	case "app":
		n.apps.Invalidate(c.Tenant)
		n.channel.AppsChanged()
		n.refreshAuth(ctx, false)
		n.deliveries.Changed()
	case "limits":
		n.quotas.Invalidate(c.Tenant)
		go func() {
			if err := n.broker.ApplyLimits(ctx, c.Tenant); err != nil && ctx.Err() == nil {
				n.cfg.Logger.Warn("applying new tenant limits failed", "tenant", c.Tenant, "err", err)
			}
		}()
	case "token":
		n.refreshAuth(ctx, false)
	case tenantspg.CAKind:
		n.reloadIdentity(ctx, true, false)
	case tenantspg.PolicyKind:
		n.policies.cache.Invalidate(c.Tenant)
		n.deliveries.Changed() // a subscription may have become (dis)allowed
	case "federation":
		n.reloadIdentity(ctx, false, true)
	case "key":
		n.refreshAuth(ctx, true)
	}
}

// reloadIdentity reloads the CA's generations and the federated issuers,
// off the listener's goroutine.
func (n *node) reloadIdentity(ctx context.Context, ca, federations bool) {
	go func() {
		if ca {
			if err := n.ca.Reload(ctx); err != nil && ctx.Err() == nil {
				n.cfg.Logger.Warn("reloading the certificate authority failed", "err", err)
			}
		}
		if federations {
			if err := n.reloadFederations(ctx); err != nil && ctx.Err() == nil {
				n.cfg.Logger.Warn("reloading federated issuers failed", "err", err)
			}
		}
	}()
}

func (n *node) refreshAuth(ctx context.Context, keys bool) {
	// Run off the listener's goroutine: a slow registry must not stall
	// notifications.
	go func() {
		if keys {
			if err := n.tokens.Reload(ctx); err != nil && ctx.Err() == nil {
				n.cfg.Logger.Warn("reloading signing keys failed", "err", err)
			}
		}
		if err := n.authn.Refresh(ctx); err != nil && ctx.Err() == nil {
			n.cfg.Logger.Warn("refreshing token revocations failed", "err", err)
		}
	}()
}

// close stops what start started, in reverse order; safe on a partial start.
func (n *node) close() {
	n.stopBackground()
	n.backgroundWG.Wait()
	if n.channel != nil {
		n.channel.Close()
	}
	if n.nc != nil {
		n.nc.Close()
	}
	if n.pool != nil {
		n.pool.Close()
	}
	if n.nats != nil {
		n.nats.Close()
	}
	if n.pg != nil {
		if err := n.pg.Close(); err != nil {
			n.cfg.Logger.Warn("stopping private Postgres", "err", err)
		}
	}
}

// listen opens a TCP listener, with an error that says which flag to change.
func (n *node) listen(flag string, port int) (net.Listener, error) {
	addr := net.JoinHostPort(n.cfg.Host, strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) {
			return nil, fmt.Errorf("cannot listen on %s (%v); choose another port with %s", addr, opErr.Err, flag)
		}
		return nil, err
	}
	return l, nil
}

// Migrate applies the schema migrations and returns: what `blockgate
// migrate` runs. Without a Postgres URL it migrates the private cluster in
// the data dir.
func Migrate(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	n := newNode(cfg)
	defer n.close()
	url := cfg.PostgresURL
	if url == "" {
		pg, err := gatewaypg.Start(ctx, gatewaypg.Config{Dir: filepath.Join(cfg.DataDir, "postgres"), Logger: cfg.Logger})
		if err != nil {
			return fmt.Errorf("starting private Postgres (or pass --postgres-url): %w", err)
		}
		n.pg = pg
		url = pg.URL()
	}
	return n.migrate(ctx, url)
}
