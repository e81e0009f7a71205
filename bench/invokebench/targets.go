package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/blockgate/blockgate/bench/benchkit"
)

// pong is the target app's HTTP answer.
var pong = []byte(`{"pong":true}`)

// app is the target app: an HTTP and a gRPC server on loopback.
type app struct {
	httpSrv  *http.Server
	grpcSrv  *grpc.Server
	httpAddr string
	grpcAddr string
}

// startApp starts the target app's servers. Close stops them.
func startApp() (*app, error) {
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		hl.Close()
		return nil, err
	}
	a := &app{httpAddr: hl.Addr().String(), grpcAddr: gl.Addr().String()}
	a.httpSrv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(pong)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	a.grpcSrv = grpc.NewServer()
	healthpb.RegisterHealthServer(a.grpcSrv, health.NewServer()) // "" is SERVING
	go func() { _ = a.httpSrv.Serve(hl) }()
	go func() { _ = a.grpcSrv.Serve(gl) }()
	return a, nil
}

// Close stops both servers; Serve returns on its own once they are closed.
func (a *app) Close() {
	_ = a.httpSrv.Close()
	a.grpcSrv.Stop()
}

// httpClient is a keep-alive client with room for every worker's
// connection.
func httpClient(workers int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns: workers, MaxIdleConnsPerHost: workers, IdleConnTimeout: time.Minute,
	}}
}

// httpOp makes GET url with the given headers and checks the body.
func httpOp(c *http.Client, url string, header http.Header) benchkit.Op {
	return func(ctx context.Context) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		req.Header = header
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusOK || len(body) != len(pong) {
			return 0, fmt.Errorf("GET %s: %d %q", url, resp.StatusCode, body)
		}
		return 1, nil
	}
}

// grpcConn dials addr without TLS.
func grpcConn(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// healthOp calls Health/Check with md as outgoing metadata (nil for none).
func healthOp(conn *grpc.ClientConn, md metadata.MD) benchkit.Op {
	c := healthpb.NewHealthClient(conn)
	return func(ctx context.Context) (int, error) {
		if md != nil {
			ctx = metadata.NewOutgoingContext(ctx, md)
		}
		resp, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return 0, err
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return 0, errors.New("health check: " + resp.GetStatus().String())
		}
		return 1, nil
	}
}
