package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/blockgate/blockgate/admin/adminclient"
	"github.com/blockgate/blockgate/bench/benchkit"
	"github.com/blockgate/blockgate/tenants"
)

// What each tenant gets: the same component, key and value size.
const (
	storeName = "statestore"
	key       = "k"
	valueSize = 64
)

// stateComponent is the tenants' state store, as e2e's.
const stateComponent = `
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.postgresql
  version: v1
`

// setupTimeout bounds the wait for a new component to serve.
const setupTimeout = 30 * time.Second

// tenant is one of the two tenants as its clients see it.
type tenant struct {
	name, app, token string
	// wantHTTP and wantGRPC are the answers to a GET of the key, as read
	// once after saving it.
	wantHTTP, wantGRPC []byte
}

// createTenant creates a tenant with limits, an app, the state component
// and a token valid for ttl, saves the key and reads it back over both
// protocols.
func createTenant(ctx context.Context, admin *adminclient.Client, gw *benchkit.Gateway, name, app string,
	limits tenants.Limits, ttl time.Duration,
) (*tenant, error) {
	if _, err := admin.CreateTenant(ctx, name); err != nil {
		return nil, fmt.Errorf("creating tenant %s: %w", name, err)
	}
	if _, err := admin.SetLimits(ctx, name, limits); err != nil {
		return nil, fmt.Errorf("setting the limits of %s: %w", name, err)
	}
	if _, err := admin.CreateApp(ctx, name, app, ""); err != nil {
		return nil, fmt.Errorf("creating app %s/%s: %w", name, app, err)
	}
	if _, err := admin.ApplyComponent(ctx, name, []byte(stateComponent)); err != nil {
		return nil, fmt.Errorf("applying %s's state component: %w", name, err)
	}
	tok, err := admin.IssueToken(ctx, name, app, ttl)
	if err != nil {
		return nil, fmt.Errorf("issuing a token for %s/%s: %w", name, app, err)
	}
	t := &tenant{name: name, app: app, token: tok.Text}

	c := httpClient(1)
	defer c.CloseIdleConnections()
	body := fmt.Sprintf(`[{"key":%q,"value":%s}]`, key, benchkit.JSONValue(valueSize))
	// The component reaches the node asynchronously: retry until it serves.
	if err := poll(ctx, func(ctx context.Context) error {
		st, b, err := t.do(ctx, c, http.MethodPost, gw.HTTPEndpoint()+"/v1.0/state/"+storeName, body)
		if err == nil && st != http.StatusNoContent && st != http.StatusOK {
			err = fmt.Errorf("%d %s", st, b)
		}
		return err
	}); err != nil {
		return nil, fmt.Errorf("saving %s's key: %w", name, err)
	}
	st, b, err := t.do(ctx, c, http.MethodGet, gw.HTTPEndpoint()+"/v1.0/state/"+storeName+"/"+key, "")
	if err != nil || st != http.StatusOK {
		return nil, fmt.Errorf("reading %s's key over HTTP: %d %s %v", name, st, b, err)
	}
	t.wantHTTP = b

	conn, err := grpcConn(gw.GRPCAddr())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	res, err := runtimev1.NewDaprClient(conn).GetState(t.outgoing(ctx),
		&runtimev1.GetStateRequest{StoreName: storeName, Key: key})
	if err != nil {
		return nil, fmt.Errorf("reading %s's key over gRPC: %w", name, err)
	}
	t.wantGRPC = res.GetData()
	return t, nil
}

// do sends one request with the tenant's token and returns the answer.
func (t *tenant) do(ctx context.Context, c *http.Client, method, url, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("dapr-api-token", t.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// outgoing adds the tenant's token to ctx as gRPC metadata.
func (t *tenant) outgoing(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "dapr-api-token", t.token)
}

// poll calls f until it succeeds, for at most setupTimeout.
func poll(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not within %s: %w", setupTimeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// httpClient is a keep-alive client with room for every worker's
// connection.
func httpClient(workers int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns: workers, MaxIdleConnsPerHost: workers, IdleConnTimeout: time.Minute,
	}}
}

// grpcConn dials addr without TLS.
func grpcConn(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// quietErrors counts the quiet tenant's failed calls in one phase and
// keeps the first. Safe for concurrent use.
type quietErrors struct {
	n     atomic.Int64
	once  sync.Once
	first string
}

func (e *quietErrors) add(err error) {
	e.n.Add(1)
	e.once.Do(func() { e.first = err.Error() })
}

// count and firstError may be called once the phase has ended.
func (e *quietErrors) count() int         { return int(e.n.Load()) }
func (e *quietErrors) firstError() string { return e.first }

// noisyCounts counts the noisy tenant's answers. Safe for concurrent use;
// snapshot reads them while calls go on.
type noisyCounts struct {
	accepted, refused, other atomic.Int64
}

// answerCounts is a snapshot of noisyCounts, or the difference of two.
type answerCounts struct {
	Accepted int `json:"accepted"`
	Refused  int `json:"refused"`
	Other    int `json:"other"`
}

func (c *noisyCounts) snapshot() answerCounts {
	return answerCounts{Accepted: int(c.accepted.Load()), Refused: int(c.refused.Load()), Other: int(c.other.Load())}
}

func (a answerCounts) minus(b answerCounts) answerCounts {
	return answerCounts{Accepted: a.Accepted - b.Accepted, Refused: a.Refused - b.Refused, Other: a.Other - b.Other}
}

// Calls is every answered call.
func (a answerCounts) Calls() int { return a.Accepted + a.Refused + a.Other }

// answer is how the noisy tenant's call was answered.
type answer int

const (
	accepted answer = iota
	refused
	other
)

func (c *noisyCounts) add(a answer) {
	switch a {
	case accepted:
		c.accepted.Add(1)
	case refused:
		c.refused.Add(1)
	default:
		c.other.Add(1)
	}
}

// httpAnswer classifies an HTTP status.
func httpAnswer(status int) answer {
	switch {
	case status/100 == 2:
		return accepted
	case status == http.StatusTooManyRequests:
		return refused
	}
	return other
}

// grpcAnswer classifies a gRPC call's error.
func grpcAnswer(err error) answer {
	switch status.Code(err) {
	case codes.OK:
		return accepted
	case codes.ResourceExhausted:
		return refused
	}
	return other
}

// Every op below returns an error only once ctx is done, which ends the
// phase; any other failure is counted and the phase goes on.

// quietHTTPOp GETs url with token and counts as an error anything but a
// 2xx carrying want.
func quietHTTPOp(c *http.Client, url, token string, want []byte, errs *quietErrors) benchkit.Op {
	header := http.Header{"Dapr-Api-Token": {token}}
	return func(ctx context.Context) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		req.Header = header
		resp, err := c.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			errs.add(err)
			return 1, nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			errs.add(err)
		case resp.StatusCode/100 != 2:
			errs.add(fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(body)))
		case !bytes.Equal(body, want):
			errs.add(fmt.Errorf("GET %s: %q, want %q", url, body, want))
		}
		return 1, nil
	}
}

// noisyHTTPOp GETs url with token and counts the answer.
func noisyHTTPOp(c *http.Client, url, token string, counts *noisyCounts) benchkit.Op {
	header := http.Header{"Dapr-Api-Token": {token}}
	return func(ctx context.Context) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		req.Header = header
		resp, err := c.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			counts.add(other)
			return 1, nil
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		counts.add(httpAnswer(resp.StatusCode))
		return 1, nil
	}
}

// quietGRPCOp calls GetState for the key and counts as an error anything
// but OK carrying want.
func quietGRPCOp(c runtimev1.DaprClient, token string, want []byte, errs *quietErrors) benchkit.Op {
	md := metadata.Pairs("dapr-api-token", token)
	req := &runtimev1.GetStateRequest{StoreName: storeName, Key: key}
	return func(ctx context.Context) (int, error) {
		res, err := c.GetState(metadata.NewOutgoingContext(ctx, md), req)
		switch {
		case ctx.Err() != nil:
			return 0, ctx.Err()
		case err != nil:
			errs.add(err)
		case !bytes.Equal(res.GetData(), want):
			errs.add(fmt.Errorf("GetState: %q, want %q", res.GetData(), want))
		}
		return 1, nil
	}
}

// noisyGRPCOp calls GetState for the key and counts the answer.
func noisyGRPCOp(c runtimev1.DaprClient, token string, counts *noisyCounts) benchkit.Op {
	md := metadata.Pairs("dapr-api-token", token)
	req := &runtimev1.GetStateRequest{StoreName: storeName, Key: key}
	return func(ctx context.Context) (int, error) {
		_, err := c.GetState(metadata.NewOutgoingContext(ctx, md), req)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		counts.add(grpcAnswer(err))
		return 1, nil
	}
}

// errNoRefusal says the noisy tenant's limit is not in force.
var errNoRefusal = errors.New("the noisy tenant was never refused: its rate limit is not in force")
