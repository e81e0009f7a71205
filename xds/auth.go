package xds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
)

// credential is what a stream authenticated as: an app of a tenant.
type credential struct {
	tenant tenants.ID
	app    string
	// tokenID is the join token's id; empty when the credential is an SVID.
	tokenID string
}

func (c credential) String() string {
	if c.tokenID != "" {
		return "join token " + c.tokenID
	}
	return "svid"
}

// streamKey names a stream in go-control-plane's callbacks: SotW and delta
// streams are counted apart.
type streamKey struct {
	delta bool
	id    int64
}

// stream is an authenticated ADS stream.
type stream struct {
	cred credential
	ctx  context.Context
	// end stops the stream with an error (a gRPC status).
	cancel context.CancelCauseFunc
	// Guarded by Server.mu.
	node *node
	sent map[string]sentResponse
}

// ended marks a stream the server ended, with the status to return.
type ended struct{ err error }

func (e ended) Error() string { return e.err.Error() }

func (st *stream) end(err error) { st.cancel(ended{err}) }

type sentResponse struct{ nonce, version string }

type streamCtxKey struct{}

// adsService serves the AggregatedDiscoveryService: it authenticates each
// stream before go-control-plane sees it.
type adsService struct {
	s     *Server
	inner serverv3.Server
}

var _ discovery.AggregatedDiscoveryServiceServer = (*adsService)(nil)

func (a *adsService) StreamAggregatedResources(st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return a.s.serveStream(st.Context(), func(ctx context.Context) error {
		return a.inner.StreamAggregatedResources(sotwStream{st, ctx})
	})
}

func (a *adsService) DeltaAggregatedResources(st discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	return a.s.serveStream(st.Context(), func(ctx context.Context) error {
		return a.inner.DeltaAggregatedResources(deltaStream{st, ctx})
	})
}

type sotwStream struct {
	discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer
	ctx context.Context
}

func (s sotwStream) Context() context.Context { return s.ctx }

type deltaStream struct {
	discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer
	ctx context.Context
}

func (s deltaStream) Context() context.Context { return s.ctx }

// serveStream authenticates a stream, then serves it with serve under a
// context that carries the stream's state and that the server can end
// (a revoked token, a deleted app). A stream that fails authentication
// ends before any response.
func (s *Server) serveStream(ctx context.Context, serve func(context.Context) error) error {
	cred, err := s.authenticate(ctx)
	if err != nil {
		from := ""
		if p, ok := peer.FromContext(ctx); ok {
			from = p.Addr.String()
		}
		s.logger.Info("refused an xDS stream", "from", from, "err", err)
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	st := &stream{cred: cred, cancel: cancel, sent: map[string]sentResponse{}}
	ctx = context.WithValue(ctx, streamCtxKey{}, st)
	st.ctx = ctx
	done := make(chan error, 1)
	go func() { done <- serve(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		var e ended
		if errors.As(context.Cause(ctx), &e) {
			// The handler's return ends the gRPC stream, which ends
			// go-control-plane's reads and so its goroutine.
			return e.err
		}
		// The client left: go-control-plane sees it too.
		return <-done
	}
}

// open registers a stream that serveStream authenticated.
func (s *Server) open(ctx context.Context, key streamKey) error {
	st, _ := ctx.Value(streamCtxKey{}).(*stream)
	if st == nil {
		return status.Error(codes.Unauthenticated, "the stream is not authenticated")
	}
	s.mu.Lock()
	s.streams[key] = st
	s.mu.Unlock()
	return nil
}

// authenticate establishes the app a stream speaks for: a join token in
// "authorization: Bearer <token>", or the SVID the client presented on a
// TLS connection. When both are given they must name the same app.
func (s *Server) authenticate(ctx context.Context) (credential, error) {
	var cred credential
	found := false
	md, _ := metadata.FromIncomingContext(ctx)
	if vals := md.Get("authorization"); len(vals) > 0 {
		if len(vals) > 1 {
			return cred, status.Error(codes.Unauthenticated, "more than one authorization header")
		}
		token, ok := cutPrefixFold(vals[0], "Bearer ")
		if !ok {
			return cred, status.Error(codes.Unauthenticated, "the authorization header is not a Bearer token")
		}
		if s.cfg.JoinTokens == nil {
			return cred, status.Error(codes.Unauthenticated, "this server accepts no join tokens: present an SVID")
		}
		jt, err := s.cfg.JoinTokens.VerifyJoinToken(ctx, strings.TrimSpace(token))
		switch {
		case errors.Is(err, tenantspg.ErrInvalidJoinToken):
			return cred, status.Error(codes.Unauthenticated, err.Error())
		case err != nil:
			s.logger.Error("verifying a join token", "err", err)
			return cred, status.Error(codes.Unavailable, "the join token could not be verified; try again")
		}
		cred, found = credential{tenant: jt.Tenant, app: jt.AppID, tokenID: jt.ID}, true
	}
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			// Verified again, whatever the listener's tls.Config did.
			id, err := s.cfg.CA.Verify(ti.State.PeerCertificates)
			if err != nil {
				return cred, status.Errorf(codes.Unauthenticated, "client certificate: %v", err)
			}
			pr, err := authca.PrincipalOf(id, s.b.td)
			if err != nil {
				return cred, status.Errorf(codes.Unauthenticated, "client certificate: %v", err)
			}
			if found && (pr.Tenant != cred.tenant || pr.AppID != cred.app) {
				return cred, status.Error(codes.PermissionDenied, "the join token and the client certificate are for different apps")
			}
			if !found {
				cred, found = credential{tenant: pr.Tenant, app: pr.AppID}, true
			}
		}
	}
	if !found {
		return cred, status.Error(codes.Unauthenticated,
			"no credential: send a join token as \"authorization: Bearer <token>\", or connect over TLS with the app's SVID")
	}
	return cred, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

// minRenewal is the least time between two renewals of a node's SVID.
const minRenewal = 10 * time.Second

// issued is a node's SVID as SDS serves it.
type issued struct {
	resources []types.Resource
	version   string
	bundle    []byte
	notAfter  time.Time
	renewAt   time.Time
}

// due reports whether the SVID must be replaced: two thirds of its life
// have passed, or the trust bundle changed (a CA rotation).
func (i *issued) due(now time.Time, bundle []byte) bool {
	return !now.Before(i.renewAt) || !bytes.Equal(i.bundle, bundle)
}

// issue makes a new SVID for n's app and its SDS secrets.
func (s *Server) issue(ctx context.Context, n *node) (*issued, error) {
	id, err := authca.AppID(s.b.td, tenants.Principal{Tenant: n.Tenant, AppID: n.App})
	if err != nil {
		return nil, err
	}
	svid, err := s.cfg.CA.NewSVID(ctx, id, s.cfg.SVIDTTL)
	if err != nil {
		return nil, fmt.Errorf("issuing an SVID for %s: %w", id, err)
	}
	chainPEM, keyPEM, err := svid.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encoding the SVID of %s: %w", id, err)
	}
	bundle := s.cfg.CA.BundlePEM()
	leaf := svid.Certificates[0]
	// Two thirds of the life left from now (the CA backdates NotBefore
	// for clock skew), and never sooner than minRenewal, so that a clock
	// at odds with the CA's cannot make a loop of renewals.
	now := s.cfg.Clock()
	renewAt := now.Add(max(leaf.NotAfter.Sub(now)*2/3, minRenewal))
	out := &issued{
		bundle:   bundle,
		notAfter: leaf.NotAfter,
		renewAt:  renewAt,
		version:  hashStrings(leaf.SerialNumber.String(), string(bundle)),
	}
	for _, sec := range s.b.secrets(id.String(), chainPEM, keyPEM, bundle) {
		if err := ValidateDeep(sec); err != nil {
			return nil, fmt.Errorf("secret %s: %w", sec.GetName(), err)
		}
		out.resources = append(out.resources, sec)
	}
	return out, nil
}
