package gatewayhttp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/blocks"
	"github.com/blockgate/blockgate/tenants"
)

// Identity is the gateway's certificate authority as the HTTP API serves
// it (authca.CA).
type Identity interface {
	IssueForApp(ctx context.Context, p tenants.Principal, csr []byte, ttl time.Duration) (*authca.Issued, error)
	BundlePEM() []byte
}

// svidRequest is the body of POST /v1.0-alpha1/identity/svid in JSON; a
// body that is not JSON is the CSR itself (PEM or DER).
type svidRequest struct {
	CSR        string `json:"csr"`
	TTLSeconds int64  `json:"ttlSeconds,omitempty"`
}

type svidResponse struct {
	SpiffeID         string    `json:"spiffeId"`
	CertificateChain string    `json:"certificateChain"`
	TrustBundle      string    `json:"trustBundle"`
	ExpiresAt        time.Time `json:"expiresAt"`
}

// issueSVID signs the caller's CSR for the app its token names: the app's
// X.509 SVID, spiffe://<trust-domain>/tenant/<tenant>/app/<app-id>.
func (s *server) issueSVID(c echo.Context) error {
	if s.cfg.Identity == nil {
		return blocks.New(blocks.Unimplemented, http.StatusNotImplemented, "ERR_IDENTITY", "this gateway issues no certificates")
	}
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return blocks.ErrMalformedRequest("reading the body: %v", err)
	}
	csr, ttl := body, time.Duration(0)
	if trimmed := strings.TrimSpace(string(body)); strings.HasPrefix(trimmed, "{") {
		var req svidRequest
		dec := json.NewDecoder(strings.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return blocks.ErrMalformedRequest("the body is neither a CSR nor {\"csr\": \"<PEM>\", \"ttlSeconds\": N}: %v", err)
		}
		if req.TTLSeconds < 0 {
			return blocks.ErrMalformedRequest("ttlSeconds must not be negative")
		}
		csr, ttl = []byte(req.CSR), time.Duration(req.TTLSeconds)*time.Second
	}
	issued, err := s.cfg.Identity.IssueForApp(c.Request().Context(), principal(c), csr, ttl)
	switch {
	case errors.Is(err, authca.ErrBadCSR), errors.Is(err, authca.ErrBadTTL):
		return blocks.New(blocks.InvalidArgument, http.StatusBadRequest, "ERR_IDENTITY_CSR", "%s", err.Error())
	case err != nil:
		return blocks.ErrUnavailable("the certificate authority", err)
	}
	return c.JSON(http.StatusOK, svidResponse{
		SpiffeID: issued.ID.String(), CertificateChain: string(issued.ChainPEM),
		TrustBundle: string(issued.BundlePEM), ExpiresAt: issued.NotAfter,
	})
}

// trustBundle serves the roots that verify every app's SVID, as PEM.
func (s *server) trustBundle(c echo.Context) error {
	if s.cfg.Identity == nil {
		return blocks.New(blocks.Unimplemented, http.StatusNotImplemented, "ERR_IDENTITY", "this gateway issues no certificates")
	}
	return c.Blob(http.StatusOK, "application/x-pem-file", s.cfg.Identity.BundlePEM())
}
