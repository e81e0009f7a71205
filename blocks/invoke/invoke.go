// Package invoke is the service invocation building block: one app calls
// another by app id, and the gateway carries the call to the target's
// registered endpoint.
//
// An app id is resolved only within the caller's tenant, so two tenants may
// both have an app called "orders" and never reach each other's. Bodies
// stream in both directions: the service never buffers a request or a
// response, so a large upload costs the gateway no more memory than a small
// one. The callee gets Dapr's headers (dapr-caller-app-id,
// dapr-callee-app-id, the Forwarded family and the caller's trace context)
// and never the caller's credentials. Authorize is the one place where
// access policies decide who may call whom.
package invoke

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/blockgate/blockgate/blocks"
	"github.com/blockgate/blockgate/blocks/invoke/invokeresiliency"
	"github.com/blockgate/blockgate/tenants"
)

// Apps finds the apps of a tenant; the gateway's registry implements it.
type Apps interface {
	App(ctx context.Context, tenant tenants.ID, appID string) (tenants.App, error)
}

// Policies resolves the resiliency of a call from caller to target: the
// tenant's Resiliency resources in the caller's scope, for the target app.
type Policies func(ctx context.Context, caller tenants.Principal, target string) (invokeresiliency.Policy, error)

// Balancer picks the instance endpoint a call to app goes to; ok is false
// when no instance may take calls (all unhealthy).
type Balancer interface {
	Pick(app tenants.App) (endpoint string, ok bool)
}

// Authorize decides whether caller may invoke target's method; a non-nil
// error refuses the call with 403. nil allows every call within a tenant.
type Authorize func(ctx context.Context, caller tenants.Principal, target, method string) error

// Service carries invocations. It is safe for concurrent use.
type Service struct {
	apps      Apps
	client    *http.Client
	authorize Authorize
	policies  Policies
	balancer  Balancer
	logger    *slog.Logger
}

// Config configures the service.
type Config struct {
	Apps Apps
	// Transport reaches apps; default a pooled http.Transport.
	Transport http.RoundTripper
	// Authorize is the access policy hook; nil allows every call within a
	// tenant.
	Authorize Authorize
	// Policies gives each call its timeouts, retries and circuit breaker;
	// nil means the built-in defaults (retries only of calls that never
	// reached the app).
	Policies Policies
	// Balancer picks among an app's instances; nil always takes the app's
	// first endpoint.
	Balancer Balancer
	Logger   *slog.Logger
}

// NewService returns the invocation service.
func NewService(cfg Config) *Service {
	tr := cfg.Transport
	if tr == nil {
		tr = &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 0, // the caller's context bounds the call
			ExpectContinueTimeout: time.Second,
		}
	}
	return &Service{
		apps:      cfg.Apps,
		client:    &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		authorize: cfg.Authorize,
		policies:  cfg.Policies,
		balancer:  cfg.Balancer,
		logger:    cfg.Logger.With("block", "invoke"),
	}
}

// Call is one invocation as a transport decodes it.
type Call struct {
	// Target is the callee's app id.
	Target string
	// Verb is the HTTP method; Method is the path on the callee, escaped as
	// in a URL (without a leading slash); RawQuery its query string.
	Verb     string
	Method   string
	RawQuery string
	Header   http.Header
	// Body streams the request body; ContentLength is -1 when unknown.
	Body          io.Reader
	ContentLength int64
	// RemoteAddr is the caller's network address, for X-Forwarded-For.
	RemoteAddr string
	// Host is the host the caller addressed, for X-Forwarded-Host.
	Host string
}

// Response is the callee's answer; the caller must close Body.
type Response struct {
	Status int
	Header http.Header
	Body   io.ReadCloser
}

// Resolve finds the target app of a call from caller within caller's
// tenant and checks that caller may call its method: what every kind of
// invocation (HTTP, InvokeService, gRPC proxying) does first.
func (s *Service) Resolve(ctx context.Context, caller tenants.Principal, target, method string) (tenants.App, error) {
	if target == "" {
		return tenants.App{}, errNoAppID()
	}
	if err := tenants.ValidateAppID(target); err != nil {
		return tenants.App{}, errInvoke(target, "invalid app id", nil)
	}
	if s.authorize != nil {
		if err := s.authorize(ctx, caller, target, method); err != nil {
			return tenants.App{}, errForbidden(caller.AppID, target, method).WithCause(err)
		}
	}
	app, err := s.apps.App(ctx, caller.Tenant, target)
	switch {
	case errors.Is(err, tenants.ErrNotFound):
		return tenants.App{}, errInvoke(target, "app not found", nil)
	case err != nil:
		return tenants.App{}, blocks.ErrUnavailable("the app registry", err)
	case len(app.Endpoints()) == 0:
		return tenants.App{}, errInvoke(target, "the app has no endpoint registered; it can be called only through its sidecar", nil)
	}
	if s.balancer != nil {
		ep, ok := s.balancer.Pick(app)
		if !ok {
			return tenants.App{}, blocks.New(blocks.Unavailable, http.StatusServiceUnavailable, "ERR_DIRECT_INVOKE",
				"failed to invoke, id: %s, err: no healthy instance of the app", target)
		}
		app.Endpoint = ep // the instance this call goes to
	} else if app.Endpoint == "" {
		app.Endpoint = app.Endpoints()[0]
	}
	return app, nil
}

// SpeaksGRPC reports whether an app registered a gRPC endpoint
// (grpc://host:port or grpcs://host:port).
func SpeaksGRPC(app tenants.App) bool {
	return strings.HasPrefix(app.Endpoint, "grpc://") || strings.HasPrefix(app.Endpoint, "grpcs://")
}

// Invoke carries c to the target app and returns its response, whatever its
// status: an app's 4xx or 5xx is the caller's answer, not an error.
func (s *Service) Invoke(ctx context.Context, caller tenants.Principal, c Call) (*Response, error) {
	app, err := s.Resolve(ctx, caller, c.Target, c.Method)
	if err != nil {
		return nil, err
	}
	if SpeaksGRPC(app) {
		return nil, errInvoke(c.Target, "the app speaks gRPC: call its services on the gateway's gRPC port with dapr-app-id metadata", nil)
	}
	policy := invokeresiliency.Resiliency{}.ForApp(c.Target)
	if s.policies != nil {
		if policy, err = s.policies(ctx, caller, c.Target); err != nil {
			return nil, blocks.ErrUnavailable("the resiliency policies", err)
		}
	}
	// A request can be sent again only if nothing of it is lost by the
	// first attempt: no body, and a method that may be repeated.
	replayable := c.ContentLength == 0 && invokeresiliency.IdempotentMethod(c.Verb)
	var resp *http.Response
	out, err := policy.Run(ctx, func(actx context.Context) (invokeresiliency.Outcome, error) {
		req, err := s.request(actx, caller, app, c)
		if err != nil {
			return invokeresiliency.Outcome{}, err
		}
		r, err := s.client.Do(req)
		if err != nil {
			return invokeresiliency.Outcome{Unsent: invokeresiliency.DialFailed(err)}, err
		}
		resp = r
		return invokeresiliency.Outcome{
			Status: invokeresiliency.HTTPStatus(r.StatusCode), Replayable: replayable,
			Release: func() { r.Body.Close() },
		}, nil
	})
	switch {
	case errors.Is(err, invokeresiliency.ErrCircuitOpen):
		return nil, errCircuitOpen(c.Target).WithCause(err)
	case errors.Is(err, invokeresiliency.ErrTimeout):
		return nil, errTimeout(c.Target, err)
	case err != nil && ctx.Err() != nil:
		return nil, errTimeout(c.Target, ctx.Err())
	case err != nil:
		var be *blocks.Error
		if errors.As(err, &be) {
			return nil, be
		}
		return nil, errInvoke(c.Target, "the app cannot be reached", err)
	}
	removeHopByHop(resp.Header)
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: releaser{resp.Body, out.Release}}, nil
}

// releaser ends an attempt (its context and its hold on the connection)
// when the caller closes the response body.
type releaser struct {
	io.ReadCloser
	release func()
}

func (r releaser) Close() error {
	err := r.ReadCloser.Close()
	r.release()
	return err
}

// request builds the outgoing request to app's endpoint.
func (s *Service) request(ctx context.Context, caller tenants.Principal, app tenants.App, c Call) (*http.Request, error) {
	target := strings.TrimRight(app.Endpoint, "/") + "/" + strings.TrimLeft(c.Method, "/")
	if c.RawQuery != "" {
		target += "?" + c.RawQuery
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, errInvoke(c.Target, "the method is not a valid URL path", err)
	}
	verb := c.Verb
	if verb == "" {
		verb = http.MethodPost
	}
	body := c.Body
	if c.ContentLength == 0 {
		body = nil
	}
	req, err := http.NewRequestWithContext(ctx, verb, u.String(), body)
	if err != nil {
		return nil, errInvoke(c.Target, "building the request", err)
	}
	req.ContentLength = c.ContentLength
	req.Header = c.Header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	removeHopByHop(req.Header)
	// The caller's credentials are for the gateway, never for the callee.
	req.Header.Del("dapr-api-token")
	req.Header.Del("Authorization")
	req.Header.Del("dapr-app-id")
	if app.AppToken != "" {
		// The app's own token tells it the call comes from the gateway.
		req.Header.Set("dapr-api-token", app.AppToken)
	}
	req.Header.Set("dapr-caller-app-id", caller.AppID)
	req.Header.Set("dapr-callee-app-id", c.Target)
	if ip, _, err := net.SplitHostPort(c.RemoteAddr); err == nil {
		prior := req.Header.Values("X-Forwarded-For")
		req.Header.Set("X-Forwarded-For", strings.Join(append(prior, ip), ", "))
		fwd := "for=" + forwardedNode(ip)
		if c.Host != "" {
			fwd += ";host=" + quoteIfNeeded(c.Host)
		}
		req.Header.Add("Forwarded", fwd)
	}
	if c.Host != "" {
		req.Header.Set("X-Forwarded-Host", c.Host)
	}
	return req, nil
}

// forwardedNode formats an address for the Forwarded header (RFC 7239).
func forwardedNode(ip string) string {
	if strings.Contains(ip, ":") {
		return `"[` + ip + `]"`
	}
	return ip
}

func quoteIfNeeded(s string) string {
	if strings.ContainsAny(s, ":;,\" ") {
		return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
	}
	return s
}

// hopByHop are the headers a proxy must not forward (RFC 9110 7.6.1).
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHopByHop(h http.Header) {
	for _, f := range h.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			h.Del(strings.TrimSpace(name))
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
}

// errors of the block, with daprd's codes.

func errNoAppID() *blocks.Error {
	return blocks.New(blocks.InvalidArgument, http.StatusBadRequest, "ERR_DIRECT_INVOKE", "failed getting app id either from the URL path or the header dapr-app-id")
}

func errInvoke(target, why string, cause error) *blocks.Error {
	return blocks.New(blocks.Internal, http.StatusInternalServerError, "ERR_DIRECT_INVOKE",
		"failed to invoke, id: %s, err: %s", target, why).WithCause(cause)
}

func errForbidden(caller, target, method string) *blocks.Error {
	return blocks.New(blocks.Forbidden, http.StatusForbidden, "ERR_DIRECT_INVOKE",
		"access denied: app %s may not call method %s of app %s", caller, method, target)
}

func errCircuitOpen(target string) *blocks.Error {
	return blocks.New(blocks.Unavailable, http.StatusServiceUnavailable, "ERR_DIRECT_INVOKE",
		"failed to invoke, id: %s, err: circuit breaker is open; the app failed repeatedly, retry later", target)
}

func errTimeout(target string, cause error) *blocks.Error {
	return blocks.New(blocks.DeadlineExceeded, http.StatusGatewayTimeout, "ERR_DIRECT_INVOKE",
		"failed to invoke, id: %s, err: the call timed out or was cancelled", target).WithCause(fmt.Errorf("%w", cause))
}
