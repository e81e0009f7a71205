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

// Channel carries requests to an app's instances; the gateway's app
// channel (appchannel.Channel) implements it. Do sends req, whose URL holds
// only the path and query the app should see, to an instance of app, with
// the app's own token and headers; it returns tenants.ErrNoInstance
// (wrapped) when no instance may take the call.
type Channel interface {
	Do(req *http.Request, app tenants.App) (*http.Response, error)
}

// Operation is what a call asks of the target, as access policies see it.
type Operation struct {
	// Method is the path on the callee (HTTP) or the full gRPC method
	// name, as the caller sent it.
	Method string
	// Verb is the HTTP method; empty for gRPC.
	Verb string
	// GRPC reports that the callee speaks gRPC (the verb does not apply).
	GRPC bool
}

// Authorize decides whether caller may perform op on the target app; a
// non-nil error refuses the call with 403 and its message is shown to the
// caller. nil allows every call within a tenant.
type Authorize func(ctx context.Context, caller tenants.Principal, target string, op Operation) error

// Service carries invocations. It is safe for concurrent use.
type Service struct {
	apps      Apps
	channel   Channel
	authorize Authorize
	policies  Policies
	logger    *slog.Logger
}

// Config configures the service.
type Config struct {
	Apps Apps
	// Channel reaches apps.
	Channel Channel
	// Authorize is the access policy hook; nil allows every call within a
	// tenant.
	Authorize Authorize
	// Policies gives each call its timeouts, retries and circuit breaker;
	// nil means the built-in defaults (retries only of calls that never
	// reached the app).
	Policies Policies
	Logger   *slog.Logger
}

// NewService returns the invocation service.
func NewService(cfg Config) *Service {
	return &Service{
		apps:      cfg.Apps,
		channel:   cfg.Channel,
		authorize: cfg.Authorize,
		policies:  cfg.Policies,
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
// tenant and checks that the tenant's access policies let caller call its
// method with verb (empty for gRPC): what every kind of invocation (HTTP,
// InvokeService, gRPC proxying) does first.
func (s *Service) Resolve(ctx context.Context, caller tenants.Principal, target, method, verb string) (tenants.App, error) {
	if target == "" {
		return tenants.App{}, errNoAppID()
	}
	if err := tenants.ValidateAppID(target); err != nil {
		return tenants.App{}, blocks.New(blocks.InvalidArgument, http.StatusBadRequest, "ERR_DIRECT_INVOKE",
			"failed to invoke: %s", err.Error())
	}
	app, err := s.apps.App(ctx, caller.Tenant, target)
	switch {
	case errors.Is(err, tenants.ErrNotFound):
		return tenants.App{}, errInvoke(target, "app not found", nil)
	case err != nil:
		return tenants.App{}, blocks.ErrUnavailable("the app registry", err)
	}
	if s.authorize != nil {
		op := Operation{Method: method, Verb: verb, GRPC: app.SpeaksGRPC()}
		if err := s.authorize(ctx, caller, target, op); err != nil {
			var be *blocks.Error
			if errors.As(err, &be) {
				return tenants.App{}, be
			}
			return tenants.App{}, errForbidden(err.Error())
		}
	}
	if len(app.Endpoints()) == 0 {
		return tenants.App{}, errInvoke(target, "the app has no endpoint registered; it can be called only through its sidecar", nil)
	}
	return app, nil
}

// Invoke carries c to the target app and returns its response, whatever its
// status: an app's 4xx or 5xx is the caller's answer, not an error.
func (s *Service) Invoke(ctx context.Context, caller tenants.Principal, c Call) (*Response, error) {
	verb := c.Verb
	if verb == "" {
		verb = http.MethodPost
	}
	app, err := s.Resolve(ctx, caller, c.Target, c.Method, verb)
	if err != nil {
		return nil, err
	}
	return s.Send(ctx, caller, app, c)
}

// Send carries c to app, which Resolve returned for c.Target, over HTTP.
func (s *Service) Send(ctx context.Context, caller tenants.Principal, app tenants.App, c Call) (*Response, error) {
	if app.SpeaksGRPC() {
		return nil, errInvoke(c.Target, "the app speaks gRPC: call its services on the gateway's gRPC port with dapr-app-id metadata", nil)
	}
	// A request can be sent again only if nothing of it is lost by the
	// first attempt: no body, and a method that may be repeated.
	replayable := c.ContentLength == 0 && invokeresiliency.IdempotentMethod(c.Verb)
	var resp *http.Response
	out, err := s.Protect(ctx, caller, c.Target, func(actx context.Context) (invokeresiliency.Outcome, error) {
		req, err := s.request(actx, caller, c)
		if err != nil {
			return invokeresiliency.Outcome{}, err
		}
		r, err := s.channel.Do(req, app)
		if err != nil {
			return invokeresiliency.Outcome{Unsent: errors.Is(err, tenants.ErrNoInstance) || invokeresiliency.DialFailed(err)}, err
		}
		resp = r
		return invokeresiliency.Outcome{
			Status: invokeresiliency.HTTPStatus(r.StatusCode), Replayable: replayable,
			Release: func() { r.Body.Close() },
		}, nil
	})
	if err != nil {
		return nil, err
	}
	removeHopByHop(resp.Header)
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: releaser{resp.Body, out.Release}}, nil
}

// Protect runs attempt under the resiliency policy for calls from caller
// to target (timeouts, retries, circuit breaker) and turns what went wrong
// into the block's errors: a 503 for an open circuit or no healthy
// instance, a 504 for a timeout. Every kind of invocation goes through it;
// the outcome is that of the attempt that ended the call.
func (s *Service) Protect(ctx context.Context, caller tenants.Principal, target string,
	attempt func(ctx context.Context) (invokeresiliency.Outcome, error)) (invokeresiliency.Outcome, error) {
	policy := invokeresiliency.Resiliency{}.ForApp(target)
	if s.policies != nil {
		var err error
		if policy, err = s.policies(ctx, caller, target); err != nil {
			return invokeresiliency.Outcome{}, blocks.ErrUnavailable("the resiliency policies", err)
		}
	}
	out, err := policy.Run(ctx, attempt)
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, invokeresiliency.ErrCircuitOpen):
		return out, errCircuitOpen(target).WithCause(err)
	case errors.Is(err, tenants.ErrNoInstance):
		return out, errNoInstance(target).WithCause(err)
	case errors.Is(err, invokeresiliency.ErrTimeout):
		return out, errTimeout(target, err)
	case ctx.Err() != nil:
		return out, errTimeout(target, ctx.Err())
	}
	var be *blocks.Error
	if errors.As(err, &be) {
		return out, be
	}
	return out, errInvoke(target, "the app cannot be reached", err)
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

// request builds the outgoing request; its URL holds the path and query
// only, the channel puts the instance's base URL in front.
func (s *Service) request(ctx context.Context, caller tenants.Principal, c Call) (*http.Request, error) {
	u, err := url.Parse("/" + strings.TrimLeft(c.Method, "/"))
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
	u.RawQuery = c.RawQuery
	req, err := http.NewRequestWithContext(ctx, verb, "/", body)
	if err != nil {
		return nil, errInvoke(c.Target, "building the request", err)
	}
	req.URL = u
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

func errForbidden(reason string) *blocks.Error {
	return blocks.New(blocks.Forbidden, http.StatusForbidden, "ERR_PERMISSION_DENIED", "access denied: %s", reason)
}

func errNoInstance(target string) *blocks.Error {
	return blocks.New(blocks.Unavailable, http.StatusServiceUnavailable, "ERR_DIRECT_INVOKE",
		"failed to invoke, id: %s, err: no healthy instance of the app", target)
}

func errCircuitOpen(target string) *blocks.Error {
	return blocks.New(blocks.Unavailable, http.StatusServiceUnavailable, "ERR_DIRECT_INVOKE",
		"failed to invoke, id: %s, err: circuit breaker is open; the app failed repeatedly, retry later", target)
}

func errTimeout(target string, cause error) *blocks.Error {
	return blocks.New(blocks.DeadlineExceeded, http.StatusGatewayTimeout, "ERR_DIRECT_INVOKE",
		"failed to invoke, id: %s, err: the call timed out or was cancelled", target).WithCause(fmt.Errorf("%w", cause))
}
