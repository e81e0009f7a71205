package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// What dev mode creates, and where the gateway keeps the dev tenant's
// messages (blocks/pubsub/pubsubjs: one stream per tenant, T_<tenant>).
const (
	storeName     = "statestore"
	pubsubName    = "pubsub"
	publishTopic  = "publish"
	gatewayStream = "T_default"
	contentType   = "application/json"
)

// endpoint is one gateway node as a client sees it.
type endpoint struct {
	grpcAddr string
	token    string
}

// apiClients are the workers' gRPC connections to a deployment: worker w
// talks to node w mod len(nodes) over a connection of its own, as app
// instances behind a round-robin load balancer would. It calls the
// generated runtimev1.DaprClient, with the app token as dapr-api-token
// metadata, rather than the Go SDK, whose own CPU cost would take that
// much more of the shared cores from the gateways.
type apiClients struct {
	conns   []*grpc.ClientConn
	clients []runtimev1.DaprClient
	tokens  []string
	keys    []string
	value   []byte
}

func newAPIClients(nodes []endpoint, workers, keys int, value []byte) (*apiClients, error) {
	c := &apiClients{keys: keyNames(keys), value: value}
	for w := range workers {
		ep := nodes[w%len(nodes)]
		conn, err := grpc.NewClient(ep.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			c.close()
			return nil, fmt.Errorf("connecting to %s: %w", ep.grpcAddr, err)
		}
		c.conns = append(c.conns, conn)
		c.clients = append(c.clients, runtimev1.NewDaprClient(conn))
		c.tokens = append(c.tokens, ep.token)
	}
	return c, nil
}

// keyNames are the keyspace's keys.
func keyNames(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("k-%06d", i)
	}
	return keys
}

func (c *apiClients) ctx(ctx context.Context, worker int) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "dapr-api-token", c.tokens[worker])
}

// save writes the value to key index key through worker's node.
func (c *apiClients) save(ctx context.Context, worker, key int) error {
	_, err := c.clients[worker].SaveState(c.ctx(ctx, worker), &runtimev1.SaveStateRequest{
		StoreName: storeName,
		States:    []*commonv1.StateItem{{Key: c.keys[key], Value: c.value}},
	})
	return err
}

// publish publishes the value as a JSON event through worker's node and
// returns once the gateway has it stored.
func (c *apiClients) publish(ctx context.Context, worker int) error {
	_, err := c.clients[worker].PublishEvent(c.ctx(ctx, worker), &runtimev1.PublishEventRequest{
		PubsubName: pubsubName, Topic: publishTopic, Data: c.value, DataContentType: contentType,
	})
	return err
}

func (c *apiClients) close() error {
	var errs []error
	for _, conn := range c.conns {
		errs = append(errs, conn.Close())
	}
	return errors.Join(errs...)
}

// jsAdmin manages a deployment's streams over nats.go: it reads the
// gateway's stream, creates the raw streams and purges them.
type jsAdmin struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// newJSAdmin connects to any of urls, the nodes' embedded NATS servers.
func newJSAdmin(urls []string) (*jsAdmin, error) {
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Name("clusterbench-admin"))
	if err != nil {
		return nil, fmt.Errorf("connecting to the gateway's NATS at %s: %w", strings.Join(urls, ","), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &jsAdmin{nc: nc, js: js}, nil
}

// streamInfo returns a stream's configuration and placement.
func (a *jsAdmin) streamInfo(ctx context.Context, name string) (*jetstream.StreamInfo, error) {
	s, err := a.js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("reading stream %s: %w", name, err)
	}
	return s.Info(ctx)
}

// placement describes where a stream's replicas are: "node-2 (leader),
// node-1, node-3", or "node-1" for one replica.
func placement(info *jetstream.StreamInfo) string {
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "?"
	}
	s := info.Cluster.Leader
	if len(info.Cluster.Replicas) == 0 {
		return s
	}
	s += " (leader)"
	for _, r := range info.Cluster.Replicas {
		s += ", " + r.Name
	}
	return s
}

// createRawStream creates a stream with the configuration of the gateway's
// stream, which must exist, but for its name, subjects and replicas.
func (a *jsAdmin) createRawStream(ctx context.Context, name, subjects string, replicas int) (*jetstream.StreamInfo, error) {
	gw, err := a.streamInfo(ctx, gatewayStream)
	if err != nil {
		return nil, err
	}
	cfg := gw.Config
	cfg.Name, cfg.Subjects, cfg.Description = name, []string{subjects}, "clusterbench baseline"
	cfg.Replicas = replicas
	cfg.Metadata = nil // the server's own keys
	if _, err := a.js.CreateStream(ctx, cfg); err != nil {
		return nil, fmt.Errorf("creating stream %s: %w", name, err)
	}
	// A new replicated stream elects its leader after it is created.
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := a.streamInfo(ctx, name)
		if err != nil {
			return nil, err
		}
		if info.Cluster != nil && info.Cluster.Leader != "" && len(info.Cluster.Replicas) == replicas-1 {
			return info, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("stream %s has no leader or too few replicas 10s after its creation: %s", name, placement(info))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// purge empties a stream.
func (a *jsAdmin) purge(ctx context.Context, name string) error {
	s, err := a.js.Stream(ctx, name)
	if err != nil {
		return err
	}
	if err := s.Purge(ctx); err != nil {
		return fmt.Errorf("purging %s: %w", name, err)
	}
	return nil
}

// keepRoom purges the stream whenever it holds more than 3/4 of its
// MaxBytes, until ctx ends: the streams have the tenant quota's DiscardNew,
// so a long phase would otherwise fail with "maximum bytes exceeded". It
// returns how often it purged. A phase of the default length never needs it.
func (a *jsAdmin) keepRoom(ctx context.Context, name string) (purges int, err error) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return purges, nil
		case <-tick.C:
		}
		info, err := a.streamInfo(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return purges, nil
			}
			return purges, err
		}
		if info.Config.MaxBytes > 0 && info.State.Bytes > uint64(info.Config.MaxBytes)/4*3 {
			if err := a.purge(ctx, name); err != nil {
				if ctx.Err() != nil {
					return purges, nil
				}
				return purges, err
			}
			purges++
		}
	}
}

func (a *jsAdmin) close() { a.nc.Close() }

// rawPublishers publish straight to a JetStream stream with nats.go, each
// worker on a connection of its own to node w mod len(urls), as the
// gateway's publishers are spread over the nodes.
type rawPublishers struct {
	conns   []*nats.Conn
	js      []jetstream.JetStream
	subject string
	value   []byte
}

func newRawPublishers(urls []string, workers int, subject string, value []byte) (*rawPublishers, error) {
	p := &rawPublishers{subject: subject, value: value}
	for w := range workers {
		nc, err := nats.Connect(urls[w%len(urls)], nats.Name("clusterbench"))
		if err != nil {
			p.close()
			return nil, fmt.Errorf("connecting to %s: %w", urls[w%len(urls)], err)
		}
		p.conns = append(p.conns, nc)
		js, err := jetstream.New(nc)
		if err != nil {
			p.close()
			return nil, err
		}
		p.js = append(p.js, js)
	}
	return p, nil
}

// publish publishes one message and waits for the stream's ack. Its
// Nats-Msg-Id has the shape of the gateway's (<pubsub>.<topic>/<uuid>), so
// that deduplication costs the server what it costs the gateway.
func (p *rawPublishers) publish(ctx context.Context, worker int) error {
	m := nats.NewMsg(p.subject)
	m.Header.Set(jetstream.MsgIDHeader, pubsubName+"."+publishTopic+"/"+uuid.NewString())
	m.Data = p.value
	_, err := p.js[worker].PublishMsg(ctx, m)
	return err
}

func (p *rawPublishers) close() {
	for _, nc := range p.conns {
		nc.Close()
	}
}

// streamCheck is what the benchmark saw of a stream before measuring.
type streamCheck struct {
	Stream   string `json:"stream"`
	Replicas int    `json:"replicas"` // configured
	// Current counts the leader and the followers that are current.
	Current   int    `json:"current"`
	Placement string `json:"placement"`
}

func newStreamCheck(info *jetstream.StreamInfo) streamCheck {
	c := streamCheck{Stream: info.Config.Name, Replicas: info.Config.Replicas, Placement: placement(info)}
	if info.Cluster != nil && info.Cluster.Leader != "" {
		c.Current = 1
		for _, r := range info.Cluster.Replicas {
			if r.Current {
				c.Current++
			}
		}
	}
	return c
}
