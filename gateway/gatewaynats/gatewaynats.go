// Package gatewaynats runs the NATS server with JetStream that every gateway
// node embeds, the way NATS's own tests do: NewServer, Start,
// ReadyForConnections, and Shutdown when the node stops.
//
// With a Cluster name the embedded servers of several nodes form one NATS
// cluster over routes, as nats-server's own cluster tests configure it
// (createJetStreamClusterExplicit): every server is named, listens for
// routes and lists the seed routes, the same list on every node, its own
// address included (a server ignores its route to itself). JetStream then
// runs clustered: its metadata and every stream with more than one replica
// are RAFT groups, and nothing is written until a majority of the servers
// the routes name have met and elected a meta leader.
package gatewaynats

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config configures the embedded server.
type Config struct {
	// Host is the client listen address; default 127.0.0.1 (loopback only).
	Host string
	// Port is the client port; default 4222, 0 picks a free port.
	Port int
	// StoreDir holds JetStream's file store; required.
	StoreDir string
	// ServerName names this node in a NATS cluster, unique within it;
	// default "blockgate".
	ServerName string
	// Cluster makes the server one node of a NATS cluster; its zero value
	// runs a single server.
	Cluster Cluster
	// ReadyTimeout bounds the wait for the server to accept clients; default 10s.
	ReadyTimeout time.Duration
	Logger       *slog.Logger
}

// Cluster configures the routes between the embedded servers of a cluster.
type Cluster struct {
	// Name is the NATS cluster's name, the same on every node; "" runs a
	// single server and ignores the other fields.
	Name string
	// Host is the route listen address; default "0.0.0.0" (all interfaces).
	Host string
	// Port is the route port; 0 picks a free one (useful alone only: peers
	// must know it).
	Port int
	// Routes are the seed routes, host:port or nats-route:// URLs; the same
	// list on every node, this node's own address included, is what NATS
	// recommends. Required: JetStream runs clustered only with routes; a
	// first node alone lists itself.
	Routes []string
	// Secret, when set, is the password (user "blockgate") every route must
	// present; set the same on every node. Without it and without TLS
	// anyone who reaches the route port joins the cluster and reads every
	// message.
	Secret string
	// TLS, when set, makes every route TLS: the server accepts routes with
	// it and dials them with a clone of it, so it must serve and present a
	// certificate (GetCertificate, GetClientCertificate), require the
	// peer's, and verify it itself in VerifyPeerCertificate with
	// InsecureSkipVerify on, as authca.CA.RouteTLSConfig does: routes are
	// dialled by address, which certificates need not name.
	TLS *tls.Config
}

// routeUser is the user routes authenticate as when Cluster.Secret is set.
const routeUser = "blockgate"

// Server is a running embedded NATS server.
type Server struct {
	ns        *server.Server
	clustered bool
	seeds     int
	closeOnce sync.Once
}

// Start starts the server and waits until it accepts connections.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("nats: StoreDir is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "blockgate"
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	port := cfg.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: cfg.ServerName,
		Host:       cfg.Host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true, // only main handles signals
		// Dapr accepts 4 MiB bodies; their CloudEvent envelope (base64 for
		// binary data) is larger still.
		MaxPayload: 8 << 20,
		// Keep HTTP monitoring off: the gateway has its own metrics endpoint.
		HTTPPort: 0,
	}
	if err := cfg.Cluster.apply(opts); err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("configuring embedded NATS: %w", err)
	}
	logs := slogAdapter{l: cfg.Logger.With("component", "nats"), fatal: new(atomic.Pointer[string]),
		routesVerified: cfg.Cluster.TLS != nil}
	ns.SetLoggerV2(logs, false, false, false)
	go ns.Start()
	deadline := time.Now().Add(cfg.ReadyTimeout)
	for !ns.ReadyForConnections(100 * time.Millisecond) {
		fatal := logs.fatal.Load()
		if ctx.Err() != nil || time.Now().After(deadline) || fatal != nil {
			ns.Shutdown()
			ns.WaitForShutdown()
			switch {
			case fatal != nil:
				// Such as a port in use: the server would never be ready.
				return nil, fmt.Errorf("embedded NATS: %s", *fatal)
			case ctx.Err() != nil:
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("embedded NATS did not accept connections on %s within %s; is the port in use? (--nats-port)",
				net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)), cfg.ReadyTimeout)
		}
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		return nil, errors.New("embedded NATS started without JetStream; check the store directory is writable")
	}
	s := &Server{ns: ns, clustered: cfg.Cluster.Name != ""}
	if s.clustered {
		s.seeds = seedSize(opts.Routes, ns.ClusterAddr())
	}
	return s, nil
}

// apply sets the cluster options of opts.
func (c Cluster) apply(opts *server.Options) error {
	if c.Name == "" {
		return nil
	}
	if strings.ContainsAny(c.Name, " \t.*>") {
		return fmt.Errorf("cluster name %q: use letters, digits, - and _", c.Name)
	}
	if len(c.Routes) == 0 {
		return fmt.Errorf("cluster %s: no peers; list every node's route address, this node's included", c.Name)
	}
	host := c.Host
	if host == "" {
		host = "0.0.0.0"
	}
	port := c.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts.Cluster = server.ClusterOpts{
		Name: c.Name, Host: host, Port: port,
		// Clients connect to their own node's server on loopback: its
		// client address means nothing to another node's clients.
		NoAdvertise: true,
	}
	if c.Secret != "" {
		opts.Cluster.Username, opts.Cluster.Password = routeUser, c.Secret
	}
	if c.TLS != nil {
		if c.TLS.VerifyPeerCertificate == nil {
			return fmt.Errorf("cluster %s: route TLS must verify peers itself (VerifyPeerCertificate)", c.Name)
		}
		opts.Cluster.TLSConfig = c.TLS
	}
	for _, r := range c.Routes {
		u, err := routeURL(r, c.Secret)
		if err != nil {
			return err
		}
		opts.Routes = append(opts.Routes, u)
	}
	return nil
}

// routeURL parses a seed route, host:port or a nats-route:// URL, and adds
// the route credentials.
func routeURL(r, secret string) (*url.URL, error) {
	r = strings.TrimSpace(r)
	if !strings.Contains(r, "://") {
		r = "nats-route://" + r
	}
	u, err := url.Parse(r)
	if err != nil || u.Hostname() == "" || u.Port() == "" {
		return nil, fmt.Errorf("cluster peer %q: want host:port", r)
	}
	if secret != "" && u.User == nil {
		u.User = url.UserPassword(routeUser, secret)
	}
	return u, nil
}

// seedSize is the number of servers the seed routes name, this one
// included whether or not they list it. A route is this server's own when
// its port is the route port and its host is one of this machine's
// addresses.
func seedSize(routes []*url.URL, self *net.TCPAddr) int {
	seen := map[string]bool{}
	n := 1 // this server
	for _, u := range routes {
		key := strings.ToLower(u.Host)
		if seen[key] {
			continue
		}
		seen[key] = true
		if self == nil || !isSelf(u, self) {
			n++
		}
	}
	return n
}

func isSelf(u *url.URL, self *net.TCPAddr) bool {
	if u.Port() != strconv.Itoa(self.Port) {
		return false
	}
	ips, err := net.LookupIP(u.Hostname())
	if err != nil {
		return false
	}
	local, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ip := range ips {
		if !self.IP.IsUnspecified() {
			if ip.Equal(self.IP) {
				return true
			}
			continue
		}
		if ip.IsLoopback() {
			return true
		}
		for _, a := range local {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return true
			}
		}
	}
	return false
}

// Clustered reports whether the server is a node of a NATS cluster.
func (s *Server) Clustered() bool { return s.clustered }

// SeedSize is the number of servers the seed routes name, this one
// included: the cluster's size as configured. 1 when not clustered. The
// cluster may grow beyond it as servers join through gossip.
func (s *Server) SeedSize() int {
	if !s.clustered {
		return 1
	}
	return s.seeds
}

// Current reports whether JetStream can serve from this server: it is
// enabled and, in a cluster, the metadata group has a leader and this
// server is up to date with it. Healthy asks less.
func (s *Server) Current() error {
	if !s.ns.JetStreamEnabled() {
		return errors.New("nats: JetStream is not enabled")
	}
	if s.clustered && !s.ns.JetStreamIsCurrent() {
		return errors.New("nats: JetStream has no meta leader or this server is behind it; are a majority of the cluster's servers up and routed?")
	}
	return nil
}

// ClientURL is the nats:// URL clients connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Healthy reports whether the server and JetStream are serving.
func (s *Server) Healthy() error {
	st := s.ns.Healthz(&server.HealthzOptions{JSEnabledOnly: true})
	if st.Status != "ok" {
		return fmt.Errorf("nats: %s", st.Error)
	}
	return nil
}

// Close shuts the server down and waits for it; safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	})
}

// slogAdapter sends the server's log lines to slog, and keeps the first
// fatal one: the server does not stop by itself after it.
type slogAdapter struct {
	l     *slog.Logger
	fatal *atomic.Pointer[string]
	// routesVerified: route TLS verifies peers in VerifyPeerCertificate,
	// so the server's warning that InsecureSkipVerify leaves routes
	// unverified is wrong and not passed on.
	routesVerified bool
}

// insecureRoutesWarning starts the warning nats-server logs at start when
// the route TLS config has InsecureSkipVerify.
const insecureRoutesWarning = "TLS certificate chain and hostname of solicited routes will not be verified"

func (a slogAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if a.routesVerified && strings.HasPrefix(msg, insecureRoutesWarning) {
		a.l.Debug("route TLS: chains and SPIFFE IDs are verified by the gateway's CA, not by host name")
		return
	}
	a.l.Warn(msg)
}
func (a slogAdapter) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	a.fatal.CompareAndSwap(nil, &msg)
	a.l.Error(msg)
}
func (a slogAdapter) Errorf(format string, v ...any) { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
