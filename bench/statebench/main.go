// Command statebench measures what the gateway costs on the state API's hot
// path: it compares SaveState and GetState through a real blockgate process,
// called over gRPC with the official Go SDK, against the same statements sent
// straight to Postgres with raw pgx. It is what `make bench` runs.
//
//	go run ./bench/statebench -bin bin/blockgate -duration 10s -clients 16 -rounds 3
//
// # Setup
//
// One private Postgres cluster (gateway/gatewaypg) serves the whole run. The
// gateway binary runs as a child process in dev mode with --postgres-url
// pointing at that cluster, so it migrates the schema and creates tenant
// default, app app1 and the state.postgresql component statestore. The
// baseline lives in its own schema of the same database (statebench.state):
// a table with the columns, primary key and index of the gateway's state
// table but without row-level security, reached by a pgxpool with the
// gateway's pool size (32 connections) as the same role the gateway uses.
// The setup, the load loop and the CPU accounting are package benchkit's.
//
// # Workload
//
// -clients workers (16) each loop for -duration: save writes a -value-size
// (1 KiB) JSON value to a uniformly random key of -keys (10,000); get reads
// one. The gateway's keys are app1||k-NNNNNN in the table (Dapr's default
// key prefix), and the baseline writes the same strings. Every key is
// written once through both paths before anything is measured, so that get
// always finds a value, save always updates, and connections, prepared
// statements and the gateway's caches are warm.
//
// With -client sdk (the default) each worker is one Go SDK client
// (github.com/dapr/go-sdk/client) with its own gRPC connection, as 16 app
// instances would be; -shared-conn makes all workers share one SDK client
// and so one HTTP/2 connection, as one app's goroutines would. -client raw
// calls the generated runtimev1.DaprClient directly, which shows what the
// SDK itself costs on the client side.
//
// Each round runs baseline save, gateway save, baseline get, gateway get;
// every second round runs the gateway first, so that slow drift (autovacuum,
// checkpoints, other load on the machine) hits both sides alike. Every
// latency is recorded and percentiles are exact (nearest rank). Reported
// throughput and latencies are medians over -rounds; the ratio is the median
// of the per-round gateway/baseline throughput ratios.
//
// On Linux the run also reads /proc to charge CPU time to the client (this
// process), the gateway, Postgres (the postmaster and its backends) and
// everything else on the machine, per phase. Client, gateway and Postgres
// share the machine's cores, so when throughput is CPU-bound the CPU per
// operation shows where the time goes. When other processes took more than
// a tenth of a phase's CPU, the report says the machine was busy.
//
// Progress goes to stderr, the result table to stdout, and with -json the
// full results to a file.
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

// goalRatio is the throughput the gateway should reach, as a fraction of
// raw pgx's.
const goalRatio = 0.70

// config is the command line.
type config struct {
	bin        string
	duration   time.Duration
	clients    int
	keys       int
	valueSize  int
	rounds     int
	client     string // sdk or raw
	sharedConn bool
	jsonPath   string
}

func main() {
	var cfg config
	flag.StringVar(&cfg.bin, "bin", "bin/blockgate", "gateway binary to run (built by make build)")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long each measured phase runs")
	flag.IntVar(&cfg.clients, "clients", 16, "concurrent clients (goroutines) per phase")
	flag.IntVar(&cfg.keys, "keys", 10000, "size of the keyspace")
	flag.IntVar(&cfg.valueSize, "value-size", 1024, "bytes of the JSON value saved")
	flag.IntVar(&cfg.rounds, "rounds", 3, "rounds of baseline/gateway save and get; the report takes the median")
	flag.StringVar(&cfg.client, "client", "sdk", "gateway client: sdk (github.com/dapr/go-sdk) or raw (generated runtimev1.DaprClient)")
	flag.BoolVar(&cfg.sharedConn, "shared-conn", false, "share one gRPC connection among all clients instead of one each")
	flag.StringVar(&cfg.jsonPath, "json", "", "also write the results as JSON to this file")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: statebench [flags]\n\n"+
			"Compares the gateway's gRPC state API with raw pgx on the same Postgres.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "statebench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "statebench:", err)
		os.Exit(2)
	}

	benchkit.Main("statebench", func(ctx context.Context) error { return run(ctx, cfg) })
}

func (c *config) validate() error {
	switch {
	case c.duration < 100*time.Millisecond:
		return fmt.Errorf("-duration %s is too short to measure anything", c.duration)
	case c.clients < 1:
		return errors.New("-clients must be at least 1")
	case c.keys < 1:
		return errors.New("-keys must be at least 1")
	case c.valueSize < len(`{"v":""}`):
		return fmt.Errorf("-value-size must be at least %d bytes to hold a JSON object", len(`{"v":""}`))
	case c.rounds < 1:
		return errors.New("-rounds must be at least 1")
	case c.client != "sdk" && c.client != "raw":
		return fmt.Errorf("-client %q: use sdk or raw", c.client)
	}
	if _, err := os.Stat(c.bin); err != nil {
		return fmt.Errorf("gateway binary: %w (run make build, or pass -bin)", err)
	}
	return nil
}

// progress prints one line of progress to stderr.
var progress = benchkit.NewProgress("statebench")
