// Command pubsubbench measures what the gateway costs on the pub/sub API:
// it compares publishing and delivering through a real blockgate process,
// with the official Go SDK over gRPC and with plain HTTP, against the same
// work done straight on the JetStream server that the gateway embeds, with
// an in-process nats.go client. `make bench` runs it after statebench.
//
//	go run ./bench/pubsubbench -bin bin/blockgate -duration 5s -publishers 16 -rounds 3
//
// # Setup
//
// One private Postgres cluster (gateway/gatewaypg) and the gateway binary in
// dev mode over it (package benchkit), which creates tenant default, app
// app1 and the pubsub.jetstream component pubsub. The gateway's embedded
// NATS server listens on a loopback port that the benchmark picks
// (--nats-port), and the baseline connects to that same server. Its stream,
// PUBSUBBENCH on the subjects pubsubbench.>, is created with the gateway's
// own stream configuration, read from the server once the gateway has
// created T_default: file storage, limits retention, MaxAge, MaxBytes with
// DiscardNew, the duplicates window, per-message TTLs. Every baseline
// message carries a Nats-Msg-Id shaped like the gateway's
// (<pubsub>.<topic>/<uuid>), so that deduplication costs the server the
// same on both sides.
//
// # Tests
//
// Every test uses -payload-size (1 KiB) JSON payloads, published unkeyed.
//
//   - publish: -publishers (16) closed-loop publishers, each waiting for
//     its publish to be stored before sending the next. Baseline:
//     jetstream.Publish with a Nats-Msg-Id, each publisher with its own NATS
//     connection (-shared-nats-conn: one for all, as the gateway has).
//     Gateway over gRPC: each publisher an official Go SDK client
//     (PublishEvent, content type application/json) with its own gRPC
//     connection, as 16 app instances would be. Gateway over HTTP: each
//     publisher a keep-alive net/http client with its own connection,
//     POST /v1.0/publish/pubsub/<topic> with dapr-api-token.
//   - bulk: the same publishers each send batches of -batch (100) messages.
//     Baseline: PublishMsgAsync of the batch, then wait for every ack.
//     Gateway: the SDK's PublishEvents (BulkPublishEvent); the gateway does
//     the same async publish and waits. Throughput is in messages.
//   - deliver: publish→deliver latency at a fixed -rate (1,000 msg/s),
//     paced by one goroutine and sent by the publishers (synchronously, as
//     in publish), each payload carrying its send time. Baseline: a durable
//     pull consumer (jetstream Consume) configured as the gateway's
//     consumers are (explicit ack, AckWait 30s, MaxDeliver 5, MaxAckPending
//     10,000, pulls of 100), acking each message (Ack; the gateway's own
//     consumers use DoubleAck). Gateway: a streaming
//     subscription of the Go SDK (Subscribe, Receive, Success) on its own
//     connection. The latency is from just before the publish call to the
//     moment the subscriber has the message, on the same clock. The report
//     also gives the publish calls' own latency (until the publish is
//     acknowledged), which shows how much of the total is the publish.
//
// # Order and numbers
//
// Each round runs the publish sides, the bulk sides and the deliver sides;
// every second round runs each test's sides in reverse order. Before the
// first round each side warms up for a second, unmeasured. After every
// phase the stream it filled is purged, so each phase starts from an empty
// stream. The streams have the tenant quota's MaxBytes (1 GiB) with
// DiscardNew, so during a phase long enough to fill 3/4 of that (about 8 s
// of bulk baseline here) the stream is also purged whenever it gets there,
// which the progress output notes. -tests runs only some of the tests,
// for profiling or trying a change.
// Every call's latency is recorded and percentiles are exact (nearest rank);
// reported numbers are medians over -rounds, and ratios are medians of the
// per-round ratios. On Linux the CPU time of the benchmark process (all
// clients), the gateway process (with its embedded NATS server: on the
// baseline side that column is the NATS server alone), Postgres and the rest
// of the machine is charged per message.
//
// # Goals
//
// The verdicts check two goals: gateway sync publish reaches at least 60%
// of raw JetStream sync publish (over gRPC and over HTTP, each), and gateway
// bulk publish over gRPC reaches at least 50,000 messages/s. The delivery
// latencies have no goal; they are reported with their ratio to the
// baseline's. Speed is not asserted: the command exits 0 whatever the
// verdicts are.
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
	"slices"
	"strings"
	"time"

	"github.com/blockgate/blockgate/bench/benchkit"
)

// Goals from the issue.
const (
	goalPublishRatio = 0.60   // gateway sync publish / raw JetStream sync publish
	goalBulkRate     = 50_000 // gateway bulk publish, messages/s
)

// config is the command line.
type config struct {
	bin            string
	duration       time.Duration
	publishers     int
	payloadSize    int
	batch          int
	rate           float64
	rounds         int
	sharedNATSConn bool
	tests          []string // which tests to run, in the order of allTests
	jsonPath       string
}

// allTests are the tests, in the order each round runs them.
var allTests = []string{testPublish, testBulk, testDeliver}

func main() {
	var cfg config
	flag.StringVar(&cfg.bin, "bin", "bin/blockgate", "gateway binary to run (built by make build)")
	flag.DurationVar(&cfg.duration, "duration", 5*time.Second, "how long each measured phase runs")
	flag.IntVar(&cfg.publishers, "publishers", 16, "concurrent publishers (goroutines) per phase")
	flag.IntVar(&cfg.payloadSize, "payload-size", 1024, "bytes of each JSON payload")
	flag.IntVar(&cfg.batch, "batch", 100, "messages per bulk publish")
	flag.Float64Var(&cfg.rate, "rate", 1000, "messages/s published while measuring delivery latency")
	flag.IntVar(&cfg.rounds, "rounds", 3, "rounds of every test; the report takes the median")
	flag.BoolVar(&cfg.sharedNATSConn, "shared-nats-conn", false, "baseline publishers share one NATS connection instead of one each")
	tests := flag.String("tests", strings.Join(allTests, ","), "comma-separated tests to run: publish, bulk, deliver")
	flag.StringVar(&cfg.jsonPath, "json", "", "also write the results as JSON to this file")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: pubsubbench [flags]\n\n"+
			"Compares the gateway's pub/sub API (gRPC and HTTP) with raw JetStream on the same server.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "pubsubbench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	if err := cfg.parseTests(*tests); err != nil {
		fmt.Fprintln(os.Stderr, "pubsubbench:", err)
		os.Exit(2)
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "pubsubbench:", err)
		os.Exit(2)
	}

	benchkit.Main("pubsubbench", func(ctx context.Context) error { return run(ctx, cfg) })
}

func (c *config) validate() error {
	switch {
	case c.duration < 100*time.Millisecond:
		return fmt.Errorf("-duration %s is too short to measure anything", c.duration)
	case c.publishers < 1:
		return errors.New("-publishers must be at least 1")
	case c.payloadSize < minPayloadSize:
		return fmt.Errorf("-payload-size must be at least %d bytes to hold the timestamped JSON object", minPayloadSize)
	case c.batch < 1 || c.batch > maxBatch:
		return fmt.Errorf("-batch must be between 1 and %d", maxBatch)
	case c.rate <= 0 || c.rate*c.duration.Seconds() < 1:
		return errors.New("-rate must publish at least one message in -duration")
	case c.rate*c.duration.Seconds() > maxDeliverMessages:
		return fmt.Errorf("-rate × -duration must stay under %d messages", maxDeliverMessages)
	case c.rounds < 1:
		return errors.New("-rounds must be at least 1")
	}
	if _, err := os.Stat(c.bin); err != nil {
		return fmt.Errorf("gateway binary: %w (run make build, or pass -bin)", err)
	}
	return nil
}

// parseTests sets c.tests from the -tests flag.
func (c *config) parseTests(list string) error {
	want := map[string]bool{}
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if !slices.Contains(allTests, t) {
			return fmt.Errorf("-tests: unknown test %q (have %s)", t, strings.Join(allTests, ", "))
		}
		want[t] = true
	}
	c.tests = nil
	for _, t := range allTests {
		if want[t] {
			c.tests = append(c.tests, t)
		}
	}
	return nil
}

// progress prints one line of progress to stderr.
var progress = benchkit.NewProgress("pubsubbench")
