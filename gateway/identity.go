package gateway

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/auth/authoidc"
)

// startIdentity loads the certificate authority and the tenants' federated
// issuers. It runs after the registry exists and before the authenticator
// is built.
func (n *node) startIdentity(ctx context.Context) error {
	td, err := spiffeid.TrustDomainFromString(n.cfg.TrustDomain)
	if err != nil {
		return fmt.Errorf("--trust-domain %q: %w", n.cfg.TrustDomain, err)
	}
	master, err := n.masterKey()
	if err != nil {
		return err
	}
	var root *authca.Root
	if n.cfg.CARootCertFile != "" || n.cfg.CARootKeyFile != "" {
		if root, err = authca.LoadRoot(n.cfg.CARootCertFile, n.cfg.CARootKeyFile); err != nil {
			return fmt.Errorf("loading --ca-root-cert/--ca-root-key: %w", err)
		}
	}
	n.ca, err = authca.New(authca.Config{
		TrustDomain: td, Store: n.registry, MasterKey: master, Root: root, SVIDTTL: n.cfg.SVIDTTL,
		Logger: n.cfg.Logger,
	})
	clear(master)
	if err != nil {
		return fmt.Errorf("certificate authority: %w", err)
	}
	if err := n.ca.Load(ctx); err != nil {
		if errors.Is(err, authca.ErrWrongMasterKey) {
			return fmt.Errorf("the CA's keys in Postgres were sealed with another master key: give every node the same --ca-master-key-file: %w", err)
		}
		return fmt.Errorf("loading the certificate authority: %w", err)
	}

	client, err := n.federationClient()
	if err != nil {
		return err
	}
	n.oidc = authoidc.New(authoidc.Config{HTTPClient: client, ReservedIssuers: []string{n.tokens.Issuer()}}, n.cfg.Logger)
	return n.reloadFederations(ctx)
}

// masterKey returns the CA's master key: the configured one, else the one
// kept in DataDir/ca-master.key, created on first start. A cluster must
// give every node the same key, from a secret.
func (n *node) masterKey() ([]byte, error) {
	if len(n.cfg.CAMasterKey) > 0 {
		return n.cfg.CAMasterKey, nil
	}
	path := filepath.Join(n.cfg.DataDir, "ca-master.key")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		return []byte(strings.TrimSpace(string(b))), nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("reading the CA master key: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	key := hex.EncodeToString(raw[:])
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("writing the CA master key: %w", err)
	}
	n.cfg.Logger.Warn("created a CA master key in the data dir; in production pass the same --ca-master-key-file (from a secret) to every node",
		"path", path)
	return []byte(key), nil
}

// federationClient is the HTTP client that fetches federated issuers'
// keys: system roots plus --federation-ca-file, https only.
func (n *node) federationClient() (*http.Client, error) {
	if n.cfg.FederationCAFile == "" {
		return nil, nil // authoidc's default
	}
	pem, err := os.ReadFile(n.cfg.FederationCAFile)
	if err != nil {
		return nil, fmt.Errorf("--federation-ca-file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--federation-ca-file %s holds no PEM certificate", n.cfg.FederationCAFile)
	}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			Proxy:           http.ProxyFromEnvironment,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 || req.URL.Scheme != "https" {
				return errors.New("issuer redirect refused: at most 3, https only")
			}
			return nil
		},
	}, nil
}

// reloadFederations hands the registry's federations to the verifier.
func (n *node) reloadFederations(ctx context.Context) error {
	fs, err := n.registry.AllFederations(ctx)
	if err != nil {
		return fmt.Errorf("loading federated issuers: %w", err)
	}
	n.oidc.SetFederations(fs)
	return nil
}

// serverTLS is the TLS configuration of the API listeners when --tls is
// on: certificates from the gateway's CA, client SVIDs optional.
func (n *node) serverTLS() *tls.Config {
	var dns []string
	var ips []net.IP
	for _, name := range n.cfg.TLSNames {
		if ip := net.ParseIP(name); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, name)
		}
	}
	return n.ca.ServerTLSConfig(dns, ips)
}
