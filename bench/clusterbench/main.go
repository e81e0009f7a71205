// Command clusterbench measures what running the gateway as a cluster
// does to the throughput of state writes and publishes: in one run, one
// gateway node against three clustered nodes, both over one Postgres, and
// what replicating a JetStream stream to three servers (R3) costs against
// one (R1). `make bench` runs it after the other benchmarks.
//
//	go run ./bench/clusterbench -bin bin/blockgate -duration 15s -workers 18 -rounds 3
//
// # Setup
//
// One private Postgres cluster (gateway/gatewaypg) serves two deployments,
// each in a database of its own, and both run for the whole benchmark:
//
//   - one node: the gateway binary in dev mode, alone (package benchkit's
//     rig). Its tenant stream has one replica, as every stream of a lone
//     node does.
//   - three nodes: three gateway processes started by
//     benchkit.StartCluster with --cluster-name, --cluster-peers (the three
//     route addresses), --cluster-secret and --node-name node-N, sharing the
//     admin token, the CA master key and their database. Their embedded
//     NATS servers form one NATS cluster, and the gateway creates the
//     tenant's stream with min(3, cluster size) = 3 replicas. The benchmark
//     waits until every node is ready and lists all three, and checks the
//     stream's replicas and placement with nats.go before measuring.
//
// # Tests
//
// Every test runs -workers (18) closed-loop workers for -duration per
// phase; worker w talks to node w mod 3 of the cluster over a connection
// of its own, as app instances behind a round-robin load balancer would
// (on one node, every worker talks to it). The default gives every node
// the same number of workers. The clients are the generated
// runtimev1.DaprClient over gRPC with the app token as metadata.
//
//   - save: SaveState of a -size (1 KiB) JSON value to a uniformly random
//     key of -keys (10,000), the same key sequence on both sides. Every key
//     is written once through each deployment before anything is measured,
//     so saves update and the caches are warm.
//   - publish: PublishEvent of the same value (content type
//     application/json) to topic publish, each call returning once the
//     message is stored in the tenant's stream: R1 on one node, R3 on three.
//   - jetstream: the replication cost without the gateway. nats.go
//     publishes straight to two streams on the three-node cluster's NATS
//     servers, created with the gateway stream's configuration but one
//     replica (R1) and three (R3), each publisher on its own connection to
//     node w mod 3, each message with a Nats-Msg-Id shaped like the
//     gateway's. The gateway itself gives a tenant's stream min(3, cluster
//     size) replicas and no way to choose, so the gateway's own R3 vs R1
//     comparison (publish above) also changes the number of nodes.
//
// Each round runs the two sides of each test, one after the other; every
// second round runs them in reverse order, so that slow drift and other
// load hit both alike. Before the first round each publishing side warms up
// for a second, unmeasured, and every publish phase ends by purging the
// stream it filled. Reported numbers are medians over -rounds; the ratios
// (3 nodes / 1 node, R3 / R1) are medians of the per-round ratios.
//
// # CPU
//
// On Linux the CPU time of each phase is read from /proc by process: this
// process (the clients), each gateway node of the deployment measured (with
// its embedded NATS server: in the jetstream test that is the NATS servers'
// work), Postgres, and the rest of the machine, which includes the other
// deployment's idle nodes. The samples are taken just before and after
// benchkit.Closed, so they also count its starting the workers and sorting
// the latencies, a few milliseconds of client time per phase. From the
// gateways' CPU per operation the report estimates what three nodes would
// reach if each had cores of its own: one node's gateway CPU per operation
// divided by the busiest of the three nodes' share of it.
//
// # What the numbers mean here
//
// On a machine whose few cores run the clients, every node and Postgres
// alike, three nodes cannot serve more than one: they share the same cores.
// The measured ratios then show what clustering costs (routes, replication,
// more processes), not the scale-out of three machines, and the report says
// so. The CPU per operation is what carries over to a real deployment.
//
// Progress goes to stderr, the result tables to stdout, and with -json the
// full results to a file. Speed is not asserted: the command exits 0
// whatever the numbers are.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/blockgate/blockgate/bench/benchkit"
)

// clusterSize is the number of nodes of the clustered deployment.
const clusterSize = 3

// config is the command line.
type config struct {
	bin      string
	duration time.Duration
	workers  int
	rounds   int
	keys     int
	size     int
	jsonPath string
}

func main() {
	var cfg config
	flag.StringVar(&cfg.bin, "bin", "bin/blockgate", "gateway binary to run (built by make build)")
	flag.DurationVar(&cfg.duration, "duration", 15*time.Second, "how long each measured phase runs")
	flag.IntVar(&cfg.workers, "workers", 18, "closed-loop workers per phase, spread round-robin over the nodes")
	flag.IntVar(&cfg.rounds, "rounds", 3, "rounds of every test; the report takes the median")
	flag.IntVar(&cfg.keys, "keys", 10000, "size of the state keyspace")
	flag.IntVar(&cfg.size, "size", 1024, "bytes of each JSON value saved or published")
	flag.StringVar(&cfg.jsonPath, "json", "", "also write the results as JSON to this file")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: clusterbench [flags]\n\n"+
			"Compares one gateway node with a %d-node cluster on state writes and publishes,\n"+
			"and JetStream R3 with R1, over one Postgres.\n\n", clusterSize)
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "clusterbench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "clusterbench:", err)
		os.Exit(2)
	}

	benchkit.Main("clusterbench", func(ctx context.Context) error { return run(ctx, cfg) })
}

func (c *config) validate() error {
	switch {
	case c.duration < 100*time.Millisecond:
		return fmt.Errorf("-duration %s is too short to measure anything", c.duration)
	case c.workers < clusterSize:
		return fmt.Errorf("-workers must be at least %d, so that every node has clients", clusterSize)
	case c.rounds < 1:
		return errors.New("-rounds must be at least 1")
	case c.keys < 1:
		return errors.New("-keys must be at least 1")
	case c.size < len(`{"v":""}`):
		return fmt.Errorf("-size must be at least %d bytes to hold a JSON object", len(`{"v":""}`))
	}
	if _, err := os.Stat(c.bin); err != nil {
		return fmt.Errorf("gateway binary: %w (run make build, or pass -bin)", err)
	}
	return nil
}

// progress prints one line of progress to stderr.
var progress = benchkit.NewProgress("clusterbench")
