// Command invokebench measures the latency the gateway adds to service
// invocation: the same call made straight to a target app and through a
// real blockgate process, over HTTP and over gRPC, at a fixed request rate.
// `make bench` runs it after pubsubbench.
//
//	go run ./bench/invokebench -bin bin/blockgate -rate 1000 -duration 30s
//
// # Setup
//
// One private Postgres cluster (gateway/gatewaypg) and the gateway binary in
// dev mode over it (package benchkit), which creates tenant default and app
// app1, whose token the benchmark calls with. The target app runs in this
// process: an HTTP server (net/http on 127.0.0.1:0) answering every request
// with a small fixed body, and a gRPC server on 127.0.0.1:0 with the
// standard health service (grpc.health.v1). Through the admin API the
// benchmark registers app target with the HTTP server's endpoint and app
// gtarget with grpc://127.0.0.1:<port>.
//
// # Phases
//
//   - http: GET /ping on the app (direct) against
//     GET /v1.0/invoke/target/method/ping on the gateway with dapr-api-token
//     (gateway). One keep-alive net/http client for each side.
//   - grpc: grpc.health.v1.Health/Check on the app (direct) against the same
//     call on the gateway's gRPC port with dapr-app-id: gtarget and
//     dapr-api-token metadata, which the gateway proxies (gateway). One
//     gRPC connection for each side.
//
// Every phase runs open-loop (benchkit.Open) at -rate requests/s for
// -duration: each request has a time slot, -workers goroutines make the
// calls, and a call's latency runs from its slot, so a stall counts against
// every request queued behind it (no coordinated omission). Each side warms
// up for a second first, unmeasured. Each round runs the http sides and then
// the grpc sides; within a protocol, direct and gateway take turns of -slice
// (1 s) until each has run for -duration, so that the machine's own stalls
// fall on both sides alike, and the side that goes first alternates between
// rounds. Reported numbers are medians over -rounds. On Linux the CPU time
// of this process (clients and target app), the gateway and the rest of the
// machine is charged per request.
//
// # Goals
//
// The added latency is gateway minus direct, at p50, p90 and p99. The
// verdicts check that the gateway adds at most 0.3 ms at p50 and at most
// 1 ms at p99, over HTTP and over gRPC each. For context, Dapr publishes
// +1.06 ms p50 and +2.90 ms p99 for its sidecars (two hops) at 1,000 rps.
// Speed is not asserted: the command exits 0 whatever the verdicts are.
//
// With -keep-awake, a child process keeps every CPU busy at Linux's idle
// priority (benchkit.KeepAwake) for the whole run, so that no virtual CPU
// halts and the stalls of waking one stay out of the percentiles; its CPU
// time is left out of the tables.
//
// Progress goes to stderr, the result tables to stdout, and with -json the
// full results to a file. With -profile DIR the gateway runs with --pprof
// and DIR gets CPU and allocation profiles of the gateway over each
// protocol's phases in the first round (http-gateway.pprof,
// http-gateway.allocs.pprof, and the same for grpc), for `go tool pprof`.
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

// Goals from the issue, in milliseconds of added latency.
const (
	goalAddedP50 = 0.3
	goalAddedP99 = 1.0
)

// Dapr's published added latency at 1,000 rps, for context.
const (
	daprAddedP50 = 1.06
	daprAddedP99 = 2.90
)

// config is the command line.
type config struct {
	bin      string
	rate     float64
	duration time.Duration
	workers  int
	rounds   int
	slice    time.Duration
	jsonPath string
	// profileDir, when set, gets CPU and allocation profiles of the
	// gateway over each protocol's phases in the first round.
	profileDir string
	bareProxy  string
	keepAwake  bool
}

func main() {
	var cfg config
	flag.StringVar(&cfg.bin, "bin", "bin/blockgate", "gateway binary to run (built by make build)")
	flag.Float64Var(&cfg.rate, "rate", 1000, "requests/s, fixed, in every phase")
	flag.DurationVar(&cfg.duration, "duration", 30*time.Second, "how long each measured phase runs")
	flag.IntVar(&cfg.workers, "workers", 64, "goroutines making the scheduled calls")
	flag.IntVar(&cfg.rounds, "rounds", 1, "rounds of every phase; the report takes the median")
	flag.DurationVar(&cfg.slice, "slice", time.Second, "direct and gateway take turns of this length within a phase")
	flag.StringVar(&cfg.jsonPath, "json", "", "also write the results as JSON to this file")
	flag.BoolVar(&cfg.keepAwake, "keep-awake", false, "keep the CPUs from halting while measuring, with idle-priority busy threads (see BENCHMARKS.md)")
	flag.StringVar(&cfg.bareProxy, "bare-proxy", "", "internal: serve the bare proxy baseline in front of HTTP_ADDR,GRPC_ADDR (the benchmark starts it)")
	flag.StringVar(&cfg.profileDir, "profile", "", "write CPU and allocation profiles of the gateway over the first round to this directory (runs it with --pprof)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: invokebench [flags]\n\n"+
			"Measures the latency the gateway adds to service invocation (HTTP and gRPC) at a fixed rate.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "invokebench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	if cfg.bareProxy != "" {
		if err := serveBareProxy(cfg.bareProxy); err != nil {
			fmt.Fprintln(os.Stderr, "invokebench bare proxy:", err)
			os.Exit(1)
		}
		return
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "invokebench:", err)
		os.Exit(2)
	}
	benchkit.Main("invokebench", func(ctx context.Context) error { return run(ctx, cfg) })
}

// maxRequests bounds rate × duration: every latency is kept.
const maxRequests = 10_000_000

func (c *config) validate() error {
	switch {
	case c.rate <= 0 || c.rate*c.duration.Seconds() < 1:
		return errors.New("-rate × -duration must make at least one request")
	case c.rate*c.duration.Seconds() > maxRequests:
		return fmt.Errorf("-rate × -duration must stay under %d requests", maxRequests)
	case c.workers < 1:
		return errors.New("-workers must be at least 1")
	case c.rounds < 1:
		return errors.New("-rounds must be at least 1")
	case c.slice <= 0 || c.duration%c.slice != 0:
		return errors.New("-duration must be a whole number of -slice")
	case c.rate*c.slice.Seconds() < 1:
		return errors.New("-slice must be long enough for one request at -rate")
	}
	if _, err := os.Stat(c.bin); err != nil {
		return fmt.Errorf("gateway binary: %w (run make build, or pass -bin)", err)
	}
	return nil
}

// progress prints one line of progress to stderr.
var progress = benchkit.NewProgress("invokebench")
