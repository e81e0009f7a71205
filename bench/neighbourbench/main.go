// Command neighbourbench measures what a noisy neighbour does to a quiet
// tenant's latency: the same GET of one state key by tenant quiet at a
// fixed rate, alone and while tenant noisy sends ten times its rate limit
// to the same gateway, over HTTP and over gRPC. `make bench` runs it after
// invokebench.
//
//	go run ./bench/neighbourbench -bin bin/blockgate -duration 20s -rounds 3
//
// # Setup
//
// One private Postgres cluster (gateway/gatewaypg) and the gateway binary
// in dev mode over it (package benchkit). Through the admin API the
// benchmark creates tenants quiet and noisy, each with one app, an app
// token and a state.postgresql component statestore, and gives both the
// same limits: -limit-rps requests/s with a burst of -limit-burst. Each
// tenant then saves one small JSON value under key k, and the benchmark
// reads it back once to know the exact answer to expect.
//
// # Phases
//
//   - alone: the quiet tenant alone, open loop (benchkit.Open) at -rate
//     requests/s for -duration: GET /v1.0/state/statestore/k with its
//     dapr-api-token over HTTP (one keep-alive net/http client), or
//     GetState over gRPC (the generated runtimev1.DaprClient on one
//     connection, the token as dapr-api-token metadata).
//   - with neighbour: the same quiet load, while the noisy tenant runs its
//     own open loop at -noisy-rate on its own client of the same protocol,
//     started a second earlier so that its burst is spent and its bucket is
//     in steady state when the quiet load starts. It runs until the quiet
//     load ends.
//
// For the quiet tenant anything but a 2xx (gRPC: OK) carrying the saved
// value counts as an error; errors do not stop a phase. The noisy tenant's
// answers are counted as accepted (2xx, OK), refused (429, gRPC
// ResourceExhausted) and other, over the quiet load's window only. A call's
// latency runs from its scheduled time, so a stall counts against every
// request queued behind it.
//
// Every side warms up for a second first, unmeasured; the noisy warm-up
// must see a refusal, or the limits are not in force and the run stops.
// Each round runs, for HTTP and then gRPC, alone and with neighbour, in
// reverse order every second round; reported numbers are medians over
// -rounds, and errors are summed. On Linux the CPU time of this process
// (both tenants' clients), the gateway, Postgres and the rest of the
// machine is charged per request, and the difference between the two
// phases per noisy request is what the neighbour costs.
//
// # Goals
//
// The quiet tenant gets no errors with the neighbour, and the noisy
// tenant's accepted rate is within 10% of its limit. Latency has no goal:
// the report gives the difference and ratio at each percentile. The
// command exits 0 whatever the numbers are.
//
// Progress goes to stderr, the result tables to stdout, and with -json the
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

// config is the command line.
type config struct {
	bin        string
	rate       float64
	noisyRate  float64
	limitRPS   float64
	limitBurst int
	duration   time.Duration
	workers    int
	rounds     int
	jsonPath   string
}

func main() {
	var cfg config
	flag.StringVar(&cfg.bin, "bin", "bin/blockgate", "gateway binary to run (built by make build)")
	flag.Float64Var(&cfg.rate, "rate", 200, "the quiet tenant's requests/s, fixed; must stay under -limit-rps")
	flag.Float64Var(&cfg.noisyRate, "noisy-rate", 3000, "the noisy tenant's requests/s, fixed")
	flag.Float64Var(&cfg.limitRPS, "limit-rps", 300, "both tenants' rate limit, requests/s")
	flag.IntVar(&cfg.limitBurst, "limit-burst", 300, "both tenants' burst, requests")
	flag.DurationVar(&cfg.duration, "duration", 20*time.Second, "how long each measured phase runs")
	flag.IntVar(&cfg.workers, "workers", 64, "goroutines making each tenant's scheduled calls")
	flag.IntVar(&cfg.rounds, "rounds", 1, "rounds of every phase; the report takes the median (3 resists other load better)")
	flag.StringVar(&cfg.jsonPath, "json", "", "also write the results as JSON to this file")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: neighbourbench [flags]\n\n"+
			"Measures a tenant's state GET latency alone and beside a tenant that sends ten times its rate limit.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "neighbourbench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "neighbourbench:", err)
		os.Exit(2)
	}
	benchkit.Main("neighbourbench", func(ctx context.Context) error { return run(ctx, cfg) })
}

// maxRequests bounds rate × duration for each tenant: every latency is kept.
const maxRequests = 10_000_000

func (c *config) validate() error {
	switch {
	case c.rate <= 0 || c.rate*c.duration.Seconds() < 1:
		return errors.New("-rate × -duration must make at least one request")
	case c.noisyRate <= 0:
		return errors.New("-noisy-rate must be positive")
	case c.noisyRate*(c.duration+noisyLead).Seconds() > maxRequests:
		return fmt.Errorf("-noisy-rate × -duration must stay under %d requests", maxRequests)
	case c.limitRPS <= 0 || c.limitBurst < 1:
		return errors.New("-limit-rps and -limit-burst must be positive")
	case c.rate >= c.limitRPS:
		// The quiet tenant would be refused by its own limit, which is not
		// what the benchmark measures.
		return errors.New("-rate must stay under -limit-rps")
	case c.workers < 1:
		return errors.New("-workers must be at least 1")
	case c.rounds < 1:
		return errors.New("-rounds must be at least 1")
	}
	if _, err := os.Stat(c.bin); err != nil {
		return fmt.Errorf("gateway binary: %w (run make build, or pass -bin)", err)
	}
	return nil
}

// progress prints one line of progress to stderr.
var progress = benchkit.NewProgress("neighbourbench")
