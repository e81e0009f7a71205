package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/blockgate/blockgate/admin"
	"github.com/blockgate/blockgate/gateway/gatewaygrpc"
	"github.com/blockgate/blockgate/gateway/gatewayhttp"
	"github.com/blockgate/blockgate/tenants/tenantspg"
)

// Endpoints are the addresses a node serves on, as a client reaches them.
type Endpoints struct {
	HTTP, GRPC, Admin, Metrics string
}

// serve opens the listeners and runs every server and background loop
// until ctx is done or one of them fails.
func (n *node) serve(ctx context.Context) error {
	log := n.cfg.Logger
	lHTTP, err := n.listen("--http-port", n.cfg.HTTPPort)
	if err != nil {
		return err
	}
	defer lHTTP.Close()
	lGRPC, err := n.listen("--grpc-port", n.cfg.GRPCPort)
	if err != nil {
		return err
	}
	defer lGRPC.Close()
	lAdmin, err := n.listen("--admin-port", n.cfg.AdminPort)
	if err != nil {
		return err
	}
	defer lAdmin.Close()
	if n.cfg.XDSPort >= 0 {
		lXDS, err := n.listen("--xds-port", n.cfg.XDSPort)
		if err != nil {
			return err
		}
		n.xdsPort = lXDS.Addr().(*net.TCPAddr).Port
		if err := n.startXDS(lXDS, lHTTP.Addr().(*net.TCPAddr).Port, lGRPC.Addr().(*net.TCPAddr).Port); err != nil {
			lXDS.Close()
			return err
		}
	}
	var lMetrics net.Listener
	if n.cfg.MetricsPort >= 0 {
		if lMetrics, err = n.listen("--metrics-port", n.cfg.MetricsPort); err != nil {
			return err
		}
		defer lMetrics.Close()
	}

	adminToken, err := n.adminToken()
	if err != nil {
		return err
	}
	metrics := newMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), metrics)
	auditFailures := prometheus.NewCounter(prometheus.CounterOpts{Name: "blockgate_admin_audit_write_failures_total",
		Help: "Admin actions whose audit log entry could not be written (the actions stand)."})
	reg.MustRegister(auditFailures)

	adminSvc := admin.NewService(n.registry, n.tokens, n.authn, map[string]admin.ComponentValidator{
		"state":  n.state.ValidateComponent,
		"pubsub": n.pubsub.ValidateComponent,
	}, log)
	adminSvc.SetCA(n.ca)
	adminSvc.SetDefaultLimits(n.cfg.DefaultLimits)
	if n.xds != nil {
		adminSvc.SetSidecars(sidecarAdmin{n})
	}

	httpSrv := &http.Server{
		Handler: metrics.wrapHTTP(gatewayhttp.New(gatewayhttp.Config{
			State: n.state, Pubsub: n.pubsub, Invoke: n.invoke, Metadata: n.metadata, Auth: n.authn, JWKS: n.tokens.JWKS, Identity: n.ca, Quota: n.quotas,
			Ready: n.ready, MaxBodyBytes: n.cfg.MaxBodyBytes, Logger: log,
		})),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	grpcOpts := []grpc.ServerOption{grpc.ChainUnaryInterceptor(metrics.unaryInterceptor), grpc.ChainStreamInterceptor(metrics.streamInterceptor)}
	if n.cfg.TLS {
		tlsCfg := n.serverTLS()
		httpSrv.TLSConfig = tlsCfg
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	stopping := make(chan struct{}) // closed when shutdown begins
	grpcSrv := gatewaygrpc.New(gatewaygrpc.Config{
		State: n.state, Pubsub: n.pubsub, Invoke: n.invoke, Channel: n.channel, Metadata: n.metadata, Auth: n.authn,
		Identity: n.ca, Quota: n.quotas, MaxRecvBytes: int(n.cfg.MaxBodyBytes), Stopping: stopping, Logger: log,
	}, grpcOpts...)
	adminSrv := &http.Server{
		Handler:           admin.Handler(adminSvc, admin.HandlerConfig{Token: adminToken, JWKS: n.tokens.JWKS, AuditFailures: auditFailures, Ready: n.readyz, Logger: log}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	var metricsSrv *http.Server
	if lMetrics != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		if n.cfg.Pprof {
			// Profiles of a live node, on the metrics port only.
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	}

	ep := Endpoints{HTTP: clientAddr(lHTTP), GRPC: clientAddr(lGRPC), Admin: clientAddr(lAdmin)}
	if lMetrics != nil {
		ep.Metrics = clientAddr(lMetrics)
	}
	if n.members, err = n.newMembership(ep, metrics); err != nil {
		return err
	}
	adminSvc.SetCluster(clusterView{n.members})
	if n.cfg.Dev {
		if err := n.bootstrapDev(ctx, adminSvc, ep, adminToken); err != nil {
			return fmt.Errorf("dev mode setup: %w", err)
		}
	}

	// Background loops stop with loopCtx, after the servers have drained.
	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoops()
	loops, loopCtx := errgroup.WithContext(loopCtx)
	loops.Go(func() error {
		return n.registry.Listen(loopCtx, func(c tenantspg.Change) { n.onRegistryChange(loopCtx, c) })
	})
	loops.Go(func() error { return n.authn.Run(loopCtx, time.Minute) })
	loops.Go(func() error { return n.statepg.Run(loopCtx, 10*time.Second) })
	loops.Go(func() error { return n.statepg.RunRelay(loopCtx, n.broker.PublishBatch) })
	loops.Go(func() error { return n.deliveries.Run(loopCtx) })
	loops.Go(func() error { return n.channel.Run(loopCtx) })
	loops.Go(func() error { return n.ca.Run(loopCtx) })
	loops.Go(func() error { return n.quotas.Run(loopCtx) })
	loops.Go(func() error { return n.quotas.RunStateUsage(loopCtx, n.statepg.Usage, n.cfg.StateUsageInterval) })
	loops.Go(func() error { return n.oidc.Run(loopCtx) })
	loops.Go(func() error { return n.members.Run(loopCtx) })
	if n.sidecars != nil {
		loops.Go(func() error { return n.sidecars.Run(loopCtx) })
	}

	servers, sctx := errgroup.WithContext(ctx)
	servers.Go(func() error {
		if httpSrv.TLSConfig != nil {
			// ServeTLS adds h2 to the protocols; the certificates come
			// from TLSConfig.GetCertificate.
			if err := httpSrv.ServeTLS(lHTTP, "", ""); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		}
		return serveHTTP(httpSrv, lHTTP)
	})
	servers.Go(func() error { return grpcSrv.Serve(lGRPC) })
	servers.Go(func() error { return serveHTTP(adminSrv, lAdmin) })
	if n.xds != nil {
		servers.Go(func() error { return n.xds.Run(sctx) })
	}
	if metricsSrv != nil {
		servers.Go(func() error { return serveHTTP(metricsSrv, lMetrics) })
	}
	servers.Go(func() error {
		// A background loop that dies takes the node down with it.
		select {
		case <-sctx.Done():
			return nil
		case <-loopCtx.Done():
			return fmt.Errorf("background loop stopped: %w", context.Cause(loopCtx))
		}
	})
	log.Info("blockgate is serving", "http", ep.HTTP, "grpc", ep.GRPC, "admin", ep.Admin, "metrics", ep.Metrics,
		"nats", n.natsURL, "version", n.cfg.Version)

	servers.Go(func() error {
		<-sctx.Done()
		close(stopping)
		n.shutdown(httpSrv, adminSrv, metricsSrv, grpcSrv)
		return nil
	})
	err = servers.Wait()
	stopLoops()
	if lerr := loops.Wait(); lerr != nil && err == nil && !errors.Is(lerr, context.Canceled) {
		err = lerr
	}
	log.Info("blockgate stopped")
	return err
}

// shutdown lets in-flight requests finish, up to the shutdown timeout, then
// closes what is left.
func (n *node) shutdown(httpSrv, adminSrv, metricsSrv *http.Server, grpcSrv *grpc.Server) {
	n.cfg.Logger.Info("shutting down; waiting for in-flight requests", "timeout", n.cfg.ShutdownTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		grpcSrv.GracefulStop()
		close(done)
	}()
	for _, s := range []*http.Server{httpSrv, adminSrv, metricsSrv} {
		if s == nil {
			continue
		}
		if err := s.Shutdown(ctx); err != nil {
			s.Close()
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		grpcSrv.Stop()
	}
}

func serveHTTP(s *http.Server, l net.Listener) error {
	if err := s.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// clientAddr is the address a local client dials for listener l.
func clientAddr(l net.Listener) string {
	a := l.Addr().(*net.TCPAddr)
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, fmt.Sprint(a.Port))
}
