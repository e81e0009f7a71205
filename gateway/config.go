package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/blockgate/blockgate/tenants"
)

// Config is everything a gateway node needs. main fills it from flags and
// BLOCKGATE_* environment variables; the zero value of each field documents
// its default.
type Config struct {
	// Host is the address the API, admin and metrics listeners bind; "" means
	// every interface.
	Host string
	// HTTPPort serves Dapr's HTTP API; default 3500, 0 picks a free port.
	HTTPPort int
	// GRPCPort serves Dapr's gRPC API; default 50001, 0 picks a free port.
	GRPCPort int
	// AdminPort serves the admin API; default 8080, 0 picks a free port.
	AdminPort int
	// XDSPort serves the xDS control plane (ADS) for Envoy sidecars and
	// proxyless gRPC clients; default 18000, 0 picks a free port, -1 turns
	// it off.
	XDSPort int
	// PublicHost is the name sidecars and clients use to reach the gateway
	// (its load balancer in a cluster); default the first of TLSNames.
	PublicHost string
	// MetricsPort serves Prometheus metrics on /metrics; default 9090, 0
	// picks a free port, -1 disables metrics.
	MetricsPort int
	// Pprof serves Go's profiles under /debug/pprof/ on the metrics port;
	// default off.
	Pprof bool
	// NATSPort is the embedded NATS server's client port, on loopback;
	// default 4222, 0 picks a free port. Unused with NATSURL.
	NATSPort int

	// DataDir holds the embedded NATS store, the private Postgres cluster
	// when there is no PostgresURL, and dev.env; default ./.blockgate.
	DataDir string
	// PostgresURL is the system of record; empty starts a private Postgres
	// from the machine's PostgreSQL binaries under DataDir.
	PostgresURL string
	// NATSURL points at an external NATS cluster; empty embeds a server.
	NATSURL string

	// ClusterName makes this node one of a cluster: its embedded NATS
	// server routes to the other nodes' (ClusterPeers) and JetStream
	// replicates streams to min(3, cluster size) servers. Every node of a
	// cluster has the same ClusterName, ClusterPeers, ClusterSecret,
	// PostgresURL, CAMasterKey and AdminToken. Empty: a single node, or the
	// nodes of an external NATS cluster (NATSURL).
	ClusterName string
	// ClusterPeers are the route addresses (host:port) of the cluster's
	// nodes, this node's own included, the same list on every node;
	// required with ClusterName.
	ClusterPeers []string
	// ClusterHost is the address the route listener binds; default Host.
	ClusterHost string
	// ClusterPort is the route port; default 6222, 0 picks a free port.
	ClusterPort int
	// ClusterSecret, when set, is the password every route presents: set
	// it, as anyone who reaches the route port can otherwise join the
	// cluster and read every message.
	ClusterSecret string
	// ClusterPlainRoutes turns off the routes' TLS. By default every route
	// is TLS, both ends presenting the gateway certificate of the CA the
	// nodes share through Postgres (authca.CA.RouteTLSConfig), so that
	// only gateway nodes join and messages cross the network encrypted.
	// Plain routes are for a private network that encrypts by itself.
	ClusterPlainRoutes bool
	// NodeName names this node in its cluster (the NATS server name and
	// the membership heartbeats), unique in the cluster; default the host
	// name.
	NodeName string

	// TrustDomain is the SPIFFE trust domain of the apps' identities
	// (spiffe://<domain>/tenant/<tenant>/app/<app-id>); default
	// "blockgate.local". Every node of a cluster must use the same.
	TrustDomain string
	// CAMasterKey encrypts the certificate authority's keys at rest (at
	// least 32 bytes, the same on every node); empty reads or creates
	// DataDir/ca-master.key.
	CAMasterKey []byte
	// CARootCertFile and CARootKeyFile name an operator's root CA (PEM)
	// under which the gateway makes its issuing certificates; empty makes
	// a self-signed root.
	CARootCertFile, CARootKeyFile string
	// SVIDTTL is the default lifetime of an app's certificate; default 24h.
	SVIDTTL time.Duration
	// TLS serves the HTTP and gRPC APIs over TLS with certificates from the
	// gateway's CA. A client may then present its SVID instead of a token
	// (mTLS); plain token clients keep working over TLS.
	TLS bool
	// TLSNames are the DNS names and IP addresses of the API listeners'
	// certificate; default localhost, 127.0.0.1, ::1 and the host name.
	TLSNames []string
	// FederationCAFile adds PEM roots to trust when fetching federated
	// issuers' keys (a Kubernetes API server's CA); empty: system roots.
	FederationCAFile string

	// AdminToken is the platform admin token; empty generates one, stored
	// in DataDir/admin-token.
	AdminToken string
	// PubsubMaxBytes is a tenant's default limit of stored pub/sub
	// messages; default 1 GiB. The admin API sets others per tenant.
	PubsubMaxBytes int64
	// DefaultLimits are every tenant's quotas where the tenant has none of
	// its own (PubsubMaxBytes aside, see that field); zero fields mean no
	// limit.
	DefaultLimits tenants.Limits
	// StateUsageInterval is how often each tenant's stored state is
	// measured against its StateMaxBytes quota; default 30s.
	StateUsageInterval time.Duration
	// MaxBodyBytes limits API request bodies; default 4 MiB.
	MaxBodyBytes int64
	// ShutdownTimeout bounds the wait for in-flight requests on shutdown;
	// default 15s.
	ShutdownTimeout time.Duration
	// Dev creates tenant "default" with app "app1" and the components
	// statestore and pubsub, and writes DataDir/dev.env.
	Dev bool
	// Version is reported as the runtime version.
	Version string

	Logger *slog.Logger
}

// Default values of Config.
const (
	DefaultHTTPPort    = 3500
	DefaultGRPCPort    = 50001
	DefaultAdminPort   = 8080
	DefaultMetricsPort = 9090
	DefaultNATSPort    = 4222
	DefaultXDSPort     = 18000
	DefaultClusterPort = 6222
)

// Validate checks cfg before anything starts and fills in defaults for the
// fields whose zero value is not a valid choice.
func (c *Config) Validate() error {
	var errs []error
	for _, p := range []struct {
		name string
		port int
		min  int
	}{
		{"--http-port", c.HTTPPort, 0}, {"--grpc-port", c.GRPCPort, 0}, {"--admin-port", c.AdminPort, 0},
		{"--metrics-port", c.MetricsPort, -1}, {"--nats-port", c.NATSPort, 0}, {"--xds-port", c.XDSPort, -1},
		{"--cluster-port", c.ClusterPort, 0},
	} {
		if p.port < p.min || p.port > 65535 {
			errs = append(errs, fmt.Errorf("%s %d is not a port number", p.name, p.port))
		}
	}
	if c.DataDir == "" {
		c.DataDir = ".blockgate"
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 4 << 20
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("--max-body-size %d is too small; use at least 1024 bytes", c.MaxBodyBytes))
	}
	if c.PubsubMaxBytes == 0 {
		c.PubsubMaxBytes = 1 << 30
	}
	if c.PubsubMaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("--pubsub-max-bytes %d is too small; use at least 1 MiB", c.PubsubMaxBytes))
	}
	if c.StateUsageInterval <= 0 {
		c.StateUsageInterval = 30 * time.Second
	}
	if c.TrustDomain == "" {
		c.TrustDomain = "blockgate.local"
	}
	if c.SVIDTTL == 0 {
		c.SVIDTTL = 24 * time.Hour
	}
	if c.SVIDTTL < time.Minute {
		errs = append(errs, fmt.Errorf("--svid-ttl %s is too short; use at least 1m", c.SVIDTTL))
	}
	if len(c.CAMasterKey) > 0 && len(c.CAMasterKey) < 32 {
		errs = append(errs, fmt.Errorf("the CA master key has %d bytes; it needs at least 32 (e.g. openssl rand -hex 32)", len(c.CAMasterKey)))
	}
	if (c.CARootCertFile == "") != (c.CARootKeyFile == "") {
		errs = append(errs, errors.New("--ca-root-cert and --ca-root-key go together"))
	}
	if len(c.TLSNames) == 0 {
		c.TLSNames = []string{"localhost", "127.0.0.1", "::1"}
		if h, err := os.Hostname(); err == nil && h != "" {
			c.TLSNames = append(c.TLSNames, h)
		}
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 15 * time.Second
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	errs = append(errs, c.validateCluster()...)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return errors.Join(errs...)
}

// validateCluster checks the cluster fields and fills in the node name.
func (c *Config) validateCluster() []error {
	var errs []error
	if c.NodeName == "" {
		c.NodeName = defaultNodeName()
	}
	if !validNodeName(c.NodeName) {
		errs = append(errs, fmt.Errorf("--node-name %q: use letters, digits, - and _, and dots inside", c.NodeName))
	}
	switch {
	case c.ClusterName != "" && c.NATSURL != "":
		errs = append(errs, errors.New("--cluster-name clusters the embedded NATS servers; with --nats-url the external NATS cluster replicates: drop one"))
	case c.ClusterName != "" && len(c.ClusterPeers) == 0:
		errs = append(errs, errors.New("--cluster-name needs --cluster-peers: every node's route address (host:port), this node's included"))
	case c.ClusterName == "" && (len(c.ClusterPeers) > 0 || c.ClusterSecret != "" || c.ClusterPlainRoutes):
		errs = append(errs, errors.New("--cluster-peers, --cluster-secret and --cluster-plain-routes need --cluster-name"))
	}
	return errs
}

// defaultNodeName is the host name, with what a node name cannot hold
// replaced by '-'.
func defaultNodeName() string {
	h, _ := os.Hostname()
	name := strings.Trim(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, h), ".")
	if len(name) > 128 {
		name = name[:128]
	}
	if name == "" {
		return "blockgate"
	}
	return name
}

// validNodeName reports whether name can name a NATS server and a key of
// the membership bucket.
func validNodeName(name string) bool {
	if name == "" || len(name) > 128 || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}
