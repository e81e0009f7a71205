package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/blockgate/blockgate/gateway"
)

// envFlags is a flag set whose flags also read BLOCKGATE_<NAME> from the
// environment; a flag on the command line wins over the variable.
type envFlags struct {
	*flag.FlagSet
	env []func() error
}

func newEnvFlags(name string) *envFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return &envFlags{FlagSet: fs}
}

func envName(flagName string) string {
	return "BLOCKGATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (f *envFlags) string(p *string, name, def, usage string) {
	f.StringVar(p, name, def, usage+" ["+envName(name)+"]")
	f.fromEnv(name, func(v string) error { *p = v; return nil })
}

func (f *envFlags) int(p *int, name string, def int, usage string) {
	f.IntVar(p, name, def, usage+" ["+envName(name)+"]")
	f.fromEnv(name, func(v string) error {
		n, err := strconv.Atoi(v)
		*p = n
		return err
	})
}

func (f *envFlags) bool(p *bool, name string, def bool, usage string) {
	f.BoolVar(p, name, def, usage+" ["+envName(name)+"]")
	f.fromEnv(name, func(v string) error {
		b, err := strconv.ParseBool(v)
		*p = b
		return err
	})
}

func (f *envFlags) duration(p *time.Duration, name string, def time.Duration, usage string) {
	f.DurationVar(p, name, def, usage+" ["+envName(name)+"]")
	f.fromEnv(name, func(v string) error {
		d, err := time.ParseDuration(v)
		*p = d
		return err
	})
}

func (f *envFlags) fromEnv(name string, set func(string) error) {
	f.env = append(f.env, func() error {
		v, ok := os.LookupEnv(envName(name))
		if !ok || v == "" {
			return nil
		}
		if err := set(v); err != nil {
			return usageError{fmt.Sprintf("%s=%q: %v", envName(name), v, err)}
		}
		return nil
	})
}

// parse applies the environment first, then the command line on top.
func (f *envFlags) parse(args []string) error {
	for _, apply := range f.env {
		if err := apply(); err != nil {
			return err
		}
	}
	return f.Parse(args)
}

// nodeFlags are the flags serve and migrate share.
func nodeFlags(fs *envFlags, cfg *gateway.Config) {
	fs.string(&cfg.DataDir, "data-dir", ".blockgate", "directory for the embedded NATS store, the private Postgres and dev.env")
	fs.string(&cfg.PostgresURL, "postgres-url", "", "Postgres connection URL; empty starts a private Postgres in the data dir")
}

func serve(ctx context.Context, args []string) error {
	var cfg gateway.Config
	var logLevel, logFormat string
	var maxBody, pubsubMax int
	var masterKeyFile, tlsNames string
	fs := newEnvFlags("serve")
	nodeFlags(fs, &cfg)
	fs.string(&cfg.Host, "host", "", "address the API, admin and metrics listeners bind (empty: all interfaces)")
	fs.int(&cfg.HTTPPort, "http-port", gateway.DefaultHTTPPort, "Dapr HTTP API port (0: any free port)")
	fs.int(&cfg.GRPCPort, "grpc-port", gateway.DefaultGRPCPort, "Dapr gRPC API port (0: any free port)")
	fs.int(&cfg.AdminPort, "admin-port", gateway.DefaultAdminPort, "admin API port (0: any free port)")
	fs.int(&cfg.MetricsPort, "metrics-port", gateway.DefaultMetricsPort, "Prometheus metrics port (0: any free port, -1: off)")
	fs.int(&cfg.XDSPort, "xds-port", gateway.DefaultXDSPort, "xDS control plane port for Envoy sidecars (0: any free port, -1: off)")
	fs.string(&cfg.PublicHost, "public-host", "", "name sidecars and clients reach the gateway by, e.g. its load balancer (default: the first --tls-names)")
	fs.int(&cfg.NATSPort, "nats-port", gateway.DefaultNATSPort, "embedded NATS client port, loopback only (0: any free port)")
	fs.string(&cfg.NATSURL, "nats-url", "", "external NATS cluster URL; empty embeds a NATS server with JetStream")
	var clusterPeers string
	fs.string(&cfg.ClusterName, "cluster-name", "", "join the embedded NATS servers of the nodes into this cluster (empty: a single node)")
	fs.string(&clusterPeers, "cluster-peers", "", "comma-separated route addresses host:port of every node of the cluster, this one included")
	fs.string(&cfg.NodeName, "node-name", "", "this node's name in the cluster, unique (default: the host name)")
	fs.string(&cfg.ClusterHost, "cluster-host", "", "address the cluster route listener binds (default: --host)")
	fs.int(&cfg.ClusterPort, "cluster-port", gateway.DefaultClusterPort, "cluster route port (0: any free port)")
	fs.string(&cfg.ClusterSecret, "cluster-secret", "", "password of the cluster routes, the same on every node; prefer the environment variable")
	fs.bool(&cfg.ClusterPlainRoutes, "cluster-plain-routes", false, "routes without TLS (by default they are TLS with the CA's gateway certificates); only on a network that encrypts by itself")
	fs.string(&cfg.AdminToken, "admin-token", "", "platform admin token; empty generates one into <data-dir>/admin-token")
	fs.int(&maxBody, "max-body-size", 4<<20, "largest accepted request body in bytes")
	fs.int(&pubsubMax, "pubsub-max-bytes", 1<<30, "default limit of a tenant's stored pub/sub messages, in bytes")
	fs.duration(&cfg.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long shutdown waits for in-flight requests")
	fs.bool(&cfg.Dev, "dev", false, "create tenant default, app app1 and dev components; write <data-dir>/dev.env")
	fs.string(&cfg.TrustDomain, "trust-domain", "blockgate.local", "SPIFFE trust domain of the apps' certificates (the same on every node)")
	fs.string(&masterKeyFile, "ca-master-key-file", "", "file holding the key (32+ bytes) that encrypts the CA's keys at rest; empty: <data-dir>/ca-master.key")
	fs.string(&cfg.CARootCertFile, "ca-root-cert", "", "PEM root CA certificate to issue under (with --ca-root-key); empty: a self-signed root")
	fs.string(&cfg.CARootKeyFile, "ca-root-key", "", "PEM private key of --ca-root-cert")
	fs.duration(&cfg.SVIDTTL, "svid-ttl", 24*time.Hour, "default lifetime of an app's certificate")
	fs.bool(&cfg.TLS, "tls", false, "serve the HTTP and gRPC APIs over TLS; clients may then authenticate with their SVID (mTLS)")
	fs.string(&tlsNames, "tls-names", "", "comma-separated DNS names and IPs of the API certificate (default localhost, 127.0.0.1, ::1, the host name)")
	fs.string(&cfg.FederationCAFile, "federation-ca-file", "", "PEM roots to trust when fetching federated issuers' keys (e.g. a Kubernetes API server's CA)")
	var tenantRPS, appRPS string
	var tenantBurst, appBurst, maxConns, maxApps, maxSubs, maxRequest, stateMax int
	fs.string(&tenantRPS, "tenant-rps", "0", "default requests per second of a tenant, all nodes together (0: no limit)")
	fs.int(&tenantBurst, "tenant-burst", 0, "default burst of a tenant's requests (0: one second's worth)")
	fs.string(&appRPS, "app-rps", "0", "default requests per second of each app (0: no limit)")
	fs.int(&appBurst, "app-burst", 0, "default burst of an app's requests (0: one second's worth)")
	fs.int(&maxRequest, "tenant-max-request-bytes", 0, "default largest request of a tenant, below --max-body-size (0: no tenant limit)")
	fs.int(&maxConns, "tenant-max-connections", 0, "default concurrent requests and streams of a tenant per node (0: no limit)")
	fs.int(&maxApps, "tenant-max-apps", 0, "default number of apps a tenant may have (0: no limit)")
	fs.int(&maxSubs, "tenant-max-subscriptions", 0, "default number of declarative subscriptions of a tenant (0: no limit)")
	fs.int(&stateMax, "tenant-state-max-bytes", 0, "default bytes of stored state of a tenant (0: no limit)")
	fs.duration(&cfg.StateUsageInterval, "state-usage-interval", 30*time.Second, "how often tenants' stored state is measured against their quota")
	fs.bool(&cfg.Pprof, "pprof", false, "serve Go profiles under /debug/pprof/ on the metrics port")
	fs.string(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.string(&logFormat, "log-format", "text", "text or json")
	if err := fs.parse(args); err != nil {
		return err
	}
	for _, r := range []struct {
		name string
		text string
		dst  *float64
	}{{"--tenant-rps", tenantRPS, &cfg.DefaultLimits.RequestsPerSecond}, {"--app-rps", appRPS, &cfg.DefaultLimits.AppRequestsPerSecond}} {
		v, err := strconv.ParseFloat(r.text, 64)
		if err != nil || v < 0 || math.IsInf(v, 0) {
			return usageError{fmt.Sprintf("%s %q: want requests per second, e.g. 100 or 0.5", r.name, r.text)}
		}
		*r.dst = v
	}
	cfg.DefaultLimits.RequestBurst, cfg.DefaultLimits.AppRequestBurst = tenantBurst, appBurst
	cfg.DefaultLimits.MaxConnections, cfg.DefaultLimits.MaxApps, cfg.DefaultLimits.MaxSubscriptions = maxConns, maxApps, maxSubs
	cfg.DefaultLimits.MaxRequestBytes = int64(maxRequest)
	cfg.DefaultLimits.StateMaxBytes = int64(stateMax)
	if err := readMasterKey(&cfg, masterKeyFile); err != nil {
		return err
	}
	for _, p := range strings.Split(clusterPeers, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.ClusterPeers = append(cfg.ClusterPeers, p)
		}
	}
	for _, n := range strings.Split(tlsNames, ",") {
		if n = strings.TrimSpace(n); n != "" {
			cfg.TLSNames = append(cfg.TLSNames, n)
		}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("serve takes no arguments, got %q", fs.Args())}
	}
	logger, err := newLogger(os.Stderr, logLevel, logFormat)
	if err != nil {
		return err
	}
	cfg.MaxBodyBytes = int64(maxBody)
	cfg.PubsubMaxBytes = int64(pubsubMax)
	cfg.Version = version
	cfg.Logger = logger
	return gateway.Run(ctx, cfg)
}

// readMasterKey fills cfg.CAMasterKey from BLOCKGATE_CA_MASTER_KEY (the key
// itself) or from file; neither leaves it empty for the data dir's key.
func readMasterKey(cfg *gateway.Config, file string) error {
	if v := os.Getenv("BLOCKGATE_CA_MASTER_KEY"); v != "" {
		if file != "" {
			return usageError{"BLOCKGATE_CA_MASTER_KEY and --ca-master-key-file both set the CA master key: keep one"}
		}
		cfg.CAMasterKey = []byte(strings.TrimSpace(v))
		return nil
	}
	if file == "" {
		return nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("--ca-master-key-file: %w", err)
	}
	cfg.CAMasterKey = []byte(strings.TrimSpace(string(b)))
	return nil
}

func migrate(ctx context.Context, args []string) error {
	var cfg gateway.Config
	var logLevel string
	fs := newEnvFlags("migrate")
	nodeFlags(fs, &cfg)
	fs.string(&logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.parse(args); err != nil {
		return err
	}
	logger, err := newLogger(os.Stderr, logLevel, "text")
	if err != nil {
		return err
	}
	cfg.Logger = logger
	return gateway.Migrate(ctx, cfg)
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("--log-level %q: use debug, info, warn or error", level)}
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Sprintf("--log-format %q: use text or json", format)}
}
