package benchkit

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/blockgate/blockgate/admin/adminclient"
)

// clusterFormTimeout bounds the wait, once every node answers, until each
// is ready and lists all the others.
const clusterFormTimeout = 60 * time.Second

// ClusterConfig says how to run several gateway processes as one cluster.
type ClusterConfig struct {
	// Bin is the blockgate binary; required.
	Bin string
	// Dir holds node N's --data-dir (Dir/node-N), its log (Dir/node-N.log)
	// and the secrets the nodes share; required.
	Dir string
	// PostgresURL is every node's --postgres-url: a database no other
	// gateway uses; required.
	PostgresURL string
	// Nodes is the cluster's size; required, at least 2.
	Nodes int
	// Name is the --cluster-name; default "bench".
	Name string
	// Progress prints progress lines; nil prints nothing.
	Progress func(format string, args ...any)
}

// Cluster is a cluster of gateway processes started by a benchmark.
type Cluster struct {
	// Nodes are the gateways, node-1 first.
	Nodes []*Gateway
}

// StartCluster runs cfg.Nodes gateways in dev mode on loopback as one
// cluster, as an operator would deploy them: every node gets the same
// --cluster-name, --cluster-peers (every node's route address), cluster
// secret, admin token, CA master key and Postgres database, and its own
// --node-name (node-N), route port and NATS client port (NATSURL names
// it). Node 1 starts first, so that it alone migrates the schema and
// creates the dev tenant; the others then start together. StartCluster
// returns once every node says it is ready (/readyz: Postgres answers and
// JetStream is current) and lists all cfg.Nodes nodes. Stop stops them; on
// error StartCluster has done so already.
func StartCluster(ctx context.Context, cfg ClusterConfig) (_ *Cluster, err error) {
	switch {
	case cfg.Bin == "" || cfg.Dir == "" || cfg.PostgresURL == "":
		return nil, errors.New("benchkit: ClusterConfig needs Bin, Dir and PostgresURL")
	case cfg.Nodes < 2:
		return nil, fmt.Errorf("benchkit: a cluster of %d nodes; use StartGateway for one", cfg.Nodes)
	}
	if cfg.Name == "" {
		cfg.Name = "bench"
	}
	progress := cfg.Progress
	if progress == nil {
		progress = func(string, ...any) {}
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	masterKey := filepath.Join(cfg.Dir, "ca-master.key")
	if err := os.WriteFile(masterKey, []byte(rand.Text()+rand.Text()), 0o600); err != nil {
		return nil, err
	}
	adminToken, secret := "bgadm_"+rand.Text(), rand.Text()

	// Route and client ports: two per node, all distinct.
	ports, err := LowFreePorts(2 * cfg.Nodes)
	if err != nil {
		return nil, err
	}
	peers := make([]string, cfg.Nodes)
	for i := range peers {
		peers[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i]))
	}
	c := &Cluster{Nodes: make([]*Gateway, cfg.Nodes)}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	start := func(i int) error {
		dataDir := filepath.Join(cfg.Dir, fmt.Sprintf("node-%d", i+1))
		g, err := startNode(ctx, GatewayConfig{Bin: cfg.Bin, DataDir: dataDir, PostgresURL: cfg.PostgresURL,
			NATSPort: ports[cfg.Nodes+i]}, dataDir+".log",
			"--admin-token", adminToken, "--ca-master-key-file", masterKey,
			"--cluster-name", cfg.Name, "--cluster-peers", strings.Join(peers, ","), "--cluster-secret", secret,
			"--node-name", fmt.Sprintf("node-%d", i+1), "--cluster-port", strconv.Itoa(ports[i]))
		if err != nil {
			return fmt.Errorf("node %d: %w", i+1, err)
		}
		c.Nodes[i] = g
		progress("node %d answers: gRPC %s, NATS %s, pid %d", i+1, g.GRPCAddr(), g.NATSURL(), g.PID())
		return nil
	}
	progress("starting node 1 of %d (%s serve --dev --cluster-name %s ...)", cfg.Nodes, cfg.Bin, cfg.Name)
	if err := start(0); err != nil {
		return nil, err
	}
	progress("starting nodes 2 to %d", cfg.Nodes)
	errs := make(chan error, cfg.Nodes)
	for i := 1; i < cfg.Nodes; i++ {
		go func() { errs <- start(i) }()
	}
	var startErrs []error
	for i := 1; i < cfg.Nodes; i++ {
		startErrs = append(startErrs, <-errs)
	}
	if err := errors.Join(startErrs...); err != nil {
		return nil, err
	}
	if err := c.waitFormed(ctx); err != nil {
		return nil, err
	}
	progress("the cluster has formed: every node is ready and lists %d nodes", cfg.Nodes)
	return c, nil
}

// startNode is StartGateway with more serve flags and the log at logPath,
// so that several nodes can share a parent directory. It is a copy of
// StartGateway's start rather than a change to it, which would change
// where the other benchmarks' gateways log.
func startNode(ctx context.Context, cfg GatewayConfig, logPath string, extra ...string) (*Gateway, error) {
	bin, err := filepath.Abs(cfg.Bin)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	g := &Gateway{natsPort: cfg.NATSPort, logPath: logPath, exited: make(chan struct{})}
	if g.logFile, err = os.Create(g.logPath); err != nil {
		return nil, err
	}
	args := append([]string{"serve", "--dev",
		"--postgres-url", cfg.PostgresURL, "--data-dir", cfg.DataDir, "--host", "127.0.0.1",
		"--http-port", "0", "--grpc-port", "0", "--admin-port", "0", "--metrics-port", "0", "--xds-port", "0",
		"--nats-port", strconv.Itoa(cfg.NATSPort)}, extra...)
	// Not exec.CommandContext, as in StartGateway: Stop sends SIGTERM.
	g.cmd = exec.Command(bin, args...)
	g.cmd.Stdout, g.cmd.Stderr = g.logFile, g.logFile
	g.cmd.Env = cleanEnv()
	g.cmd.SysProcAttr = childProcAttr()
	if err := g.cmd.Start(); err != nil {
		g.logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		g.waitErr = g.cmd.Wait()
		close(g.exited)
	}()
	if err := g.waitReady(ctx, filepath.Join(cfg.DataDir, "dev.env")); err != nil {
		g.kill()
		g.logFile.Close()
		return nil, fmt.Errorf("%w\n\nlast lines of %s:\n%s", err, g.logPath, g.LogTail())
	}
	return g, nil
}

// waitFormed waits until every node is ready and lists every node.
func (c *Cluster) waitFormed(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, clusterFormTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := c.formed(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("the cluster did not form within %s: %w", clusterFormTimeout, err)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (c *Cluster) formed(ctx context.Context) error {
	for i, g := range c.Nodes {
		admin := adminclient.New(g.AdminURL(), g.AdminToken())
		if err := admin.Ready(ctx); err != nil {
			return fmt.Errorf("node %d is not ready: %w", i+1, err)
		}
		nodes, err := admin.ClusterNodes(ctx)
		if err != nil {
			return fmt.Errorf("node %d: %w", i+1, err)
		}
		if len(nodes) != len(c.Nodes) {
			return fmt.Errorf("node %d lists %d nodes", i+1, len(nodes))
		}
	}
	return nil
}

// PIDs are the nodes' process ids, node-1 first.
func (c *Cluster) PIDs() []int {
	pids := make([]int, len(c.Nodes))
	for i, g := range c.Nodes {
		pids[i] = g.PID()
	}
	return pids
}

// NATSURLs are the client URLs of the nodes' embedded NATS servers,
// node-1 first.
func (c *Cluster) NATSURLs() []string {
	urls := make([]string, len(c.Nodes))
	for i, g := range c.Nodes {
		urls[i] = g.NATSURL()
	}
	return urls
}

// Stop stops every node that was started, all at once (SIGTERM, as
// Gateway.Stop), and reports the problems. Call it once.
func (c *Cluster) Stop() error {
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i, g := range c.Nodes {
		if g == nil {
			continue
		}
		wg.Go(func() {
			if err := g.Stop(); err != nil {
				errs[i] = fmt.Errorf("node %d: %w\nlast lines of its log:\n%s", i+1, err, g.LogTail())
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// LowFreePorts returns n distinct TCP ports that were free on loopback a
// moment ago, between 20000 and 32767: below Linux's ephemeral range, where
// the kernel picks the ports of outgoing connections and of servers bound
// to port 0, so that the nodes started one after another are less likely
// to find their port taken meanwhile (nats-server's own cluster tests
// choose ports the same way).
func LowFreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			return nil, errors.New("no free ports between 20000 and 32767")
		}
		p := 20000 + mrand.IntN(32768-20000)
		if slices.Contains(ports, p) {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		ports = append(ports, p)
	}
	return ports, nil
}
