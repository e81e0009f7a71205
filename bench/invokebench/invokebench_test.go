package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestValidate(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "blockgate")
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	ok := config{bin: bin, rate: 1000, duration: 30 * time.Second, workers: 64, rounds: 1, slice: time.Second}
	tests := []struct {
		name    string
		change  func(*config)
		wantErr bool
	}{
		{"defaults", func(*config) {}, false},
		{"no rate", func(c *config) { c.rate = 0 }, true},
		{"no request in the duration", func(c *config) { c.duration = time.Millisecond; c.rate = 10 }, true},
		{"too many requests", func(c *config) { c.rate = 1e6; c.duration = time.Hour }, true},
		{"no workers", func(c *config) { c.workers = 0 }, true},
		{"no rounds", func(c *config) { c.rounds = 0 }, true},
		{"no slice", func(c *config) { c.slice = 0 }, true},
		{"duration not a whole number of slices", func(c *config) { c.slice = 7 * time.Second }, true},
		{"no request in a slice", func(c *config) { c.rate = 0.5 }, true},
		{"no binary", func(c *config) { c.bin = filepath.Join(t.TempDir(), "missing") }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.change(&c)
			if err := c.validate(); (err != nil) != tt.wantErr {
				t.Errorf("validate() = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestAppAnswers(t *testing.T) {
	a, err := startApp()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	c := httpClient(1)
	defer c.CloseIdleConnections()
	if _, err := httpOp(c, "http://"+a.httpAddr+"/ping", nil)(t.Context()); err != nil {
		t.Errorf("HTTP: %v", err)
	}
	conn, err := grpcConn(a.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := healthOp(conn, nil)(t.Context()); err != nil {
		t.Errorf("gRPC: %v", err)
	}
}

func TestBareProxyCarriesBothProtocols(t *testing.T) {
	a, err := startApp()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	bp, err := listenBareProxy(a.httpAddr, a.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer bp.close()
	c := httpClient(1)
	defer c.CloseIdleConnections()
	if _, err := httpOp(c, "http://"+bp.httpAddr+"/ping", nil)(t.Context()); err != nil {
		t.Errorf("HTTP through the bare proxy: %v", err)
	}
	conn, err := grpcConn(bp.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Metadata such as the gateway's must pass without harm.
	if _, err := healthOp(conn, metadata.Pairs("dapr-app-id", "x"))(t.Context()); err != nil {
		t.Errorf("gRPC through the bare proxy: %v", err)
	}
	// An unknown method comes back with the app's own status.
	err = conn.Invoke(t.Context(), "/no.Such/Method", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("unknown method: %v, want Unimplemented from the app", err)
	}
}
