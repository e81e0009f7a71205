package gateway

import (
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "defaults", cfg: Config{HTTPPort: 3500, GRPCPort: 50001, AdminPort: 8080, MetricsPort: 9090, NATSPort: 4222}},
		{name: "free ports and no metrics", cfg: Config{MetricsPort: -1}},
		{name: "port out of range", cfg: Config{HTTPPort: 70000}, wantErr: "--http-port 70000"},
		{name: "negative grpc port", cfg: Config{GRPCPort: -1}, wantErr: "--grpc-port -1"},
		{name: "tiny body limit", cfg: Config{MaxBodyBytes: 10}, wantErr: "--max-body-size"},
		{name: "tiny pubsub limit", cfg: Config{PubsubMaxBytes: 1000}, wantErr: "--pubsub-max-bytes"},
		{name: "cluster", cfg: Config{ClusterName: "c1", ClusterPeers: []string{"gw-1:6222", "gw-2:6222"}, NodeName: "gw-1", ClusterPort: 6222}},
		{name: "cluster without peers", cfg: Config{ClusterName: "c1"}, wantErr: "--cluster-peers"},
		{name: "cluster and external NATS", cfg: Config{ClusterName: "c1", ClusterPeers: []string{"a:1"}, NATSURL: "nats://x:4222"}, wantErr: "--nats-url"},
		{name: "peers without a cluster", cfg: Config{ClusterPeers: []string{"a:1"}}, wantErr: "--cluster-name"},
		{name: "bad node name", cfg: Config{NodeName: "node 1"}, wantErr: "--node-name"},
		{name: "cluster port out of range", cfg: Config{ClusterPort: -2}, wantErr: "--cluster-port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			err := cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.DataDir != ".blockgate" || cfg.MaxBodyBytes != 4<<20 || cfg.PubsubMaxBytes != 1<<30 || cfg.Logger == nil ||
					!validNodeName(cfg.NodeName) {
					t.Fatalf("defaults not filled in: %+v", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one naming %s", err, tt.wantErr)
			}
		})
	}
}
