// Command xdsbench measures the xDS control plane (package xds) under a
// fleet of Envoy sidecars: how long a configuration change takes to reach,
// and be acknowledged by, every one of -nodes connected nodes, how long
// they take to connect and get their first configuration, and the control
// plane's memory per connected node. `make bench` runs it after
// clusterbench.
//
//	go run ./bench/xdsbench -nodes 1000 -changes 5 -apps 50
//
// # Setup
//
// The control plane runs in a child process, this same command started
// again with a hidden argument, so that its memory and CPU are its own:
// an xds.Server as the gateway makes it (ADS over TLS on a loopback
// listener with a certificate from the CA, ServerTLSConfig), a real
// authca.CA over an in-memory store (authcatest.NewMemStore), join tokens
// checked by a map (the gateway asks Postgres, once per stream), the
// gateway's view of which apps run sidecars (xds.Presence, as
// gateway/gatewaysidecars keeps it, without its JetStream bucket), and an
// in-memory Source of one tenant: -apps apps of 2 instances each, with
// private IPv4 addresses (so that the sidecars' target clusters are EDS),
// and an access policy of a default configuration that allows every call
// and, for one app in five, a configuration that admits only the three
// apps before it. The child takes commands on its stdin and answers on its
// stdout, one JSON object a line; it exits when its stdin closes.
//
// # Nodes
//
// This process simulates the nodes: -nodes ADS streams (state of the world,
// as Envoy's bootstraps here ask for), spread round robin over the apps,
// each with its own node id <tenant>/<app>/<instance>, APP_PORT metadata
// (so each gets an inbound listener) and its app's join token. Each node
// has its own gRPC connection by default, as an Envoy has, because the
// server's side of a connection (its HTTP/2 buffers, TLS state and
// goroutines) is part of what a node costs; -streams-per-conn puts several
// streams on one connection instead (the server allows 16), which is
// cheaper for the client and, divided among the streams, for the server
// too. Each node asks as Envoy does: clusters and listeners
// (wildcard), then the endpoints of the EDS clusters it was given, the
// route configurations its listeners name (RDS) and the secrets its
// clusters and listeners name (SDS), and it ACKs every response with its
// version and nonce, noting when.
//
// # Phases
//
//   - connect: every node opens its stream at once (a control plane
//     restart: the whole fleet reconnects). A node has its first full
//     configuration when it has ACKed a response of every type it asked
//     for. When the first sidecar of an app connects, the others may call
//     that app directly: the presence refreshes the tenant, 100 ms after
//     the first of such changes (gatewaysidecars' debounce), so some nodes
//     get several versions; the phase ends when no response has come for a
//     second, and "settled" is the last ACK.
//   - fan-out: -changes times, an instance is added to app-000, which every
//     node calls directly, and Server.Refresh is called; the time from the
//     Refresh call (read in the child, on the wall clock both processes
//     share) to each node's ACK of the endpoints with the new instance is
//     the node's latency, and the last of them the time until every node
//     has it. The report gives the median of each percentile over the
//     changes.
//   - memory: the child's live heap (runtime.MemStats.HeapAlloc after a
//     GC, with free memory returned to the OS) and RSS (VmRSS), before any
//     node connects, with every node connected, and after they all left;
//     the difference divided by -nodes is the cost of a connected node.
//
// On Linux the CPU time of the child (the control plane) and of this
// process (the nodes) is measured in each phase. Speed is not asserted:
// the command exits 0 whatever the numbers are. Progress goes to stderr,
// the result tables to stdout, and with -json the full results to a file.
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

// config is the command line.
type config struct {
	nodes          int
	changes        int
	apps           int
	streamsPerConn int
	timeout        time.Duration
	jsonPath       string
}

// serverMaxStreams is the xDS server's limit of concurrent streams on one
// connection (grpc.MaxConcurrentStreams in xds.Server.Run).
const serverMaxStreams = 16

func main() {
	if len(os.Args) == 2 && os.Args[1] == childArg {
		os.Exit(childMain())
	}
	var cfg config
	flag.IntVar(&cfg.nodes, "nodes", 1000, "simulated Envoy nodes, each with its own ADS stream")
	flag.IntVar(&cfg.changes, "changes", 5, "configuration changes to fan out; the report takes the median")
	flag.IntVar(&cfg.apps, "apps", 50, "apps of the tenant, each with 2 instances; the nodes are spread over them")
	flag.IntVar(&cfg.streamsPerConn, "streams-per-conn", 1, fmt.Sprintf("node streams sharing one gRPC connection (1 is Envoy's way; at most %d)", serverMaxStreams))
	flag.DurationVar(&cfg.timeout, "timeout", 3*time.Minute, "how long to wait for the nodes in each phase before giving up")
	flag.StringVar(&cfg.jsonPath, "json", "", "also write the results as JSON to this file")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: xdsbench [flags]\n\n"+
			"Measures the xDS control plane: fan-out of a change to every connected node, and memory per node.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "xdsbench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "xdsbench:", err)
		os.Exit(2)
	}
	benchkit.Main("xdsbench", func(ctx context.Context) error { return run(ctx, cfg) })
}

func (c *config) validate() error {
	switch {
	case c.nodes < 1:
		return errors.New("-nodes must be at least 1")
	case c.changes < 1 || c.changes > maxChanges:
		return fmt.Errorf("-changes must be between 1 and %d", maxChanges)
	case c.apps < 1 || c.apps > maxApps:
		return fmt.Errorf("-apps must be between 1 and %d", maxApps)
	case c.streamsPerConn < 1 || c.streamsPerConn > serverMaxStreams:
		return fmt.Errorf("-streams-per-conn must be between 1 and %d, the server's limit", serverMaxStreams)
	case c.timeout <= 0:
		return errors.New("-timeout must be positive")
	}
	return nil
}

// conns is how many gRPC connections the nodes share.
func (c *config) conns() int { return (c.nodes + c.streamsPerConn - 1) / c.streamsPerConn }

// progress prints one line of progress to stderr.
var progress = benchkit.NewProgress("xdsbench")
