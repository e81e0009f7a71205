package authca_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/auth/authca/authcatest"
)

// csr makes a request that asks for much more than the CA grants: a
// subject, DNS, IP, email and URI SANs. All of it must be ignored.
func csr(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	evil, _ := url.Parse("spiffe://example.org/gateway")
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "admin", Organization: []string{"root"}},
		DNSNames:       []string{"gateway.example.org"},
		IPAddresses:    []net.IP{net.IPv4(10, 0, 0, 1)},
		EmailAddresses: []string{"admin@example.org"},
		URIs:           []*url.URL{evil},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func ecKey(t testing.TB, c elliptic.Curve) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rsaKey(t testing.TB, bits int) crypto.Signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func edKey(t testing.TB) crypto.Signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignCSR(t *testing.T) {
	clk := newClock()
	ca := newCA(t, nil, clk, authca.Config{})
	id := appID(t, "acme", "orders")
	tests := []struct {
		name string
		key  crypto.Signer
		ku   x509.KeyUsage
	}{
		{name: "ECDSA P-256", key: ecKey(t, elliptic.P256()), ku: x509.KeyUsageDigitalSignature},
		{name: "ECDSA P-384", key: ecKey(t, elliptic.P384()), ku: x509.KeyUsageDigitalSignature},
		{name: "RSA 2048", key: rsaKey(t, 2048), ku: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment},
		{name: "Ed25519", key: edKey(t), ku: x509.KeyUsageDigitalSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := clk.Now()
			chain, err := ca.SignCSR(t.Context(), csr(t, tt.key), id, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if len(chain) != 2 {
				t.Fatalf("chain of %d certificates, want [leaf, intermediate]", len(chain))
			}
			got, _, err := x509svid.Verify(chain, ca.Bundle(), x509svid.WithTime(now))
			if err != nil || got != id {
				t.Fatalf("go-spiffe Verify = %v, %v; want %v", got, err, id)
			}
			leaf := chain[0]
			pub, _ := tt.key.Public().(interface{ Equal(crypto.PublicKey) bool })
			switch {
			case !pub.Equal(leaf.PublicKey):
				t.Error("leaf is not for the request's key")
			case len(leaf.URIs) != 1 || leaf.URIs[0].String() != id.String():
				t.Errorf("leaf URIs %v, want only %s", leaf.URIs, id)
			case len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0:
				t.Errorf("leaf took SANs from the request: %v %v %v", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
			case leaf.Subject.String() != "":
				t.Errorf("leaf took the subject %q from the request", leaf.Subject)
			case leaf.IsCA:
				t.Error("leaf is a CA")
			case leaf.KeyUsage != tt.ku:
				t.Errorf("key usage %b, want %b", leaf.KeyUsage, tt.ku)
			case !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}):
				t.Errorf("extended key usage %v", leaf.ExtKeyUsage)
			case !leaf.NotBefore.Before(now) || now.Sub(leaf.NotBefore) > 2*time.Minute:
				t.Errorf("NotBefore %v is not slightly before now %v", leaf.NotBefore, now)
			case !leaf.NotAfter.Equal(now.Add(time.Hour).Truncate(time.Second)):
				t.Errorf("NotAfter %v, want %v", leaf.NotAfter, now.Add(time.Hour))
			}
		})
	}
}

func TestSignCSRLifetime(t *testing.T) {
	clk := newClock()
	ca := newCA(t, nil, clk, authca.Config{})
	id := appID(t, "acme", "orders")
	req := csr(t, ecKey(t, elliptic.P256()))
	sign := func(t *testing.T, ttl time.Duration) *x509.Certificate {
		t.Helper()
		chain, err := ca.SignCSR(t.Context(), req, id, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return chain[0]
	}
	tests := []struct {
		name string
		ttl  time.Duration
		want time.Duration
	}{
		{name: "zero is the default", ttl: 0, want: authca.DefaultSVIDTTL},
		{name: "negative is the default", ttl: -time.Hour, want: authca.DefaultSVIDTTL},
		{name: "as asked", ttl: 90 * time.Minute, want: 90 * time.Minute},
		{name: "the maximum", ttl: 7 * authca.DefaultSVIDTTL, want: 7 * authca.DefaultSVIDTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := sign(t, tt.ttl)
			if want := clk.Now().Add(tt.want).Truncate(time.Second); !leaf.NotAfter.Equal(want) {
				t.Fatalf("NotAfter %v, want %v", leaf.NotAfter, want)
			}
		})
	}
	t.Run("over the maximum", func(t *testing.T) {
		_, err := ca.SignCSR(t.Context(), req, id, 7*authca.DefaultSVIDTTL+time.Second)
		if !errors.Is(err, authca.ErrBadTTL) {
			t.Fatalf("SignCSR = %v, want ErrBadTTL", err)
		}
	})
	t.Run("cut short by the intermediate", func(t *testing.T) {
		chain, err := ca.SignCSR(t.Context(), req, id, 0)
		if err != nil {
			t.Fatal(err)
		}
		interNotAfter := chain[1].NotAfter
		clk.Set(interNotAfter.Add(-3 * time.Hour))
		if leaf := sign(t, 0); !leaf.NotAfter.Equal(interNotAfter) {
			t.Fatalf("NotAfter %v, want the intermediate's %v", leaf.NotAfter, interNotAfter)
		}
		clk.Set(interNotAfter)
		if _, err := ca.SignCSR(t.Context(), req, id, 0); !errors.Is(err, authca.ErrNoAuthority) {
			t.Fatalf("signing with an expired intermediate = %v, want ErrNoAuthority", err)
		}
	})
}

func TestSignCSRRefuses(t *testing.T) {
	ca := newCA(t, nil, nil, authca.Config{})
	id := appID(t, "acme", "orders")
	good := csr(t, ecKey(t, elliptic.P256()))
	badSig := slices.Clone(good)
	badSig[len(badSig)-3] ^= 0x01 // inside the signature BIT STRING

	tests := []struct {
		name string
		der  []byte
	}{
		{name: "empty", der: nil},
		{name: "garbage", der: []byte("not a CSR at all")},
		{name: "truncated", der: good[:len(good)-10]},
		{name: "trailing data", der: append(slices.Clone(good), 0)},
		{name: "bad signature", der: badSig},
		{name: "a certificate", der: newSVID(t, ca, id, 0).Certificates[0].Raw},
		{name: "ECDSA P-521", der: csr(t, ecKey(t, elliptic.P521()))},
		{name: "RSA 1024", der: csrRSA1024(t)},
		{name: "too long", der: make([]byte, 17<<10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chain, err := ca.SignCSR(t.Context(), tt.der, id, 0)
			if !errors.Is(err, authca.ErrBadCSR) || chain != nil {
				t.Fatalf("SignCSR = %d certificates, %v; want ErrBadCSR", len(chain), err)
			}
		})
	}

	others := []struct {
		name string
		id   spiffeid.ID
	}{
		{name: "another trust domain", id: spiffeid.RequireFromPath(otherTD, "/tenant/acme/app/orders")},
		{name: "no id", id: spiffeid.ID{}},
	}
	for _, tt := range others {
		t.Run(tt.name, func(t *testing.T) {
			chain, err := ca.SignCSR(t.Context(), good, tt.id, 0)
			if err == nil || errors.Is(err, authca.ErrBadCSR) || chain != nil {
				t.Fatalf("SignCSR = %d certificates, %v; want a refusal that is not ErrBadCSR", len(chain), err)
			}
		})
	}

	t.Run("before Load", func(t *testing.T) {
		fresh, err := authca.New(authca.Config{TrustDomain: td, Store: authcatest.NewMemStore(), MasterKey: master})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fresh.SignCSR(t.Context(), good, id, 0); !errors.Is(err, authca.ErrNoAuthority) {
			t.Fatalf("SignCSR = %v, want ErrNoAuthority", err)
		}
	})
}

// csrRSA1024 signs a CSR with an RSA key under the minimum size.
func csrRSA1024(t *testing.T) []byte {
	t.Helper()
	return csr(t, rsaKey(t, 1024))
}

func TestServerCertificate(t *testing.T) {
	clk := newClock()
	ca := newCA(t, nil, clk, authca.Config{SVIDTTL: 12 * time.Hour})
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	cert, err := ca.ServerCertificate([]string{"localhost", "gw.example.org"}, ips)
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if len(cert.Certificate) != 2 || !slices.Equal(leaf.DNSNames, []string{"localhost", "gw.example.org"}) || len(leaf.IPAddresses) != 2 {
		t.Fatalf("server certificate: chain %d, DNS %v, IPs %v", len(cert.Certificate), leaf.DNSNames, leaf.IPAddresses)
	}
	id, err := x509svid.IDFromCert(leaf)
	if err != nil || id != authca.GatewayID(td) || id.String() != "spiffe://example.org/gateway" {
		t.Fatalf("server certificate ID %v, %v", id, err)
	}
	if want := clk.Now().Add(12 * time.Hour).Truncate(time.Second); !leaf.NotAfter.Equal(want) {
		t.Errorf("NotAfter %v, want %v", leaf.NotAfter, want)
	}
	roots := x509.NewCertPool()
	for _, r := range ca.Bundle().X509Authorities() {
		roots.AddCert(r)
	}
	inter, _ := x509.ParseCertificate(cert.Certificate[1])
	inters := x509.NewCertPool()
	inters.AddCert(inter)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "gw.example.org", Roots: roots, Intermediates: inters, CurrentTime: clk.Now()}); err != nil {
		t.Fatalf("a web PKI client refuses the server certificate: %v", err)
	}
}
