package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	dapr "github.com/dapr/go-sdk/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// svid is what POST /v1.0-alpha1/identity/svid answers.
type svid struct {
	SpiffeID         string    `json:"spiffeId"`
	CertificateChain string    `json:"certificateChain"`
	TrustBundle      string    `json:"trustBundle"`
	ExpiresAt        time.Time `json:"expiresAt"`
	cert             tls.Certificate
}

// requestSVID makes a key, asks the gateway to sign a CSR for it with the
// app's token, and returns the certificate ready for a TLS client.
func requestSVID(t *testing.T, g *gateway, token string, ttlSeconds int) svid {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// The CSR asks for another name; the gateway ignores it.
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "admin"}, DNSNames: []string{"evil.example"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{
		"csr":        string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
		"ttlSeconds": ttlSeconds,
	})
	req, _ := http.NewRequest(http.MethodPost, g.httpURL()+"/v1.0-alpha1/identity/svid", bytes.NewReader(body))
	req.Header.Set("dapr-api-token", token)
	resp, err := g.tlsClient(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("svid: %d %s", resp.StatusCode, raw)
	}
	var out svid
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	out.cert, err = tls.X509KeyPair([]byte(out.CertificateChain), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// selfSigned is a certificate for id from a CA nobody trusts.
func selfSigned(t *testing.T, id string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse(id)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		URIs: []*url.URL{u}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// metadataAs calls GET /v1.0/metadata over TLS with cert and no token and
// returns the status, or 0 when the handshake or the connection failed.
func metadataAs(g *gateway, cert *tls.Certificate) (int, string) {
	resp, err := g.tlsClient(cert).Get(g.httpURL() + "/v1.0/metadata")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMTLSIdentity: an app gets an SVID from the gateway's CA with its app
// token and then uses the Dapr APIs over mTLS without any token (the Go SDK
// over gRPC, and HTTP); certificates from another CA, from another trust
// domain and expired ones are refused.
func TestMTLSIdentity(t *testing.T) {
	g, _ := privateGateway(t, "--tls")
	ctx := t.Context()
	tok := newTenant(t, g, "id-a", "worker", stateComponent)

	s := requestSVID(t, g, tok, 0)
	if s.SpiffeID != "spiffe://blockgate.local/tenant/id-a/app/worker" {
		t.Fatalf("SPIFFE ID %q", s.SpiffeID)
	}
	leaf, _ := x509.ParseCertificate(s.cert.Certificate[0])
	if len(leaf.DNSNames) != 0 || leaf.Subject.CommonName == "admin" || time.Until(leaf.NotAfter) > 25*time.Hour {
		t.Fatalf("the CSR's names or lifetime leaked into the certificate: %v %q %s", leaf.DNSNames, leaf.Subject.CommonName, leaf.NotAfter)
	}

	// The Go SDK over gRPC with the SVID and no token.
	conn, err := grpc.NewClient(g.grpcAddr(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: g.trustBundle(), Certificates: []tls.Certificate{s.cert}, MinVersion: tls.VersionTLS12})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := dapr.NewClientWithConnection(conn)
	if err := c.SaveState(ctx, "statestore", "k1", []byte("saved over mTLS"), nil); err != nil {
		t.Fatalf("save over mTLS: %v", err)
	}
	// The same app with its token reads it back: the SVID acted as worker
	// of tenant id-a.
	if st, _, body := doTLS(t, g, tok, "GET", "/v1.0/state/statestore/k1"); st != 200 || string(body) != "saved over mTLS" {
		t.Fatalf("read back with the token: %d %s", st, body)
	}
	if st, body := metadataAs(g, &s.cert); st != 200 || !strings.Contains(body, `"id":"worker"`) {
		t.Fatalf("metadata over mTLS: %d %s", st, body)
	}

	// No certificate and no token: 401, over TLS.
	if st, _ := metadataAs(g, nil); st != http.StatusUnauthorized {
		t.Fatalf("no credential: %d", st)
	}
	// Another CA, same SPIFFE ID: the handshake fails.
	forged := selfSigned(t, s.SpiffeID)
	if st, msg := metadataAs(g, &forged); st != 0 {
		t.Fatalf("certificate from another CA: %d %s", st, msg)
	}
	// Another trust domain: an SVID from a second gateway with its own CA.
	other, _ := privateGateway(t, "--tls", "--trust-domain", "other.example")
	otherSVID := requestSVID(t, other, newTenant(t, other, "id-a", "worker"), 0)
	if !strings.HasPrefix(otherSVID.SpiffeID, "spiffe://other.example/") {
		t.Fatalf("second gateway issued %s", otherSVID.SpiffeID)
	}
	if st, msg := metadataAs(g, &otherSVID.cert); st != 0 {
		t.Fatalf("SVID of another trust domain: %d %s", st, msg)
	}
	// Bad requests are the caller's mistake: 400 with a Dapr error code.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	csrPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))
	for name, body := range map[string]string{
		"lifetime of a second": `{"csr": ` + jsonString(csrPEM) + `, "ttlSeconds": 1}`,
		"lifetime of ten days": `{"csr": ` + jsonString(csrPEM) + `, "ttlSeconds": 864000}`,
		"not a CSR":            `{"csr": "hello"}`,
		"a certificate":        `{"csr": ` + jsonString(s.CertificateChain) + `}`,
		"unknown field":        `{"csr": ` + jsonString(csrPEM) + `, "spiffeId": "spiffe://blockgate.local/tenant/x/app/y"}`,
		"empty":                ``,
	} {
		req, _ := http.NewRequest(http.MethodPost, g.httpURL()+"/v1.0-alpha1/identity/svid", strings.NewReader(body))
		req.Header.Set("dapr-api-token", tok)
		resp, err := g.tlsClient(nil).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(raw), `"errorCode":"ERR_`) {
			t.Errorf("%s: %d %s, want 400 with an error code", name, resp.StatusCode, raw)
		}
	}

	// Rotation: certificates of the old CA generation keep working, new
	// ones chain to the new root, and clients learn both from the bundle.
	gen, err := g.admin().RotateCA(ctx)
	if err != nil || gen == "" {
		t.Fatalf("rotate: %q %v", gen, err)
	}
	rotated := requestSVID(t, g, tok, 0)
	oldLeaf, _ := x509.ParseCertificate(s.cert.Certificate[0])
	newLeaf, _ := x509.ParseCertificate(rotated.cert.Certificate[0])
	if string(oldLeaf.AuthorityKeyId) == string(newLeaf.AuthorityKeyId) {
		t.Fatal("after rotation the new SVID was signed by the old issuing key")
	}
	if n := strings.Count(rotated.TrustBundle, "BEGIN CERTIFICATE"); n != 2 {
		t.Fatalf("bundle after rotation holds %d roots, want the old and the new", n)
	}
	writeBundle(t, g, rotated.TrustBundle)
	for name, cert := range map[string]*tls.Certificate{"old": &s.cert, "new": &rotated.cert} {
		if st, body := metadataAs(g, cert); st != 200 {
			t.Fatalf("%s SVID after rotation: %d %s", name, st, body)
		}
	}

	// Dapr's Sentry API on the gRPC port signs too, with the token in the
	// request, and refuses a token for another app id.
	sentrySign(t, g, tok)
}

// TestExpiredSVIDRefused: an SVID of the shortest lifetime (a minute)
// works until it runs out and is refused after. It waits a minute, so it
// runs in parallel with the rest.
func TestExpiredSVIDRefused(t *testing.T) {
	t.Parallel()
	g, _ := privateGateway(t, "--tls")
	tok := newTenant(t, g, "id-x", "worker")
	short := requestSVID(t, g, tok, 60)
	if st, body := metadataAs(g, &short.cert); st != 200 {
		t.Fatalf("fresh SVID: %d %s", st, body)
	}
	time.Sleep(time.Until(short.ExpiresAt) + 2*time.Second)
	if st, msg := metadataAs(g, &short.cert); st != 0 {
		t.Fatalf("expired SVID: %d %s", st, msg)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// writeBundle replaces the trust bundle the test clients use.
func writeBundle(t *testing.T, g *gateway, pemText string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(g.dataDir, "trust-bundle.pem"), []byte(pemText), 0o644); err != nil {
		t.Fatal(err)
	}
}

// doTLS sends a request to a --tls gateway with token.
func doTLS(t *testing.T, g *gateway, token, method, path string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), method, g.httpURL()+path, nil)
	req.Header.Set("dapr-api-token", token)
	resp, err := g.tlsClient(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// sentrySign asks for an SVID through Dapr's Sentry API.
func sentrySign(t *testing.T, g *gateway, token string) {
	t.Helper()
	conn, err := grpc.NewClient(g.grpcAddr(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: g.trustBundle(), MinVersion: tls.VersionTLS12})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})
	ca := sentryv1.NewCAClient(conn)
	resp, err := ca.SignCertificate(t.Context(), &sentryv1.SignCertificateRequest{
		Id: "worker", Namespace: "id-a", TrustDomain: "blockgate.local", Token: token, CertificateSigningRequest: csrPEM,
	})
	if err != nil {
		t.Fatalf("Sentry SignCertificate: %v", err)
	}
	b, _ := pem.Decode(resp.GetWorkloadCertificate())
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil || len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://blockgate.local/tenant/id-a/app/worker" {
		t.Fatalf("Sentry certificate: %v %v", leaf.URIs, err)
	}
	if len(resp.GetTrustChainCertificates()) == 0 || resp.GetValidUntil().AsTime().Before(time.Now()) {
		t.Fatalf("Sentry answer: %d trust chain entries, valid until %s", len(resp.GetTrustChainCertificates()), resp.GetValidUntil().AsTime())
	}
	for name, req := range map[string]*sentryv1.SignCertificateRequest{
		"another app id":  {Id: "admin", Token: token, CertificateSigningRequest: csrPEM},
		"another tenant":  {Namespace: "id-b", Token: token, CertificateSigningRequest: csrPEM},
		"no token":        {CertificateSigningRequest: csrPEM},
		"garbage CSR":     {Token: token, CertificateSigningRequest: []byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")},
		"other trust dom": {TrustDomain: "evil.example", Token: token, CertificateSigningRequest: csrPEM},
	} {
		if _, err := ca.SignCertificate(t.Context(), req); status.Code(err) == codes.OK || status.Code(err) == codes.Internal {
			t.Errorf("Sentry with %s: %v, want a clear refusal", name, err)
		}
	}
}
