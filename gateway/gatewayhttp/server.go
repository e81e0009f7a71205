// Package gatewayhttp serves Dapr's HTTP API on echo. It only translates:
// paths, headers and JSON bodies in, block service calls, Dapr-shaped
// responses out. Every handler returns an error and one HTTPErrorHandler
// turns errors into {"errorCode", "message"} bodies.
package gatewayhttp

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/blockgate/blockgate/auth"
	"github.com/blockgate/blockgate/blocks"
	"github.com/blockgate/blockgate/blocks/invoke"
	"github.com/blockgate/blockgate/blocks/metadata"
	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/blocks/state"
	"github.com/blockgate/blockgate/tenants"
)

// Quota admits a request of p whose body has size bytes (-1: unknown). It
// returns the largest body the tenant may send (0: no tenant limit) and a
// release to call when the request ends; a refusal is a *blocks.Error.
type Quota interface {
	Admit(ctx context.Context, p tenants.Principal, size int64) (maxBytes int64, release func(), err error)
}

// Authenticator turns a request's credential (its app token, else the
// client certificate of a TLS connection, nil for plain ones) into a
// principal.
type Authenticator interface {
	AuthenticateRequest(ctx context.Context, token string, conn *tls.ConnectionState) (tenants.Principal, error)
}

// Config is what the HTTP API serves and with which limits.
type Config struct {
	State    *state.Service
	Pubsub   *pubsub.Service
	Invoke   *invoke.Service
	Metadata *metadata.Service
	Auth     Authenticator
	// JWKS returns the token signing keys' JSON Web Key Set.
	JWKS func() []byte
	// Identity issues apps' certificates; nil answers 501.
	Identity Identity
	// Quota admits each authenticated request by its tenant's limits; nil
	// admits everything.
	Quota Quota
	// Ready reports whether the node can serve (dependencies up); healthz
	// answers 500 with its error otherwise.
	Ready func(ctx context.Context) error
	// MaxBodyBytes limits request bodies; default 4 MiB.
	MaxBodyBytes int64
	Logger       *slog.Logger
}

// New returns the HTTP API handler.
func New(cfg Config) http.Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	s := &server{cfg: cfg, logger: cfg.Logger.With("transport", "http")}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Pre(appIDHeader)
	e.Use(s.recoverPanics, s.limitBody, s.authenticate)

	e.GET("/v1.0/healthz", s.healthz)
	e.GET("/v1.0/healthz/outbound", s.healthzOutbound)
	e.GET("/.well-known/jwks.json", s.jwks)
	e.GET(bundlePath, s.trustBundle)
	e.POST("/v1.0-alpha1/identity/svid", s.issueSVID)

	e.GET("/v1.0/metadata", s.getMetadata)
	e.PUT("/v1.0/metadata/:key", s.putMetadata)

	for _, m := range []string{http.MethodPost, http.MethodPut} {
		e.Add(m, "/v1.0/state/:store", s.saveState)
		e.Add(m, "/v1.0/state/:store/bulk", s.bulkGetState)
		e.Add(m, "/v1.0/state/:store/transaction", s.transactState)
		e.Add(m, "/v1.0-alpha1/state/:store/query", s.queryState)
		e.Add(m, "/v1.0-beta1/state/:store/query", s.queryState)
	}
	e.Any("/v1.0/invoke/:appid/method/*", s.invoke)

	e.POST("/v1.0/publish/:pubsub/*", s.publish)
	e.POST("/v1.0-alpha1/publish/bulk/:pubsub/*", s.bulkPublish)

	e.GET("/v1.0/state/:store/:key", s.getState)
	e.DELETE("/v1.0/state/:store/:key", s.deleteState)
	return e
}

type server struct {
	cfg    Config
	logger *slog.Logger
}

// public paths need no app token.
func public(path string) bool {
	return path == "/v1.0/healthz" || path == "/v1.0/healthz/outbound" || path == "/.well-known/jwks.json" || path == bundlePath
}

// bundlePath serves the trust bundle (PEM) without a token.
const bundlePath = "/v1.0-alpha1/identity/bundle"

// token finds the app token the way the Dapr SDKs send it, or as a bearer token.
func token(h http.Header) string {
	if t := h.Get("dapr-api-token"); t != "" {
		return t
	}
	if a := h.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

func (s *server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if public(r.URL.Path) {
			return next(c)
		}
		p, err := s.cfg.Auth.AuthenticateRequest(r.Context(), token(r.Header), r.TLS)
		if err != nil {
			return blocks.ErrUnauthenticated("invalid api token: %v", err)
		}
		if s.cfg.Quota != nil {
			maxBytes, release, err := s.cfg.Quota.Admit(r.Context(), p, r.ContentLength)
			if err != nil {
				return err
			}
			defer release()
			if maxBytes > 0 && !strings.HasPrefix(r.URL.Path, invokePrefix) {
				r.Body = http.MaxBytesReader(c.Response(), r.Body, maxBytes)
			}
		}
		c.SetRequest(r.WithContext(auth.WithPrincipal(r.Context(), p)))
		return next(c)
	}
}

func principal(c echo.Context) tenants.Principal {
	p, _ := auth.PrincipalFrom(c.Request().Context())
	return p
}

func (s *server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if strings.HasPrefix(r.URL.Path, invokePrefix) {
			return next(c) // invocation bodies stream through, whatever their size
		}
		if r.ContentLength > s.cfg.MaxBodyBytes {
			return blocks.ErrBodyTooLarge(s.cfg.MaxBodyBytes)
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, s.cfg.MaxBodyBytes)
		return next(c)
	}
}

func (s *server) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				err = blocks.As(panicError{v})
			}
		}()
		return next(c)
	}
}

type panicError struct{ v any }

func (p panicError) Error() string { return "panic: " + slog.AnyValue(p.v).String() }

// readBody reads the request body, mapping an oversized one to 413.
func (s *server) readBody(c echo.Context) ([]byte, error) {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, blocks.ErrBodyTooLarge(tooLarge.Limit)
		}
		return nil, blocks.ErrMalformedRequest("reading the request body: %v", err)
	}
	return body, nil
}
