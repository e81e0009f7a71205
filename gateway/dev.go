package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/blockgate/blockgate/admin"
	"github.com/blockgate/blockgate/tenants"
)

// Dev mode's names.
const (
	DevTenant = "default"
	DevApp    = "app1"
	// devTokenTTL is the life of the dev token; it is reissued when less
	// than a day is left.
	devTokenTTL = 30 * 24 * time.Hour
)

var devComponents = []string{`
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.postgresql
  version: v1
`, `
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.jetstream
  version: v1
`}

// adminToken returns the configured admin token, or the one kept in the
// data dir, creating it on first start.
func (n *node) adminToken() (string, error) {
	if n.cfg.AdminToken != "" {
		return n.cfg.AdminToken, nil
	}
	path := filepath.Join(n.cfg.DataDir, "admin-token")
	if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return string(bytes.TrimSpace(b)), nil
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tok := "bgadm_" + hex.EncodeToString(b[:])
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("saving the generated admin token: %w", err)
	}
	n.cfg.Logger.Info("generated the platform admin token", "file", path)
	return tok, nil
}

// bootstrapDev makes sure tenant default, app app1 and the dev components
// exist, reuses or issues the app token, and writes and prints the SDK
// environment.
func (n *node) bootstrapDev(ctx context.Context, svc *admin.Service, ep Endpoints, adminToken string) error {
	if _, err := svc.CreateTenant(ctx, DevTenant); err != nil && !errors.Is(err, tenants.ErrExists) {
		return err
	}
	if _, err := svc.CreateApp(ctx, DevTenant, DevApp, "", ""); err != nil && !errors.Is(err, tenants.ErrExists) {
		return err
	}
	existing, err := svc.Components(ctx, DevTenant)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, c := range existing {
		have[c.Name] = true
	}
	for _, doc := range devComponents {
		c, err := tenants.ParseComponent([]byte(doc))
		if err != nil {
			return err
		}
		if have[c.Name] {
			continue // keep what the developer may have changed
		}
		if _, err := svc.ApplyComponent(ctx, DevTenant, []byte(doc)); err != nil {
			return err
		}
	}

	envPath := filepath.Join(n.cfg.DataDir, "dev.env")
	token := n.reusableDevToken(ctx, envPath)
	if token == "" {
		issued, err := svc.IssueToken(ctx, DevTenant, DevApp, devTokenTTL)
		if err != nil {
			return err
		}
		token = issued.Text
	}
	scheme := "http"
	if n.cfg.TLS {
		// Clients must trust the gateway's CA: its roots are in this file
		// (and at /v1.0-alpha1/identity/bundle).
		scheme = "https"
		bundle := filepath.Join(n.cfg.DataDir, "trust-bundle.pem")
		if err := os.WriteFile(bundle, n.ca.BundlePEM(), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", bundle, err)
		}
	}
	env := fmt.Sprintf("DAPR_HTTP_ENDPOINT=%s://%s\nDAPR_GRPC_ENDPOINT=%s://%s\nDAPR_API_TOKEN=%s\nBLOCKGATE_ADMIN_URL=http://%s\nBLOCKGATE_ADMIN_TOKEN=%s\n",
		scheme, ep.HTTP, scheme, ep.GRPC, token, ep.Admin, adminToken)
	if err := os.WriteFile(envPath, []byte(env), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", envPath, err)
	}
	fmt.Printf("\nblockgate dev mode: tenant %q, app %q, components statestore and pubsub.\n"+
		"Point a Dapr SDK at this gateway with (also in %s):\n\n%s\n", DevTenant, DevApp, envPath, env)
	return nil
}

// reusableDevToken returns the token of a previous dev run if it still
// verifies, is not revoked and has more than a day left.
func (n *node) reusableDevToken(ctx context.Context, envPath string) string {
	f, err := os.Open(envPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		tok, ok := strings.CutPrefix(sc.Text(), "DAPR_API_TOKEN=")
		if !ok {
			continue
		}
		claims, err := n.tokens.Verify(ctx, tok)
		if err != nil || claims.Tenant != DevTenant || claims.AppID != DevApp ||
			time.Until(claims.ExpiresAt) < 24*time.Hour {
			return ""
		}
		if _, err := n.authn.Authenticate(ctx, tok); err != nil {
			return ""
		}
		return tok
	}
	return ""
}
