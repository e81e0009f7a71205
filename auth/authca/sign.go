package authca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// maxCSRLen bounds what SignCSR parses. A CSR with an RSA-8192 key and a
// few extensions is about 1.5 KB.
const maxCSRLen = 16 << 10

// Accepted RSA modulus sizes. The upper bound keeps a hostile key from
// making the signature check costly.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// minLeafLifetime is the shortest certificate the CA signs: an intermediate
// closer to its end than this signs nothing (Run renews it long before).
const minLeafLifetime = time.Minute

// SignCSR signs an X.509-SVID for id with the public key of the PKCS #10
// request csrDER, and returns the chain [leaf, intermediate]; the root is
// in Bundle. The request's signature must verify and its key must be ECDSA
// P-256 or P-384, RSA of 2048 to 8192 bits, or Ed25519; anything else is
// refused with an error matching ErrBadCSR. Everything the request says
// about names (subject, SANs, extensions) is ignored: id comes from the
// caller's authenticated identity and must be in the CA's trust domain.
//
// The leaf carries id as its only SAN and an empty subject, key usage
// digitalSignature (and keyEncipherment for an RSA key), extended key
// usage server and client auth. It is valid from a minute ago until
// now + ttl, cut short by the intermediate's end; ttl <= 0 means
// Config.SVIDTTL, and above Config.MaxSVIDTTL is refused (ErrBadTTL).
//
// It takes no lock and does not touch the store; it costs one signature
// check and one signature. ctx is checked on entry only.
func (c *CA) SignCSR(ctx context.Context, csrDER []byte, id spiffeid.ID, ttl time.Duration) ([]*x509.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(csrDER) == 0 {
		return nil, badCSR("empty")
	}
	if len(csrDER) > maxCSRLen {
		return nil, badCSR("%d bytes, over the limit of %d", len(csrDER), maxCSRLen)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, badCSR("%v", err)
	}
	// The key is checked before the signature so that an oversized RSA key
	// costs nothing.
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, badCSR("signature does not verify: %v", err)
	}
	if ttl, err = c.lifetime(ttl); err != nil {
		return nil, err
	}
	leaf, inter, err := c.issue(c.snap.Load(), csr.PublicKey, id, nil, nil, ttl)
	if err != nil {
		return nil, err
	}
	return []*x509.Certificate{leaf, inter}, nil
}

// NewSVID makes a key pair for id and signs its X.509-SVID, for a holder
// that cannot make its own key (an Envoy fed over SDS gets both). ttl is as
// for SignCSR. The SVID, a fresh ECDSA P-256 key included, belongs to the
// caller. It takes no lock.
func (c *CA) NewSVID(ctx context.Context, id spiffeid.ID, ttl time.Duration) (*x509svid.SVID, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ttl, err := c.lifetime(ttl)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating SVID key: %w", err)
	}
	leaf, inter, err := c.issue(c.snap.Load(), key.Public(), id, nil, nil, ttl)
	if err != nil {
		return nil, err
	}
	return &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{leaf, inter}, PrivateKey: key}, nil
}

// ServerCertificate makes a key pair and a certificate for the gateway's
// own TLS listeners: SPIFFE ID spiffe://<trust-domain>/gateway (GatewayID)
// plus dnsNames and ips as SANs, server and client auth, valid for
// Config.SVIDTTL. The chain in it is [leaf, intermediate]. It takes no
// lock; a listener should use GetCertificate, which reuses the certificate
// until it needs renewing.
func (c *CA) ServerCertificate(dnsNames []string, ips []net.IP) (*tls.Certificate, error) {
	return c.serverCertificate(c.snap.Load(), dnsNames, ips)
}

func (c *CA) serverCertificate(s *snapshot, dnsNames []string, ips []net.IP) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating server key: %w", err)
	}
	leaf, inter, err := c.issue(s, key.Public(), GatewayID(c.cfg.TrustDomain), dnsNames, ips, c.cfg.SVIDTTL)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{
		Certificate: [][]byte{leaf.Raw, inter.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}

func (c *CA) lifetime(ttl time.Duration) (time.Duration, error) {
	switch {
	case ttl <= 0:
		return c.cfg.SVIDTTL, nil
	case ttl > c.cfg.MaxSVIDTTL:
		return 0, fmt.Errorf("%w: %s is over %s", ErrBadTTL, ttl, c.cfg.MaxSVIDTTL)
	case ttl < minLeafLifetime:
		return 0, fmt.Errorf("%w: %s is under %s", ErrBadTTL, ttl, minLeafLifetime)
	}
	return ttl, nil
}

func checkPublicKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return badCSR("ECDSA curve %s is not accepted; use P-256 or P-384", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < minRSABits || n > maxRSABits {
			return badCSR("RSA key of %d bits is not accepted; use %d to %d bits", n, minRSABits, maxRSABits)
		}
	case ed25519.PublicKey:
	default:
		return badCSR("public key of type %T is not accepted; use ECDSA P-256 or P-384, RSA or Ed25519", pub)
	}
	return nil
}

// issue signs a leaf for pub with the active generation of s.
func (c *CA) issue(s *snapshot, pub crypto.PublicKey, id spiffeid.ID, dnsNames []string, ips []net.IP, ttl time.Duration) (leaf, inter *x509.Certificate, err error) {
	if id.IsZero() || !id.MemberOf(c.cfg.TrustDomain) {
		return nil, nil, fmt.Errorf("signing an SVID for %q: not in trust domain %q", id, c.cfg.TrustDomain.Name())
	}
	if s.active == nil {
		return nil, nil, fmt.Errorf("signing an SVID for %s: %w (Load has not succeeded)", id, ErrNoAuthority)
	}
	inter = s.active.inter
	now := c.cfg.Clock()
	notAfter := earlier(now.Add(ttl), inter.NotAfter)
	if notAfter.Sub(now) < minLeafLifetime {
		return nil, nil, fmt.Errorf("signing an SVID for %s: %w: CA generation %s ends at %s; rotate the CA",
			id, ErrNoAuthority, s.active.id, inter.NotAfter.Format(time.RFC3339))
	}
	ku := x509.KeyUsageDigitalSignature
	if _, ok := pub.(*rsa.PublicKey); ok {
		ku |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serialNumber(),
		NotBefore:             later(now.Add(-backdate), inter.NotBefore),
		NotAfter:              notAfter,
		KeyUsage:              ku,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.URL()},
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, inter, pub, s.signer)
	if err != nil {
		return nil, nil, fmt.Errorf("signing an SVID for %s: %w", id, err)
	}
	if leaf, err = x509.ParseCertificate(der); err != nil {
		return nil, nil, fmt.Errorf("signing an SVID for %s: %w", id, err)
	}
	return leaf, inter, nil
}
