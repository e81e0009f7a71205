package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/blockgate/blockgate/admin/adminclient"
)

// identityCommand runs the subcommands of federation, policy, svid and ca
// against the admin API: federated issuers, access policies, app
// certificates and the certificate authority.
func identityCommand(ctx context.Context, noun string, args []string) error {
	cmd, err := newSubcommand(noun, args)
	if err != nil {
		return err
	}
	fs, verb := cmd.fs, cmd.verb
	app := fs.String("app", "", "app id (for policy apply: the callee apps it applies to, comma-separated; none: the tenant default)")
	file := fs.String("f", "", "resource file (YAML or JSON), - for standard input")
	csrFile := fs.String("csr", "", "PEM certificate signing request; empty: make a new P-256 key")
	certOut := fs.String("cert-out", "", "where to write the certificate chain (default <app>.crt)")
	keyOut := fs.String("key-out", "", "where to write a new private key (default <app>.key)")
	bundleOut := fs.String("bundle-out", "", "where to write the trust bundle (default bundle.pem)")
	ttl := fs.Duration("ttl", 0, "certificate lifetime, e.g. 24h (default: the gateway's --svid-ttl)")
	if err := cmd.parse(); err != nil {
		return err
	}
	tenant, asJSON, pos, c, out, needTenant := cmd.tenant, cmd.asJSON, cmd.pos, cmd.client, cmd.out, cmd.needTenant
	needFile := func() ([]byte, error) {
		if err := needTenant(); err != nil {
			return nil, err
		}
		if *file == "" {
			return nil, usageError{fmt.Sprintf("%s %s needs -f FILE.yaml", noun, verb)}
		}
		return readFile(*file)
	}
	oneName := func(what string) error {
		if err := cmd.need(1, "one "+what); err != nil {
			return err
		}
		return needTenant()
	}

	switch noun + " " + verb {
	case "federation apply":
		doc, err := needFile()
		if err != nil {
			return err
		}
		f, err := c.ApplyFederation(ctx, *tenant, doc)
		if err != nil {
			return err
		}
		return show(out, *asJSON, f, func(w io.Writer) {
			fmt.Fprintf(w, "tenant %s trusts tokens of %s for audience %s (app id from claim %s), revision %d\n",
				*tenant, f.Issuer, f.Audience, f.AppIDClaim, f.Revision)
		})
	case "federation list":
		if err := needTenant(); err != nil {
			return err
		}
		fs, err := c.Federations(ctx, *tenant)
		if err != nil {
			return err
		}
		return show(out, *asJSON, fs, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tISSUER\tAUDIENCE\tAPP ID CLAIM")
			for _, f := range fs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Name, f.Issuer, f.Audience, f.AppIDClaim)
			}
			tw.Flush()
		})
	case "federation delete":
		if err := oneName("federation name"); err != nil {
			return err
		}
		if err := c.DeleteFederation(ctx, *tenant, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(out, "federation %s deleted; its tokens are refused from now on\n", pos[0])
		return nil

	case "policy apply":
		doc, err := needFile()
		if err != nil {
			return err
		}
		var apps []string
		for _, a := range strings.Split(*app, ",") {
			if a = strings.TrimSpace(a); a != "" {
				apps = append(apps, a)
			}
		}
		p, err := c.ApplyAccessPolicy(ctx, *tenant, doc, apps)
		if err != nil {
			return err
		}
		return show(out, *asJSON, p, func(w io.Writer) {
			to := "the tenant's default"
			if len(p.Apps) > 0 {
				to = "calls to " + strings.Join(p.Apps, ", ")
			}
			fmt.Fprintf(w, "access policy %s applies to %s, revision %d\n", p.Name, to, p.Revision)
			for _, warn := range p.Warnings {
				fmt.Fprintf(w, "warning: %s\n", warn)
			}
		})
	case "policy list":
		if err := needTenant(); err != nil {
			return err
		}
		ps, err := c.AccessPolicies(ctx, *tenant)
		if err != nil {
			return err
		}
		return show(out, *asJSON, ps, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tAPPLIES TO\tREVISION")
			for _, p := range ps {
				to := strings.Join(p.Apps, ",")
				if p.TenantDefault {
					to = "(tenant default)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\n", p.Name, to, p.Revision)
			}
			tw.Flush()
		})
	case "policy delete":
		if err := oneName("access policy name"); err != nil {
			return err
		}
		if err := c.DeleteAccessPolicy(ctx, *tenant, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(out, "access policy %s deleted\n", pos[0])
		return nil
	case "policy deny-by-default":
		if len(pos) != 1 || (pos[0] != "on" && pos[0] != "off") {
			return usageError{"policy deny-by-default takes on or off"}
		}
		if err := needTenant(); err != nil {
			return err
		}
		if err := c.SetDenyByDefault(ctx, *tenant, pos[0] == "on"); err != nil {
			return err
		}
		fmt.Fprintf(out, "tenant %s: deny by default %s\n", *tenant, pos[0])
		return nil

	case "svid issue":
		if err := needTenant(); err != nil {
			return err
		}
		if *app == "" {
			return usageError{"svid issue needs --app APP_ID"}
		}
		return issueSVID(ctx, c, out, *tenant, *app, *csrFile, *certOut, *keyOut, *bundleOut, *ttl, *asJSON)

	case "ca rotate":
		gen, err := c.RotateCA(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "the CA signs with generation %s; certificates of the previous one stay valid until they expire\n", gen)
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %s %s", noun, verb)}
}

// issueSVID gets an app's certificate for an operator: from the given CSR,
// or from a new key that it writes (mode 0600) beside the certificate.
func issueSVID(ctx context.Context, c *adminclient.Client, out io.Writer, tenant, app, csrFile, certOut, keyOut, bundleOut string,
	ttl time.Duration, asJSON bool) error {
	var csrPEM []byte
	var keyPEM []byte
	if csrFile != "" {
		b, err := readFile(csrFile)
		if err != nil {
			return err
		}
		csrPEM = b
	} else {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		if err != nil {
			return err
		}
		csrPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
		kd, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
	}
	s, err := c.IssueSVID(ctx, tenant, app, csrPEM, ttl)
	if err != nil {
		return err
	}
	if certOut == "" {
		certOut = app + ".crt"
	}
	if keyOut == "" {
		keyOut = app + ".key"
	}
	if bundleOut == "" {
		bundleOut = "bundle.pem"
	}
	if err := os.WriteFile(certOut, []byte(s.CertificateChain), 0o644); err != nil {
		return err
	}
	if keyPEM != nil {
		if err := os.WriteFile(keyOut, keyPEM, 0o600); err != nil {
			return err
		}
	}
	if err := os.WriteFile(bundleOut, []byte(s.TrustBundle), 0o644); err != nil {
		return err
	}
	return show(out, asJSON, s, func(w io.Writer) {
		fmt.Fprintf(w, "%s until %s\ncertificate chain: %s\n", s.SpiffeID, s.ExpiresAt.Format(time.RFC3339), certOut)
		if keyPEM != nil {
			fmt.Fprintf(w, "private key:       %s\n", keyOut)
		}
		fmt.Fprintf(w, "trust bundle:      %s\n", bundleOut)
	})
}
