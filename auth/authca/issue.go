package authca

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/blockgate/blockgate/tenants"
)

// Issued is an app's signed certificate, in the forms the transports hand
// out.
type Issued struct {
	ID spiffeid.ID
	// Chain is the leaf followed by the intermediate.
	Chain []*x509.Certificate
	// ChainPEM is Chain as PEM blocks; BundlePEM the trust bundle's roots.
	ChainPEM, BundlePEM []byte
	NotAfter            time.Time
}

// IssueForApp signs a CSR for the app p, whose identity the caller has
// already established (its app token): the certificate's only name is p's
// SPIFFE ID, whatever the CSR asks for. csr may be PEM ("CERTIFICATE
// REQUEST") or DER. Errors: ErrBadCSR and ErrBadTTL for the caller's
// mistakes, others for the CA's. Safe for concurrent use.
func (c *CA) IssueForApp(ctx context.Context, p tenants.Principal, csr []byte, ttl time.Duration) (*Issued, error) {
	id, err := AppID(c.TrustDomain(), p)
	if err != nil {
		return nil, err
	}
	der := csr
	if b, _ := pem.Decode(bytes.TrimSpace(csr)); b != nil {
		if b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST" {
			return nil, badCSR("the PEM block is a %q, not a CERTIFICATE REQUEST", b.Type)
		}
		der = b.Bytes
	}
	chain, err := c.SignCSR(ctx, der, id, ttl)
	if err != nil {
		return nil, err
	}
	out := &Issued{ID: id, Chain: chain, BundlePEM: c.BundlePEM(), NotAfter: chain[0].NotAfter}
	for _, cert := range chain {
		out.ChainPEM = append(out.ChainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})...)
	}
	return out, nil
}
