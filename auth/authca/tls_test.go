package authca_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/auth/authca/authcatest"
)

// handshake is what the server side of one connection saw.
type handshake struct {
	id  spiffeid.ID
	ok  bool // PeerID's
	err error
}

// server accepts one connection on ln per call and reports its handshake.
func serveOne(t *testing.T, ln net.Listener) <-chan handshake {
	t.Helper()
	out := make(chan handshake, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			out <- handshake{err: err}
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			out <- handshake{err: err}
			return
		}
		id, ok := authca.PeerID(tc.ConnectionState())
		tc.Write([]byte("ok"))
		out <- handshake{id: id, ok: ok}
	}()
	return out
}

// dial connects with cfg, reads the server's "ok" and returns the server's
// certificate chain.
func dial(t *testing.T, addr string, cfg *tls.Config) ([]*x509.Certificate, error) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	// With TLS 1.3 a refused client certificate shows on the first read.
	if _, err := io.ReadFull(conn, make([]byte, 2)); err != nil {
		return nil, err
	}
	return conn.ConnectionState().PeerCertificates, nil
}

// TestServerTLS runs real handshakes over loopback against a listener with
// ServerTLSConfig: a client with an SVID is identified, a client without a
// certificate gets through unidentified, and certificates from another CA,
// for another trust domain or expired are refused.
func TestServerTLS(t *testing.T) {
	clk := newClock()
	ca := newCA(t, nil, clk, authca.Config{})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ca.ServerTLSConfig([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	gateway := tlsconfig.AuthorizeID(authca.GatewayID(td))
	app := appID(t, "acme", "orders")

	otherCA := newCA(t, nil, clk, authca.Config{})
	otherTDCA := newCA(t, nil, clk, authca.Config{TrustDomain: otherTD})
	now := clk.Now()
	clk.Set(now.Add(-3 * time.Hour))
	expired := newSVID(t, ca, app, time.Hour)
	clk.Set(now)

	tests := []struct {
		name   string
		client func() *tls.Config
		wantID spiffeid.ID // zero: no peer ID
		refuse bool
	}{
		{
			name:   "SVID",
			client: func() *tls.Config { return tlsconfig.MTLSClientConfig(newSVID(t, ca, app, 0), ca.Bundle(), gateway) },
			wantID: app,
		},
		{
			name:   "no client certificate",
			client: func() *tls.Config { return tlsconfig.TLSClientConfig(ca.Bundle(), gateway) },
		},
		{
			name: "web PKI client by DNS name",
			client: func() *tls.Config {
				pool := x509.NewCertPool()
				for _, r := range ca.Bundle().X509Authorities() {
					pool.AddCert(r)
				}
				return &tls.Config{RootCAs: pool, ServerName: "localhost"}
			},
		},
		{
			name: "SVID of another CA",
			client: func() *tls.Config {
				return tlsconfig.MTLSClientConfig(newSVID(t, otherCA, app, 0), ca.Bundle(), gateway)
			},
			refuse: true,
		},
		{
			name: "SVID of another trust domain",
			client: func() *tls.Config {
				return tlsconfig.MTLSClientConfig(newSVID(t, otherTDCA, spiffeid.RequireFromPath(otherTD, "/tenant/acme/app/orders"), 0),
					ca.Bundle(), gateway)
			},
			refuse: true,
		},
		{
			name:   "expired SVID",
			client: func() *tls.Config { return tlsconfig.MTLSClientConfig(expired, ca.Bundle(), gateway) },
			refuse: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := serveOne(t, ln)
			_, cerr := dial(t, addr, tt.client())
			h := <-got
			if tt.refuse {
				if h.err == nil || cerr == nil {
					t.Fatalf("handshake passed (server %v, client %v); want it refused", h.err, cerr)
				}
				if !errors.Is(h.err, authca.ErrUntrusted) {
					t.Errorf("server refused with %v, want ErrUntrusted", h.err)
				}
				return
			}
			if h.err != nil || cerr != nil {
				t.Fatalf("handshake failed: server %v, client %v", h.err, cerr)
			}
			if h.ok != !tt.wantID.IsZero() || h.id != tt.wantID {
				t.Fatalf("PeerID = %v, %v; want %v", h.id, h.ok, tt.wantID)
			}
		})
	}

	// After a rotation the same listener serves a certificate of the new
	// generation and accepts SVIDs of the new generation: no restart.
	if _, err := ca.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	fresh := newSVID(t, ca, app, 0)
	got := serveOne(t, ln)
	chain, err := dial(t, addr, tlsconfig.MTLSClientConfig(fresh, ca.Bundle(), gateway))
	h := <-got
	if err != nil || h.err != nil || h.id != app {
		t.Fatalf("after rotation: client %v, server %v, peer %v", err, h.err, h.id)
	}
	// The serving certificate stays on the old generation until its
	// renewal, so that clients with the previous bundle keep connecting.
	if len(chain) != 2 || chain[1].Equal(fresh.Certificates[1]) {
		t.Fatal("the listener's certificate moved to the new generation at the rotation, before clients could learn its root")
	}
}

func TestPeerIDWithoutHandshake(t *testing.T) {
	if _, ok := authca.PeerID(tls.ConnectionState{}); ok {
		t.Fatal("PeerID of an empty connection state")
	}
	svid := newSVID(t, newCA(t, nil, nil, authca.Config{}), appID(t, "acme", "orders"), 0)
	if _, ok := authca.PeerID(tls.ConnectionState{PeerCertificates: svid.Certificates}); ok {
		t.Fatal("PeerID of an unfinished handshake")
	}
}

func TestGetCertificate(t *testing.T) {
	clk := newClock()
	store := authcatest.NewMemStore()
	ca := newCA(t, store, clk, authca.Config{})
	other := newCA(t, store, clk, authca.Config{})
	get := ca.GetCertificate([]string{"localhost"}, nil)

	first, err := get(nil)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := get(nil); again != first {
		t.Fatal("GetCertificate issued a new certificate when the old one was fresh")
	}
	clk.Advance(11 * time.Hour)
	if again, _ := get(nil); again != first {
		t.Fatal("GetCertificate renewed before half the lifetime")
	}
	clk.Advance(2 * time.Hour)
	renewed, err := get(nil)
	if err != nil || renewed == first {
		t.Fatalf("GetCertificate did not renew after half the lifetime: %v", err)
	}

	// A rotation on another node, once reloaded here, reaches the serving
	// certificate at its next renewal, not before.
	if _, err := other.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := ca.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if again, _ := get(nil); again != renewed {
		t.Fatal("GetCertificate renewed at the rotation, before clients could learn the new root")
	}
	clk.Advance(13 * time.Hour)
	rotated, err := get(nil)
	if err != nil || rotated == renewed {
		t.Fatalf("GetCertificate kept the certificate of a retired generation past its renewal: %v", err)
	}
	if _, err := other.Verify([]*x509.Certificate{rotated.Leaf, mustParse(t, rotated.Certificate[1])}); err != nil {
		t.Fatalf("certificate after rotation: %v", err)
	}
	if id, err := x509svid.IDFromCert(rotated.Leaf); err != nil || id != authca.GatewayID(td) {
		t.Fatalf("server certificate ID %v, %v", id, err)
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestVerifyRefuses(t *testing.T) {
	clk := newClock()
	ca := newCA(t, nil, clk, authca.Config{})
	app := appID(t, "acme", "orders")
	good := newSVID(t, ca, app, time.Hour)
	fromOther := newSVID(t, newCA(t, nil, clk, authca.Config{}), app, 0)
	fromOtherTD := newSVID(t, newCA(t, nil, clk, authca.Config{TrustDomain: otherTD}), spiffeid.RequireFromPath(otherTD, "/tenant/acme/app/orders"), 0)

	tests := []struct {
		name  string
		chain []*x509.Certificate
		at    time.Duration // from now
	}{
		{name: "another CA", chain: fromOther.Certificates},
		{name: "another trust domain", chain: fromOtherTD.Certificates},
		{name: "expired", chain: good.Certificates, at: time.Hour + time.Second},
		{name: "not yet valid", chain: good.Certificates, at: -2 * time.Minute},
		{name: "without its intermediate", chain: good.Certificates[:1]},
		{name: "the intermediate as leaf", chain: good.Certificates[1:]},
		{name: "empty", chain: nil},
	}
	now := clk.Now()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Set(now.Add(tt.at))
			defer clk.Set(now)
			if id, err := ca.Verify(tt.chain); !errors.Is(err, authca.ErrUntrusted) {
				t.Fatalf("Verify = %v, %v; want ErrUntrusted", id, err)
			}
		})
	}
	if id, err := ca.Verify(good.Certificates); err != nil || id != app {
		t.Fatalf("Verify of a good SVID = %v, %v", id, err)
	}
	raw := [][]byte{good.Certificates[0].Raw, good.Certificates[1].Raw}
	if err := ca.VerifyPeerCertificate(raw, nil); err != nil {
		t.Fatalf("VerifyPeerCertificate of a good SVID: %v", err)
	}
	if err := ca.VerifyPeerCertificate([][]byte{[]byte("junk")}, nil); !errors.Is(err, authca.ErrUntrusted) {
		t.Fatalf("VerifyPeerCertificate of junk = %v", err)
	}
	if err := ca.VerifyPeerCertificate(append(raw, raw[1], raw[1], raw[1]), nil); !errors.Is(err, authca.ErrUntrusted) {
		t.Fatalf("VerifyPeerCertificate of a long chain = %v", err)
	}
}

// TestRouteTLS: two nodes sharing a CA (one store) connect with
// RouteTLSConfig at both ends; a peer with an app's SVID of the same CA,
// with no certificate, or of another CA is refused, whichever end it is.
func TestRouteTLS(t *testing.T) {
	clk := newClock()
	store := authcatest.NewMemStore()
	node1 := newCA(t, store, clk, authca.Config{})
	node2 := newCA(t, store, clk, authca.Config{})
	stranger := newCA(t, nil, clk, authca.Config{})

	ln, err := tls.Listen("tcp", "127.0.0.1:0", node1.RouteTLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	appSVID := newSVID(t, node1, appID(t, "acme", "orders"), 0)

	tests := []struct {
		name   string
		client func() *tls.Config
		refuse bool
	}{
		{name: "another node of the cluster", client: node2.RouteTLSConfig},
		{name: "the same node", client: node1.RouteTLSConfig},
		{
			name: "an app's SVID from the same CA",
			client: func() *tls.Config {
				return tlsconfig.MTLSClientConfig(appSVID, node1.Bundle(), tlsconfig.AuthorizeID(authca.GatewayID(td)))
			},
			refuse: true,
		},
		{
			name:   "no client certificate",
			client: func() *tls.Config { return tlsconfig.TLSClientConfig(node1.Bundle(), tlsconfig.AuthorizeAny()) },
			refuse: true,
		},
		{name: "a node of another CA", client: stranger.RouteTLSConfig, refuse: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := serveOne(t, ln)
			_, cerr := dial(t, addr, tt.client())
			h := <-got
			if tt.refuse {
				if h.err == nil || cerr == nil {
					t.Fatalf("handshake passed (server %v, client %v); want it refused", h.err, cerr)
				}
				return
			}
			if h.err != nil || cerr != nil {
				t.Fatalf("handshake failed: server %v, client %v", h.err, cerr)
			}
			if !h.ok || h.id != authca.GatewayID(td) {
				t.Fatalf("peer %v, %v; want the gateway's ID", h.id, h.ok)
			}
		})
	}

	// The dialling end refuses a listener that is not a gateway node.
	appLn, err := tls.Listen("tcp", "127.0.0.1:0", tlsconfig.MTLSServerConfig(appSVID, node1.Bundle(), tlsconfig.AuthorizeAny()))
	if err != nil {
		t.Fatal(err)
	}
	defer appLn.Close()
	go func() {
		if c, err := appLn.Accept(); err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	if _, err := dial(t, appLn.Addr().String(), node2.RouteTLSConfig()); !errors.Is(err, authca.ErrUntrusted) {
		t.Fatalf("dialling a listener with an app's SVID: %v, want ErrUntrusted", err)
	}
}
