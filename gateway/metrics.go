package gateway

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// metrics are the node's request metrics, by transport.
type metrics struct {
	httpRequests *prometheus.HistogramVec
	grpcRequests *prometheus.HistogramVec
	// clusterNodes is the number of live gateway nodes this node sees.
	clusterNodes prometheus.Gauge
}

func newMetrics() *metrics {
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	return &metrics{
		httpRequests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "blockgate_http_request_duration_seconds", Help: "Dapr HTTP API requests by method and status.", Buckets: buckets,
		}, []string{"method", "status"}),
		grpcRequests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "blockgate_grpc_request_duration_seconds", Help: "Dapr gRPC API calls by method and code.", Buckets: buckets,
		}, []string{"method", "code"}),
		clusterNodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "blockgate_cluster_nodes", Help: "Live gateway nodes of the cluster as this node sees them, itself included.",
		}),
	}
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.httpRequests.Describe(ch)
	m.grpcRequests.Describe(ch)
	m.clusterNodes.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.httpRequests.Collect(ch)
	m.grpcRequests.Collect(ch)
	m.clusterNodes.Collect(ch)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (m *metrics) wrapHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		m.httpRequests.WithLabelValues(r.Method, strconv.Itoa(rec.status)).Observe(time.Since(start).Seconds())
	})
}

func (m *metrics) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	m.grpcRequests.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
	return resp, err
}

func (m *metrics) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	start := time.Now()
	err := h(srv, ss)
	m.grpcRequests.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
	return err
}
