package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/blockgate/blockgate/bench/benchkit"
	"github.com/blockgate/blockgate/gateway/gatewaypg"
)

// The tests, and the names of their sides: the first side of each is the
// one the second is compared with.
const (
	testSave      = "save"
	testPublish   = "publish"
	testJetStream = "jetstream"

	sideOne   = "1 node"
	sideThree = "3 nodes"
	sideR1    = "R1"
	sideR3    = "R3"
)

// The raw streams on the three-node cluster.
const (
	rawStreamR1 = "CLUSTERBENCH_R1"
	rawStreamR3 = "CLUSTERBENCH_R3"
)

// warmup is how long each publishing side runs, unmeasured, before the
// first round.
const warmup = time.Second

// deployment is one of the two gateway deployments.
type deployment struct {
	name   string
	nodes  []endpoint
	meter  *nodesMeter
	api    *apiClients
	js     *jsAdmin
	stream streamCheck // the tenant's stream, as checked before measuring
}

// side is one side of a test.
type side struct {
	name   string
	meter  *nodesMeter
	js     *jsAdmin // where stream lives
	stream string   // the stream the side fills, purged after each phase; "" for none
	check  streamCheck
	// op is one call of worker w; rng is the worker's own, seeded alike on
	// both sides of a test.
	op func(ctx context.Context, w int, rng *rand.Rand) error
}

// test is one test and its two sides.
type test struct {
	name  string
	sides [2]side
}

// run sets up Postgres and both deployments, measures, and reports.
// Everything it started is stopped and removed before it returns.
func run(ctx context.Context, cfg config) error {
	began := time.Now()
	loadStart := loadAverage()
	natsPort, err := benchkit.FreePort()
	if err != nil {
		return err
	}
	rig, err := benchkit.StartRig(ctx, benchkit.RigConfig{Name: "clusterbench", Bin: cfg.bin, NATSPort: natsPort, Progress: progress})
	if err != nil {
		return err
	}
	defer rig.Close()

	pgURL, err := createDatabase(ctx, rig.Postgres, "clusterbench_cluster")
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "clusterbench-nodes-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	progress("starting a %d-node cluster over database clusterbench_cluster of the same Postgres, in %s", clusterSize, dir)
	cluster, err := benchkit.StartCluster(ctx, benchkit.ClusterConfig{
		Bin: cfg.bin, Dir: dir, PostgresURL: pgURL, Nodes: clusterSize, Name: "clusterbench", Progress: progress,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := cluster.Stop(); err != nil {
			progress("warning: stopping the cluster: %v", err)
		} else {
			progress("stopped the cluster")
		}
	}()

	value := benchkit.JSONValue(cfg.size)
	one := &deployment{name: sideOne, nodes: []endpoint{{rig.Gateway.GRPCAddr(), rig.Gateway.Token()}},
		meter: newNodesMeter([]int{rig.Gateway.PID()}, rig.Meter.PostmasterPID)}
	three := &deployment{name: sideThree, meter: newNodesMeter(cluster.PIDs(), rig.Meter.PostmasterPID)}
	for _, g := range cluster.Nodes {
		three.nodes = append(three.nodes, endpoint{g.GRPCAddr(), g.Token()})
	}
	urls := map[*deployment][]string{one: {rig.Gateway.NATSURL()}, three: cluster.NATSURLs()}
	for _, d := range []*deployment{one, three} {
		if d.api, err = newAPIClients(d.nodes, cfg.workers, cfg.keys, value); err != nil {
			return err
		}
		defer d.api.close()
		if d.js, err = newJSAdmin(urls[d]); err != nil {
			return err
		}
		defer d.js.close()
	}

	for _, d := range []*deployment{one, three} {
		t0 := time.Now()
		progress("%s: preloading %d keys (not measured)", d.name, cfg.keys)
		if err := preload(ctx, d.api, cfg.workers, cfg.keys); err != nil {
			return fmt.Errorf("preloading through %s: %w", d.name, err)
		}
		progress("%s: preloaded in %s", d.name, time.Since(t0).Round(time.Millisecond))
		// The gateway creates the tenant's stream on its first publish.
		if err := d.api.publish(ctx, 0); err != nil {
			return fmt.Errorf("publishing through %s: %w", d.name, err)
		}
		info, err := d.js.streamInfo(ctx, gatewayStream)
		if err != nil {
			return err
		}
		d.stream = newStreamCheck(info)
		progress("%s: stream %s is R%d on %s", d.name, gatewayStream, d.stream.Replicas, d.stream.Placement)
	}
	if one.stream.Replicas != 1 || three.stream.Replicas != clusterSize || three.stream.Current != clusterSize {
		return fmt.Errorf("expected %s with 1 replica on one node and %d current replicas on %d nodes; got %+v and %+v",
			gatewayStream, clusterSize, clusterSize, one.stream, three.stream)
	}

	raw := map[string]*rawPublishers{}
	rawCheck := map[string]streamCheck{}
	for _, s := range []struct {
		name, stream, subject string
		replicas              int
	}{{sideR1, rawStreamR1, "clusterbench.r1", 1}, {sideR3, rawStreamR3, "clusterbench.r3", clusterSize}} {
		info, err := three.js.createRawStream(ctx, s.stream, s.subject+".>", s.replicas)
		if err != nil {
			return err
		}
		rawCheck[s.name] = newStreamCheck(info)
		progress("%s: raw stream %s is R%d on %s", sideThree, s.stream, s.replicas, rawCheck[s.name].Placement)
		p, err := newRawPublishers(cluster.NATSURLs(), cfg.workers, s.subject+"."+pubsubName+"."+publishTopic+"._", value)
		if err != nil {
			return err
		}
		defer p.close()
		raw[s.name] = p
	}

	save := func(d *deployment) func(context.Context, int, *rand.Rand) error {
		return func(ctx context.Context, w int, rng *rand.Rand) error { return d.api.save(ctx, w, rng.IntN(cfg.keys)) }
	}
	publish := func(d *deployment) func(context.Context, int, *rand.Rand) error {
		return func(ctx context.Context, w int, _ *rand.Rand) error { return d.api.publish(ctx, w) }
	}
	rawPublish := func(p *rawPublishers) func(context.Context, int, *rand.Rand) error {
		return func(ctx context.Context, w int, _ *rand.Rand) error { return p.publish(ctx, w) }
	}
	tests := []test{
		{testSave, [2]side{
			{name: sideOne, meter: one.meter, op: save(one)},
			{name: sideThree, meter: three.meter, op: save(three)},
		}},
		{testPublish, [2]side{
			{name: sideOne, meter: one.meter, js: one.js, stream: gatewayStream, check: one.stream, op: publish(one)},
			{name: sideThree, meter: three.meter, js: three.js, stream: gatewayStream, check: three.stream, op: publish(three)},
		}},
		{testJetStream, [2]side{
			{name: sideR1, meter: three.meter, js: three.js, stream: rawStreamR1, check: rawCheck[sideR1], op: rawPublish(raw[sideR1])},
			{name: sideR3, meter: three.meter, js: three.js, stream: rawStreamR3, check: rawCheck[sideR3], op: rawPublish(raw[sideR3])},
		}},
	}

	b := &bench{cfg: cfg}
	for _, t := range tests[1:] {
		for _, s := range t.sides {
			if _, err := b.phase(ctx, s, warmup, 0); err != nil {
				return fmt.Errorf("warming up %s on %s: %w", t.name, s.name, err)
			}
		}
		progress("warmed up both %s sides for %s (not measured)", t.name, warmup)
	}

	env := environment{Environment: rig.Env, NATSServer: three.js.nc.ConnectedServerVersion(), LoadStart: loadStart,
		LoadBefore: loadAverage()}
	progress("Postgres %s, gateway %s, NATS server %s, %d CPUs; load average %s",
		env.Postgres, env.Gateway, env.NATSServer, env.CPUs, formatLoad(env.LoadBefore))
	progress("%d workers, %d keys, %d-byte values, %s per phase, %d rounds",
		cfg.workers, cfg.keys, cfg.size, cfg.duration, cfg.rounds)

	res := map[string]*[2][]phaseStats{}
	for _, t := range tests {
		res[t.name] = &[2][]phaseStats{}
	}
	step, steps := 0, cfg.rounds*len(tests)*2
	for r := range cfg.rounds {
		for ti, t := range tests {
			order := []int{0, 1}
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, si := range order {
				s := t.sides[si]
				step++
				ps, err := b.phase(ctx, s, cfg.duration, uint64(r*len(tests)+ti))
				if err != nil {
					return fmt.Errorf("round %d, %s on %s: %w", r+1, t.name, s.name, err)
				}
				res[t.name][si] = append(res[t.name][si], ps)
				left := time.Duration(steps-step) * cfg.duration
				progress("[%2d/%d] round %d %-9s %-7s %9s ops/s  p50 %s  p99 %s%s  (%s left)",
					step, steps, r+1, t.name, s.name, benchkit.Thousands(ps.OpsPerSec),
					benchkit.Ms(ps.P50Ms), benchkit.Ms(ps.P99Ms), benchkit.CPUNote(ps.CPU), left)
			}
		}
	}
	env.LoadAfter = loadAverage()

	rep := newReport(cfg, env, tests, res)
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
	cfg config
}

// phase runs one side for d with the workers' key generators seeded by
// seed, measuring the CPU time of the side's deployment, and then empties
// the stream it filled.
func (b *bench) phase(ctx context.Context, s side, d time.Duration, seed uint64) (phaseStats, error) {
	var (
		keeper errgroup.Group
		purges int
	)
	stopKeeper := func() {}
	if s.stream != "" {
		kctx, cancel := context.WithCancel(ctx)
		stopKeeper = cancel
		keeper.Go(func() (err error) {
			purges, err = s.js.keepRoom(kctx, s.stream)
			return err
		})
	}
	before := s.meter.sample()
	smp, err := benchkit.Closed(ctx, b.cfg.workers, d, nil, func(w int) benchkit.Op {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		return func(ctx context.Context) (int, error) { return 1, s.op(ctx, w, rng) }
	})
	after := s.meter.sample()
	stopKeeper()
	kerr := keeper.Wait()
	if err != nil {
		return phaseStats{}, err
	}
	if kerr != nil {
		return phaseStats{}, fmt.Errorf("watching %s: %w", s.stream, kerr)
	}
	if purges > 0 {
		progress("note: %s filled %s past 3/4 of its MaxBytes; purged it %d times during the phase", s.name, s.stream, purges)
	}
	if s.stream != "" {
		if err := s.js.purge(ctx, s.stream); err != nil {
			return phaseStats{}, err
		}
	}
	var nodes []float64
	smp.CPU, nodes, smp.CPUOK = before.until(after)
	return newPhaseStats(benchkit.Summarize(smp), nodes), nil
}

// preload writes every key once through api, from workers workers.
func preload(ctx context.Context, api *apiClients, workers, keys int) error {
	var next atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for w := range workers {
		g.Go(func() error {
			for {
				k := int(next.Add(1) - 1)
				if k >= keys {
					return nil
				}
				if err := api.save(ctx, w, k); err != nil {
					return fmt.Errorf("worker %d: %w", w, err)
				}
			}
		})
	}
	return g.Wait()
}

// createDatabase creates database name in pg, owned by the gateway's role,
// and returns the gateway's URL for it.
func createDatabase(ctx context.Context, pg *gatewaypg.Server, name string) (string, error) {
	u, err := url.Parse(pg.URL())
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.AdminURL("postgres"))
	if err != nil {
		return "", fmt.Errorf("connecting to Postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" OWNER "+
		pgx.Identifier{u.User.Username()}.Sanitize()); err != nil {
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	u.Path = "/" + name
	return u.String(), nil
}
