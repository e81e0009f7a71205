package authca

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/blockgate/blockgate/internal/lograte"
)

// maxPeerChain bounds the certificates VerifyPeerCertificate parses: a
// leaf and an intermediate, with room for a longer operator chain.
const maxPeerChain = 4

// Verify checks that chain ([leaf, intermediates...]) is an X.509-SVID of
// the CA's trust domain that chains to a root of Bundle at the CA's clock,
// and returns its SPIFFE ID. It uses go-spiffe's x509svid.Verify, which
// also refuses a leaf that is a CA or may sign certificates. Every refusal
// matches ErrUntrusted. It takes no lock; it costs a chain verification.
func (c *CA) Verify(chain []*x509.Certificate) (spiffeid.ID, error) {
	now := c.cfg.Clock()
	b, _ := c.bundleAt(c.snap.Load(), now)
	id, _, err := x509svid.Verify(chain, b, x509svid.WithTime(now))
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	return id, nil
}

// VerifyPeerCertificate is a tls.Config.VerifyPeerCertificate for a server
// that requests but does not require a client certificate: no certificate
// passes (the request then needs a token), and a certificate that does not
// Verify fails the handshake, so that a peer with a bad certificate is
// refused rather than treated as anonymous. It checks against the bundle
// of the moment, so rotation and Reload apply to the next handshake
// without a restart. It is safe for concurrent use.
func (c *CA) VerifyPeerCertificate(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	if len(rawCerts) == 0 {
		return nil
	}
	_, err := c.verifyRaw(rawCerts)
	return err
}

// verifyRaw parses a peer's chain as the handshake received it and
// Verifies it.
func (c *CA) verifyRaw(rawCerts [][]byte) (spiffeid.ID, error) {
	if len(rawCerts) > maxPeerChain {
		return spiffeid.ID{}, fmt.Errorf("%w: peer sent %d certificates, over the limit of %d", ErrUntrusted, len(rawCerts), maxPeerChain)
	}
	chain := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		cert, err := x509.ParseCertificate(raw)
		if err != nil {
			return spiffeid.ID{}, fmt.Errorf("%w: parsing peer certificate: %w", ErrUntrusted, err)
		}
		chain[i] = cert
	}
	return c.Verify(chain)
}

// RouteTLSConfig is the tls.Config of the routes between the gateway
// nodes' embedded NATS servers, one config for both ends of a route (NATS
// uses it to accept routes and, cloned, to dial them). Each end presents
// the gateway's certificate (GatewayID, from GetCertificate) and requires
// the other's: a chain to the bundle of the moment whose SPIFFE ID is
// GatewayID. Any other identity of the trust domain is refused, an app's
// SVID from this same CA included, so only gateway nodes sharing the CA
// (through the registry) join the cluster and read its messages.
//
// The standard library's chain and host name checks are off
// (InsecureSkipVerify) because VerifyPeerCertificate makes the SPIFFE
// check in their place: routes are dialled by IP or host name, which no
// gateway certificate needs to carry, and a rotation reaches the next
// handshake without a restart. Rotation and renewal work as for
// ServerTLSConfig.
func (c *CA) RouteTLSConfig() *tls.Config {
	get := c.GetCertificate(nil, nil)
	gateway := GatewayID(c.cfg.TrustDomain)
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: get,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return get(nil)
		},
		ClientAuth:         tls.RequireAnyClientCert,
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			if len(rawCerts) == 0 {
				return fmt.Errorf("%w: the peer sent no certificate", ErrUntrusted)
			}
			id, err := c.verifyRaw(rawCerts)
			if err != nil {
				return err
			}
			if id != gateway {
				return fmt.Errorf("%w: %s is not a gateway node (want %s)", ErrUntrusted, id, gateway)
			}
			return nil
		},
	}
}

// PeerID is the SPIFFE ID of the client certificate of a connection whose
// server tls.Config came from ServerTLSConfig (or uses
// VerifyPeerCertificate): ok is false when the client sent none. The TLS
// handshake already verified the certificate, so PeerID only reads it and
// is cheap enough for every request. Callers pass the HTTP request's
// r.TLS or gRPC's credentials.TLSInfo.State, and map the ID to a
// tenants.Principal with PrincipalOf.
//
// PeerID must not be used with a tls.Config that does not verify client
// certificates this way: it trusts the handshake, as go-spiffe's
// spiffetls.PeerIDFromConnectionState does.
func PeerID(cs tls.ConnectionState) (spiffeid.ID, bool) {
	if !cs.HandshakeComplete || len(cs.PeerCertificates) == 0 {
		return spiffeid.ID{}, false
	}
	id, err := x509svid.IDFromCert(cs.PeerCertificates[0])
	if err != nil {
		return spiffeid.ID{}, false
	}
	return id, true
}

// ServerTLSConfig is the tls.Config of a gateway listener (HTTP, gRPC,
// xDS): it serves a certificate from GetCertificate(dnsNames, ips), asks
// for a client certificate without requiring one (tokens remain allowed),
// and verifies one that is given with VerifyPeerCertificate; read the
// client's identity with PeerID. The config is the caller's to adjust
// (NextProtos, MinVersion), except the fields named here.
func (c *CA) ServerTLSConfig(dnsNames []string, ips []net.IP) *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS12,
		GetCertificate:        c.GetCertificate(dnsNames, ips),
		ClientAuth:            tls.RequestClientCert,
		VerifyPeerCertificate: c.VerifyPeerCertificate,
	}
}

// GetCertificate returns a tls.Config.GetCertificate that serves the
// gateway's certificate for dnsNames and ips (see ServerCertificate). It
// keeps the certificate until half its lifetime has passed, and then issues
// a new one, from the generation active then, at the next handshake. A
// rotation therefore reaches the serving certificate at its next renewal,
// not at once: clients holding the previous bundle keep connecting, and
// have until then to fetch the new one (it holds both roots). If
// issuing fails while the old certificate is still valid, the old one is
// served and the failure logged. Handshakes between renewals take no lock.
func (c *CA) GetCertificate(dnsNames []string, ips []net.IP) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	sc := &serverCert{
		ca:   c,
		dns:  slices.Clone(dnsNames),
		ips:  slices.Clone(ips),
		logs: lograte.Limiter{Every: time.Minute},
	}
	return sc.get
}

type serverCert struct {
	ca  *CA
	dns []string
	ips []net.IP

	cur  atomic.Pointer[issuedCert]
	mu   sync.Mutex // serialises renewals, guards logs
	logs lograte.Limiter
}

type issuedCert struct {
	cert       *tls.Certificate
	generation string
	renewAt    time.Time
}

// fresh reports whether ic may still be served. A certificate of a
// retired generation stays in use until its renewal time: its root is in
// the bundle for longer than that, and clients that have not fetched the
// new bundle yet keep connecting. Renewal then moves it to the active
// generation.
func (sc *serverCert) fresh(ic *issuedCert, now time.Time) bool {
	return ic != nil && sc.ca.snap.Load().active != nil && now.Before(ic.renewAt)
}

func (sc *serverCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	now := sc.ca.cfg.Clock()
	if ic := sc.cur.Load(); sc.fresh(ic, now) {
		return ic.cert, nil
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	ic := sc.cur.Load()
	if sc.fresh(ic, now) {
		return ic.cert, nil
	}
	s := sc.ca.snap.Load()
	cert, err := sc.ca.serverCertificate(s, sc.dns, sc.ips)
	if err != nil {
		if ic != nil && now.Before(ic.cert.Leaf.NotAfter) {
			if n, ok := sc.logs.Allow(now); ok {
				sc.ca.logger.Warn("renewing the gateway's TLS certificate; serving the current one", "err", err, "suppressed", n)
			}
			return ic.cert, nil
		}
		return nil, err
	}
	l := cert.Leaf
	sc.cur.Store(&issuedCert{cert: cert, generation: s.active.id, renewAt: l.NotBefore.Add(l.NotAfter.Sub(l.NotBefore) / 2)})
	return cert, nil
}
