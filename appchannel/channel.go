package appchannel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/blockgate/blockgate/tenants"
)

// ErrProtocol is returned when a call needs an app protocol (HTTP or gRPC)
// the app's endpoint does not speak.
var ErrProtocol = errors.New("the app's endpoint speaks another protocol")

// Config configures a Channel.
type Config struct {
	// Transport carries HTTP calls to apps; default a pooled transport
	// whose only time limit is the caller's context.
	Transport http.RoundTripper
	// Apps lists every app the gateway can call, for health checks; nil
	// checks nothing (every instance counts as healthy).
	Apps func(ctx context.Context) ([]tenants.App, error)
	// ProbeTimeout bounds one health probe; default 2s.
	ProbeTimeout time.Duration
	Logger       *slog.Logger
}

// Channel carries the gateway's calls to apps. See the package doc.
type Channel struct {
	client *http.Client
	health *health
	logger *slog.Logger

	bases sync.Map // endpoint → *url.URL, parsed once

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// New returns a channel.
func New(cfg Config) *Channel {
	tr := cfg.Transport
	if tr == nil {
		tr = &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		}
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 2 * time.Second
	}
	logger := cfg.Logger.With("component", "appchannel")
	c := &Channel{
		// A redirect is the app's answer to the caller, not ours to follow.
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		logger: logger,
		conns:  map[string]*grpc.ClientConn{},
	}
	c.health = newHealth(c, cfg.Apps, cfg.ProbeTimeout, logger)
	return c
}

func isGRPC(endpoint string) bool {
	return strings.HasPrefix(endpoint, "grpc://") || strings.HasPrefix(endpoint, "grpcs://")
}

// Pick returns the endpoint of the instance the next call to app goes to:
// round robin over its healthy instances. It returns tenants.ErrNoInstance
// (wrapped) when there is none.
func (c *Channel) Pick(app tenants.App) (string, error) {
	if ep, ok := c.health.pick(app); ok {
		return ep, nil
	}
	if len(app.Endpoints()) == 0 {
		return "", fmt.Errorf("app %s registered no endpoint: %w", app.ID, tenants.ErrNoInstance)
	}
	return "", fmt.Errorf("app %s: %w", app.ID, tenants.ErrNoInstance)
}

// Do sends req to an instance of app and returns the response, whatever its
// status; the caller closes the body. req.URL holds only the path and query
// the app should see (the instance's base URL is put in front of them); its
// context bounds the call. Do sets the app's token and headers, replacing
// any the request had of the same name; it modifies req.
func (c *Channel) Do(req *http.Request, app tenants.App) (*http.Response, error) {
	ep, err := c.Pick(app)
	if err != nil {
		return nil, err
	}
	return c.DoAt(req, app, ep)
}

// DoAt is Do to one given instance endpoint of app.
func (c *Channel) DoAt(req *http.Request, app tenants.App, endpoint string) (*http.Response, error) {
	if isGRPC(endpoint) {
		return nil, fmt.Errorf("app %s at %s: %w", app.ID, endpoint, ErrProtocol)
	}
	base, err := c.base(endpoint)
	if err != nil {
		return nil, err
	}
	u := *base
	u.Path = join(base.Path, req.URL.Path)
	if req.URL.RawPath != "" || base.RawPath != "" {
		u.RawPath = join(base.EscapedPath(), req.URL.EscapedPath())
	}
	u.RawQuery = req.URL.RawQuery
	req.URL, req.Host = &u, ""
	if req.Header == nil {
		req.Header = http.Header{}
	}
	for k, v := range app.Headers {
		req.Header.Set(k, v)
	}
	if app.AppToken != "" {
		req.Header.Set("dapr-api-token", app.AppToken)
	}
	return c.client.Do(req)
}

func join(base, path string) string {
	return strings.TrimRight(base, "/") + "/" + strings.TrimLeft(path, "/")
}

// base parses an endpoint once.
func (c *Channel) base(endpoint string) (*url.URL, error) {
	if u, ok := c.bases.Load(endpoint); ok {
		return u.(*url.URL), nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("app endpoint %q is not an http(s) URL", endpoint)
	}
	u.RawQuery, u.Fragment = "", ""
	c.bases.Store(endpoint, u)
	return u, nil
}

// Conn returns the client connection to an instance of a gRPC app, picked
// like Do picks. The connection is shared and stays open: do not close it.
func (c *Channel) Conn(app tenants.App) (*grpc.ClientConn, error) {
	ep, err := c.Pick(app)
	if err != nil {
		return nil, err
	}
	if !isGRPC(ep) {
		return nil, fmt.Errorf("app %s at %s: %w", app.ID, ep, ErrProtocol)
	}
	return c.conn(ep)
}

func (c *Channel) conn(endpoint string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc, ok := c.conns[endpoint]; ok {
		return cc, nil
	}
	creds := insecure.NewCredentials()
	target := strings.TrimPrefix(endpoint, "grpc://")
	if rest, ok := strings.CutPrefix(endpoint, "grpcs://"); ok {
		target, creds = rest, credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	cc, err := grpc.NewClient(strings.TrimSuffix(target, "/"), grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("app endpoint %q: %w", endpoint, err)
	}
	c.conns[endpoint] = cc
	return cc, nil
}

// Callback returns Dapr's AppCallback client to an instance of a gRPC app,
// for OnInvoke and the pub/sub and binding callbacks. Send its calls with a
// context from Outgoing.
func (c *Channel) Callback(app tenants.App) (runtimev1.AppCallbackClient, error) {
	cc, err := c.Conn(app)
	if err != nil {
		return nil, err
	}
	return runtimev1.NewAppCallbackClient(cc), nil
}

// Outgoing returns ctx carrying the metadata a gRPC app gets with a call
// made on behalf of caller: md (the caller's, without its credentials) plus
// Dapr's caller and callee ids, the app's token and headers.
func Outgoing(ctx context.Context, md metadata.MD, caller tenants.Principal, app tenants.App) context.Context {
	out := md.Copy()
	for _, k := range []string{"dapr-api-token", "authorization", "dapr-app-id", ":authority"} {
		delete(out, k)
	}
	for k, v := range app.Headers {
		out.Set(strings.ToLower(k), v)
	}
	if caller.AppID != "" {
		out.Set("dapr-caller-app-id", caller.AppID)
	}
	out.Set("dapr-callee-app-id", app.ID)
	if app.AppToken != "" {
		out.Set("dapr-api-token", app.AppToken)
	}
	return metadata.NewOutgoingContext(ctx, out)
}

// AppsChanged asks for the list of health-checked apps to be read again.
func (c *Channel) AppsChanged() { c.health.changed() }

// Run probes the instances of health-checked apps until ctx is done.
func (c *Channel) Run(ctx context.Context) error { return c.health.run(ctx) }

// Close closes the connections to gRPC apps. It is idempotent.
func (c *Channel) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ep, cc := range c.conns {
		cc.Close()
		delete(c.conns, ep)
	}
	return nil
}
