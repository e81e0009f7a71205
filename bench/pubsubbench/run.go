package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/blockgate/blockgate/bench/benchkit"
)

// The tests.
const (
	testPublish = "publish"
	testBulk    = "bulk"
	testDeliver = "deliver"
)

// Side names; the first side of every test is its baseline.
const (
	sideBaseline = "baseline"
	sideGRPC     = "gRPC"
	sideHTTP     = "HTTP"
)

// warmup is how long each publishing side runs, unmeasured, before the
// first round; deliverWarmup is the unmeasured start of each deliver phase.
const (
	warmup        = time.Second
	deliverWarmup = 250 * time.Millisecond
)

// side is one side of a test.
type side struct {
	name   string
	stream string // the stream it fills, purged after each phase
	pub    publisher
	batch  batchPublisher
	sub    subscriber
}

// test is one test and its sides, the baseline first.
type test struct {
	name  string
	sides []side
}

// run sets up Postgres, the gateway and the clients, measures, and
// reports. Everything it started is stopped and removed before it returns.
func run(ctx context.Context, cfg config) error {
	began := time.Now()
	natsPort, err := benchkit.FreePort()
	if err != nil {
		return err
	}
	rig, err := benchkit.StartRig(ctx, benchkit.RigConfig{Name: "pubsubbench", Bin: cfg.bin, NATSPort: natsPort, Progress: progress})
	if err != nil {
		return err
	}
	defer rig.Close()
	gw := rig.Gateway

	payload := benchkit.JSONValue(cfg.payloadSize)
	sdk, err := newSDKTarget(ctx, gw.GRPCAddr(), gw.Token(), cfg.publishers)
	if err != nil {
		return err
	}
	defer sdk.close()
	web := newHTTPTarget(gw.HTTPEndpoint(), gw.Token(), cfg.publishers)
	defer web.close()
	// The gateway creates its tenant's stream on first use; the baseline's
	// stream copies its configuration.
	if err := sdk.publish(ctx, 0, "hello", payload); err != nil {
		return fmt.Errorf("publishing through the gateway: %w", err)
	}
	js, err := newJSTarget(ctx, gw.NATSURL(), cfg.publishers, cfg.sharedNATSConn)
	if err != nil {
		return err
	}
	defer js.close()
	env := environment{Environment: rig.Env, NATSURL: gw.NATSURL(), NATSServer: js.nc.ConnectedServerVersion()}
	progress("Postgres %s, gateway %s, NATS server %s at %s, %d CPUs",
		env.Postgres, env.Gateway, env.NATSServer, env.NATSURL, env.CPUs)
	progress("%d publishers, %d-byte JSON payloads, batches of %d, %g msg/s for latency, %s per phase, %d rounds",
		cfg.publishers, cfg.payloadSize, cfg.batch, cfg.rate, cfg.duration, cfg.rounds)

	all := []test{
		{testPublish, []side{
			{name: sideBaseline, stream: baselineStream, pub: js},
			{name: sideGRPC, stream: gatewayStream, pub: sdk},
			{name: sideHTTP, stream: gatewayStream, pub: web},
		}},
		{testBulk, []side{
			{name: sideBaseline, stream: baselineStream, batch: js},
			{name: sideGRPC, stream: gatewayStream, batch: sdk},
		}},
		{testDeliver, []side{
			{name: sideBaseline, stream: baselineStream, pub: js, sub: js},
			{name: sideGRPC, stream: gatewayStream, pub: sdk, sub: sdk},
		}},
	}
	var tests []test
	for _, t := range all {
		if slices.Contains(cfg.tests, t.name) {
			tests = append(tests, t)
		}
	}
	b := &bench{cfg: cfg, js: js, meter: rig.Meter, payload: payload, tmpl: deliverTemplate(cfg.payloadSize),
		stored: map[string]float64{}}

	for _, t := range tests {
		if t.name == testDeliver {
			continue // warms up at the start of each phase
		}
		for _, s := range t.sides {
			if _, err := b.throughput(ctx, t.name, s, warmup, nil); err != nil {
				return fmt.Errorf("warming up %s through the %s: %w", t.name, s.name, err)
			}
		}
		progress("warmed up every %s side for %s (not measured)", t.name, warmup)
	}

	results := newResults(tests)
	step, steps := 0, 0
	for _, t := range tests {
		steps += cfg.rounds * len(t.sides)
	}
	for r := range cfg.rounds {
		for _, t := range tests {
			order := slices.Clone(t.sides)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, s := range order {
				step++
				var rs roundStats
				if t.name == testDeliver {
					res, err := b.deliver(ctx, s, r)
					if err != nil {
						return fmt.Errorf("round %d, %s through the %s: %w", r+1, t.name, s.name, err)
					}
					rs = roundStats{Stats: benchkit.Summarize(res.Sample), PublishRate: res.PublishRate, Repeats: res.Repeats,
						PublishP50Ms: benchkit.Millis(benchkit.Percentile(res.PublishLat, 50)),
						PublishP99Ms: benchkit.Millis(benchkit.Percentile(res.PublishLat, 99))}
					if res.PublishRate < 0.95*cfg.rate || res.Repeats > 0 {
						progress("note: the publishers reached %s of %s msg/s; %d messages were delivered more than once",
							benchkit.Thousands(res.PublishRate), benchkit.Thousands(cfg.rate), res.Repeats)
					}
				} else {
					smp, err := b.throughput(ctx, t.name, s, cfg.duration, rig.Meter)
					if err != nil {
						return fmt.Errorf("round %d, %s through the %s: %w", r+1, t.name, s.name, err)
					}
					rs = roundStats{Stats: benchkit.Summarize(smp)}
				}
				results.add(t.name, s.name, rs)
				left := time.Duration(steps-step) * cfg.duration
				progress("[%2d/%d] round %d %-7s %-8s %9s msg/s  p50 %s  p99 %s%s  (%s left)",
					step, steps, r+1, t.name, s.name, benchkit.Thousands(rs.OpsPerSec),
					benchkit.Ms(rs.P50Ms), benchkit.Ms(rs.P99Ms), benchkit.CPUNote(rs.CPU), left)
			}
		}
	}

	rep := newReport(cfg, env, results, b.stored)
	rep.print(os.Stdout)
	if cfg.jsonPath != "" {
		if err := benchkit.WriteJSON(cfg.jsonPath, rep); err != nil {
			return err
		}
		progress("wrote %s", cfg.jsonPath)
	}
	progress("done in %s", time.Since(began).Round(time.Second))
	return nil
}

// bench runs phases.
type bench struct {
	cfg     config
	js      *jsTarget
	meter   *benchkit.CPUMeter
	payload []byte
	tmpl    []byte
	stored  map[string]float64 // side → bytes a stored message takes, from the last purge
}

// throughput runs a publish or bulk phase for d, then purges the stream it
// filled.
func (b *bench) throughput(ctx context.Context, name string, s side, d time.Duration, meter *benchkit.CPUMeter) (benchkit.Sample, error) {
	var newOp func(w int) benchkit.Op
	if name == testBulk {
		batch := make([][]byte, b.cfg.batch)
		for i := range batch {
			batch[i] = b.payload
		}
		newOp = func(w int) benchkit.Op {
			return func(ctx context.Context) (int, error) {
				return len(batch), s.batch.publishBatch(ctx, w, name, batch)
			}
		}
	} else {
		newOp = func(w int) benchkit.Op {
			return func(ctx context.Context) (int, error) {
				return 1, s.pub.publish(ctx, w, name, b.payload)
			}
		}
	}
	j := b.js.startJanitor(ctx, s.stream)
	smp, err := benchkit.Closed(ctx, b.cfg.publishers, d, meter, newOp)
	msgs, bytes, purges, jerr := j.finish(ctx)
	if err != nil {
		return smp, err
	}
	if jerr != nil {
		return smp, jerr
	}
	if purges > 0 {
		progress("note: %s filled %s past 3/4 of its MaxBytes; purged it %d times during the phase", s.name, s.stream, purges)
	}
	if msgs > 0 {
		b.stored[s.name] = float64(bytes) / float64(msgs)
	}
	return smp, nil
}

// deliver runs a deliver phase of round r on a topic of its own, with a
// subscription opened for it and a short unmeasured warm-up.
func (b *bench) deliver(ctx context.Context, s side, r int) (deliverResult, error) {
	topic := fmt.Sprintf("deliver-%d", r+1)
	var cur atomic.Pointer[collector]
	stop, err := s.sub.subscribe(ctx, topic, func(p []byte) {
		if c := cur.Load(); c != nil {
			c.got(p)
		}
	})
	if err != nil {
		return deliverResult{}, err
	}
	res, err := b.deliverRuns(ctx, s, topic, &cur)
	if serr := stop(); serr != nil && err == nil {
		err = fmt.Errorf("closing the subscription: %w", serr)
	}
	if err != nil {
		return res, err
	}
	// Only the stream's size matters here, not the messages' (which carry
	// this side's subscription), so the stored size stays the publish's.
	_, _, err = b.js.purge(ctx, s.stream)
	return res, err
}

func (b *bench) deliverRuns(ctx context.Context, s side, topic string, cur *atomic.Pointer[collector]) (deliverResult, error) {
	if _, err := measureDelivery(ctx, s.pub, topic, cur, 0, b.cfg.publishers, b.cfg.rate, deliverWarmup, b.tmpl, nil); err != nil {
		return deliverResult{}, fmt.Errorf("warming up: %w", err)
	}
	return measureDelivery(ctx, s.pub, topic, cur, 1, b.cfg.publishers, b.cfg.rate, b.cfg.duration, b.tmpl, b.meter)
}
