package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"github.com/jackc/pgx/v5"

	"github.com/blockgate/blockgate/gateway/gatewaynats/gatewaynatstest"
	"github.com/blockgate/blockgate/gateway/gatewaypg"
)

// cluster is N gateway processes on loopback that form one cluster: their
// embedded NATS servers route to each other and they share one Postgres
// database. Every node runs in dev mode (which is idempotent), so each has
// a dev.env with its own endpoints and an app token of tenant default.
//
// A node may be killed, stopped and started again while clients use the
// others. nodes may be read directly while no node restarts; node(i) reads
// it while one may.
type cluster struct {
	nodes []*gateway
	// args are each node's serve flags, for restarting it.
	args [][]string

	mu sync.Mutex // guards the entries of nodes, out and earlier
	// out marks the nodes that the regional endpoint leaves out: killed,
	// stopping, or started again but not yet rejoined.
	out []bool
	// earlier holds the logs of each node's previous runs.
	earlier [][]string
}

var (
	clusterPGOnce sync.Once
	clusterPG     *gatewaypg.Server
	clusterPGDir  string
	clusterPGErr  error
	clusterDBs    atomic.Int32
)

// clusterPostgres is the Postgres the clusters of this test binary share,
// each in a database of its own; started on first use, stopped by
// stopClusterPostgres after all tests.
func clusterPostgres(t *testing.T) *gatewaypg.Server {
	t.Helper()
	clusterPGOnce.Do(func() {
		if clusterPGDir, clusterPGErr = worldDir("blockgate-e2e-cluster-pg-"); clusterPGErr != nil {
			return
		}
		clusterPG, clusterPGErr = gatewaypg.Start(context.Background(), gatewaypg.Config{Dir: filepath.Join(clusterPGDir, "postgres")})
	})
	if clusterPGErr != nil {
		t.Fatalf("starting the clusters' Postgres: %v", clusterPGErr)
	}
	return clusterPG
}

func stopClusterPostgres() {
	if clusterPG != nil {
		if err := clusterPG.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the clusters' Postgres:", err)
		}
	}
	if clusterPGDir != "" {
		os.RemoveAll(clusterPGDir)
	}
}

// clusterDatabase creates a fresh database owned by the gateway's role and
// returns its URL.
func clusterDatabase(t *testing.T) string {
	t.Helper()
	pg := clusterPostgres(t)
	name := fmt.Sprintf("cluster_%d", clusterDBs.Add(1))
	conn, err := pgx.Connect(t.Context(), pg.AdminURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	if _, err := conn.Exec(t.Context(), "CREATE DATABASE "+name+" OWNER blockgate"); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// startCluster starts n gateway nodes on loopback sharing a fresh Postgres
// database, waits until every node is ready and sees all n, and stops them
// when the test ends. Node 1 starts first and migrates and creates the
// dev tenant; the others then start together.
func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	pgURL := clusterDatabase(t)
	secrets, err := worldDir("blockgate-e2e-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(secrets) })
	masterKey := filepath.Join(secrets, "ca-master.key")
	if err := os.WriteFile(masterKey, []byte(randomHex(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	adminToken := "bgadm_" + randomHex(t)

	ports := gatewaynatstest.FreePorts(t, n)
	peers := make([]string, n)
	for i, p := range ports {
		peers[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	secret := randomHex(t)
	c := &cluster{nodes: make([]*gateway, n), args: make([][]string, n), out: make([]bool, n), earlier: make([][]string, n)}
	for i := range n {
		c.args[i] = []string{"--postgres-url", pgURL, "--admin-token", adminToken, "--ca-master-key-file", masterKey,
			"--cluster-name", "e2e", "--cluster-peers", strings.Join(peers, ","), "--cluster-secret", secret,
			"--node-name", fmt.Sprintf("node-%d", i+1), "--cluster-port", fmt.Sprint(ports[i])}
	}
	start := func(i int) error {
		dir, err := worldDir(fmt.Sprintf("blockgate-e2e-node%d-", i+1))
		if err != nil {
			return err
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		g, err := startGateway(dir, c.args[i]...)
		if err != nil {
			return fmt.Errorf("node %d: %w", i+1, err)
		}
		c.nodes[i] = g
		return nil
	}
	t.Cleanup(func() { c.stop(t) })
	if err := start(0); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, n)
	for i := 1; i < n; i++ {
		go func() { errs <- start(i) }()
	}
	for i := 1; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	c.waitFormed(t)
	return c
}

// stop stops every node still running, in parallel, and shows the logs of
// a failed test.
func (c *cluster) stop(t *testing.T) {
	var wg sync.WaitGroup
	for i := range c.nodes {
		g := c.node(i)
		if g == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.stopIfRunning()
		}()
	}
	wg.Wait()
	if t.Failed() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, g := range c.nodes {
			for run, logs := range c.earlier[i] {
				t.Logf("log of node %d, run %d (last 6 KiB):\n%s", i+1, run+1, logs[max(0, len(logs)-6<<10):])
			}
			if g == nil {
				continue
			}
			logs := g.logs.String()
			t.Logf("log of node %d (last 6 KiB):\n%s", i+1, logs[max(0, len(logs)-6<<10):])
		}
	}
}

// node returns node i (from 0) as it runs now.
func (c *cluster) node(i int) *gateway {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// serving returns node i unless it is out: killed, stopping or not yet
// rejoined. A load balancer's health checks would tell the same.
func (c *cluster) serving(i int) (*gateway, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i], !c.out[i]
}

func (c *cluster) setOut(i int, out bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out[i] = out
}

// kill kills node i (from 0) with SIGKILL and waits until it has exited.
func (c *cluster) kill(t *testing.T, i int) {
	t.Helper()
	c.setOut(i, true)
	g := c.node(i)
	if err := g.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("killing node %d: %v", i+1, err)
	}
	<-g.exited
}

// terminate stops node i (from 0) with SIGTERM and waits until it has
// exited, which must be cleanly.
func (c *cluster) terminate(t *testing.T, i int) {
	t.Helper()
	c.setOut(i, true)
	if err := c.node(i).stop(); err != nil {
		t.Fatalf("stopping node %d: %v", i+1, err)
	}
}

// restart starts node i (from 0), which has exited, again with its flags
// and data dir, and waits until it is ready and every node sees every
// node as it runs now (the restarted one has new ports).
func (c *cluster) restart(t *testing.T, i int) {
	t.Helper()
	old := c.node(i)
	select {
	case <-old.exited:
	default:
		t.Fatalf("restarting node %d, which still runs", i+1)
	}
	g, err := startGateway(old.dataDir, c.args[i]...)
	if err != nil {
		t.Fatalf("restarting node %d: %v", i+1, err)
	}
	c.mu.Lock()
	c.earlier[i] = append(c.earlier[i], old.logs.String())
	c.nodes[i] = g
	c.mu.Unlock()
	c.waitFormed(t)
	c.setOut(i, false)
}

// waitFormed waits until every node is ready and lists every node.
func (c *cluster) waitFormed(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err := c.formed(t.Context())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster did not form within 30s: %v", err)
		}
	}
}

// formed reports whether every node is ready and lists every node, each
// with the HTTP address it has now.
func (c *cluster) formed(ctx context.Context) error {
	gs := make([]*gateway, len(c.nodes))
	for i := range gs {
		gs[i] = c.node(i)
	}
	for i, g := range gs {
		if err := g.admin().Ready(ctx); err != nil {
			return fmt.Errorf("node %d not ready: %w", i+1, err)
		}
		nodes, err := g.admin().ClusterNodes(ctx)
		if err != nil {
			return fmt.Errorf("node %d: %w", i+1, err)
		}
		if len(nodes) != len(gs) {
			return fmt.Errorf("node %d sees %d nodes", i+1, len(nodes))
		}
		at := map[string]string{}
		for _, nd := range nodes {
			at[nd.Name] = nd.HTTP
		}
		for j, other := range gs {
			name, want := fmt.Sprintf("node-%d", j+1), strings.TrimPrefix(other.httpURL(), "http://")
			if at[name] != want {
				return fmt.Errorf("node %d lists %s at %q, want %s", i+1, name, at[name], want)
			}
		}
	}
	return nil
}

func randomHex(t *testing.T) string {
	t.Helper()
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// TestCluster runs three gateway processes as one cluster: what is
// written, published or revoked through one node takes effect through the
// others, and every node knows all three and says it is ready.
func TestCluster(t *testing.T) {
	c := startCluster(t, 3)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]

	t.Run("state written through node 1 is read through node 3", func(t *testing.T) {
		if st, _, body := do(t, n1, n1.token(), "POST", "/v1.0/state/statestore",
			strings.NewReader(`[{"key":"across","value":{"from":"node-1"}}]`)); st != http.StatusNoContent {
			t.Fatalf("save on node 1: %d %s", st, body)
		}
		st, _, body := do(t, n3, n3.token(), "GET", "/v1.0/state/statestore/across", nil)
		if st != http.StatusOK || string(body) != `{"from":"node-1"}` {
			t.Fatalf("get on node 3: %d %s", st, body)
		}
		// The Go SDK over gRPC, with node 1's token on node 3.
		item, err := goClient(t, n3, n1.token()).GetState(t.Context(), "statestore", "across", nil)
		if err != nil || string(item.Value) != `{"from":"node-1"}` {
			t.Fatalf("SDK get on node 3: %q %v", item.Value, err)
		}
	})

	t.Run("a message published on node 2 reaches a subscriber streaming from node 3", func(t *testing.T) {
		c3 := goClient(t, n3, n3.token())
		topic := fmt.Sprintf("across-%d", time.Now().UnixNano())
		sub := subscribe(t, c3, dapr.SubscriptionOptions{PubsubName: "pubsub", Topic: topic})
		waitUntil(t, "node 3 lists the streaming subscription", func() bool {
			md, err := c3.GetMetadata(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range md.Subscriptions {
				if s.Topic == topic {
					return true
				}
			}
			return false
		})
		if st, _, body := do(t, n2, n2.token(), "POST", "/v1.0/publish/pubsub/"+topic, strings.NewReader(`{"n":1}`),
			"Content-Type", "application/json"); st != http.StatusNoContent {
			t.Fatalf("publish on node 2: %d %s", st, body)
		}
		m := receive(t, sub, 10*time.Second)
		if m.Topic != topic || string(m.RawData) != `{"n":1}` {
			t.Fatalf("node 3 received %+v %s", m.TopicEvent, m.RawData)
		}
		if err := m.Success(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a token revoked on node 1 is refused on node 2 within a second", func(t *testing.T) {
		issued, err := n1.admin().IssueToken(t.Context(), "default", "app1", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if st, _, body := do(t, n2, issued.Text, "GET", "/v1.0/metadata", nil); st != http.StatusOK {
			t.Fatalf("fresh token on node 2: %d %s", st, body)
		}
		if _, err := n1.admin().RevokeToken(t.Context(), issued.ID); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(time.Second)
		for {
			st, _, _ := do(t, n2, issued.Text, "GET", "/v1.0/metadata", nil)
			if st == http.StatusUnauthorized {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node 2 still answers %d a second after node 1 revoked the token", st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("every node lists the three nodes and is ready", func(t *testing.T) {
		for i, g := range c.nodes {
			nodes, err := g.admin().ClusterNodes(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, nd := range nodes {
				names = append(names, nd.Name)
				if nd.HTTP == "" || nd.GRPC == "" || nd.Admin == "" || nd.StartedAt.IsZero() || nd.LastSeen.IsZero() {
					t.Errorf("node %d's record of %s: %+v", i+1, nd.Name, nd)
				}
			}
			if strings.Join(names, ",") != "node-1,node-2,node-3" {
				t.Errorf("node %d lists %v", i+1, names)
			}
			resp, err := http.Get(g.env["BLOCKGATE_ADMIN_URL"] + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("node %d /readyz: %d", i+1, resp.StatusCode)
			}
		}
	})
}
