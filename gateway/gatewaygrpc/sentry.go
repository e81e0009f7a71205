package gatewaygrpc

import (
	"context"
	"errors"
	"net/http"
	"time"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/blocks"
	"github.com/blockgate/blockgate/tenants"
)

// Identity is the gateway's certificate authority as the gRPC API serves
// it (authca.CA).
type Identity interface {
	IssueForApp(ctx context.Context, p tenants.Principal, csr []byte, ttl time.Duration) (*authca.Issued, error)
	TrustDomain() spiffeid.TrustDomain
}

// sentryMethod is authenticated by SignCertificate itself: Dapr's clients
// put the credential in the request's token field.
const sentryMethod = "/dapr.proto.sentry.v1.CA/SignCertificate"

// sentry serves Dapr's certificate authority API (dapr.proto.sentry.v1.CA)
// on the gateway's gRPC port, so a client written for Dapr's Sentry gets
// its SVID from the gateway: the request's token (or dapr-api-token
// metadata) is the app token that proves which app is asking; the
// request's id, namespace and trust domain, when given, must agree with it.
type sentry struct {
	sentryv1.UnimplementedCAServer
	s *Server
}

func (c sentry) SignCertificate(ctx context.Context, req *sentryv1.SignCertificateRequest) (*sentryv1.SignCertificateResponse, error) {
	if c.s.cfg.Identity == nil {
		return nil, status.Error(codes.Unimplemented, "this gateway issues no certificates")
	}
	tok := req.GetToken()
	if tok == "" {
		tok = tokenFrom(ctx)
	}
	p, err := c.s.cfg.Auth.AuthenticateRequest(ctx, tok, tlsState(ctx))
	if err != nil {
		return nil, blocks.ErrUnauthenticated("invalid api token: %v", err)
	}
	if id := req.GetId(); id != "" && id != p.AppID {
		return nil, blocks.New(blocks.Forbidden, http.StatusForbidden, "ERR_IDENTITY",
			"the token is app %s's; it cannot get a certificate for app %s", p.AppID, id)
	}
	if ns := req.GetNamespace(); ns != "" && ns != string(p.Tenant) {
		return nil, blocks.New(blocks.Forbidden, http.StatusForbidden, "ERR_IDENTITY",
			"the token is of tenant %s; namespace %s is another tenant", p.Tenant, ns)
	}
	if td := req.GetTrustDomain(); td != "" && td != c.s.cfg.Identity.TrustDomain().Name() {
		return nil, blocks.New(blocks.InvalidArgument, http.StatusBadRequest, "ERR_IDENTITY",
			"trust domain %s is not the gateway's (%s)", td, c.s.cfg.Identity.TrustDomain().Name())
	}
	issued, err := c.s.cfg.Identity.IssueForApp(ctx, p, req.GetCertificateSigningRequest(), 0)
	switch {
	case errors.Is(err, authca.ErrBadCSR), errors.Is(err, authca.ErrBadTTL):
		return nil, blocks.New(blocks.InvalidArgument, http.StatusBadRequest, "ERR_IDENTITY_CSR", "%s", err.Error())
	case err != nil:
		return nil, blocks.ErrUnavailable("the certificate authority", err)
	}
	return &sentryv1.SignCertificateResponse{
		WorkloadCertificate:    issued.ChainPEM,
		TrustChainCertificates: [][]byte{issued.BundlePEM},
		ValidUntil:             timestamppb.New(issued.NotAfter),
	}, nil
}
