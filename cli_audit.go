package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/blockgate/blockgate/admin/adminclient"
)

// auditCommand runs the subcommands of admin-token and audit against the
// admin API: tenant admin tokens (issued and revoked by the platform admin)
// and the audit log.
func auditCommand(ctx context.Context, noun string, args []string) error {
	cmd, err := newSubcommand(noun, args)
	if err != nil {
		return err
	}
	fs, verb := cmd.fs, cmd.verb
	name := fs.String("name", "", "who the admin token is for, e.g. alice (shown in the audit log)")
	ttl := fs.Duration("ttl", 0, "admin token lifetime, e.g. 720h (default 720h, at most 8760h)")
	limit := fs.Int("limit", 0, "most entries to show (default 100, at most 1000)")
	before := fs.String("before", "", "only entries before this RFC 3339 time, e.g. 2026-01-02T15:04:05Z")
	if err := cmd.parse(); err != nil {
		return err
	}
	tenant, asJSON, pos, c, out, needTenant := cmd.tenant, cmd.asJSON, cmd.pos, cmd.client, cmd.out, cmd.needTenant

	switch noun + " " + verb {
	case "admin-token issue":
		if err := needTenant(); err != nil {
			return err
		}
		t, err := c.IssueAdminToken(ctx, *tenant, *name, *ttl)
		if err != nil {
			return err
		}
		// Only the token, so that $(blockgate admin-token issue ...) works.
		return show(out, *asJSON, t, func(w io.Writer) { fmt.Fprintln(w, t.Text) })
	case "admin-token list":
		if err := needTenant(); err != nil {
			return err
		}
		ts, err := c.AdminTokens(ctx, *tenant)
		if err != nil {
			return err
		}
		return show(out, *asJSON, ts, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tISSUED\tEXPIRES\tREVOKED")
			for _, t := range ts {
				revoked := "-"
				if t.RevokedAt != nil {
					revoked = t.RevokedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, orDash(t.Name), t.IssuedAt.Format(time.RFC3339),
					t.ExpiresAt.Format(time.RFC3339), revoked)
			}
			tw.Flush()
		})
	case "admin-token revoke":
		if len(pos) != 1 {
			return usageError{"admin-token revoke takes one admin token id (see admin-token list)"}
		}
		t, err := c.RevokeAdminToken(ctx, pos[0])
		if err != nil {
			return err
		}
		return show(out, *asJSON, t, func(w io.Writer) { fmt.Fprintf(w, "admin token %s of tenant %s revoked\n", t.ID, t.Tenant) })
	case "audit list":
		q := adminclient.AuditQuery{Tenant: *tenant, Limit: *limit}
		if *before != "" {
			b, err := time.Parse(time.RFC3339Nano, *before)
			if err != nil {
				return usageError{fmt.Sprintf("--before %q is not an RFC 3339 time like 2026-01-02T15:04:05Z", *before)}
			}
			q.Before = b
		}
		es, err := c.Audit(ctx, q)
		if err != nil {
			return err
		}
		return show(out, *asJSON, es, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tACTOR\tTENANT\tMETHOD\tPATH\tSTATUS\tCLIENT")
			for _, e := range es {
				actor := e.ActorRole
				if e.ActorRole == "tenant" {
					actor = "tenant:" + e.ActorID
					if e.ActorName != "" {
						actor += "(" + e.ActorName + ")"
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.At.Format(time.RFC3339), actor, orDash(string(e.Tenant)),
					e.Method, e.Path, e.Status, orDash(e.ClientAddr))
			}
			tw.Flush()
		})
	}
	return usageError{fmt.Sprintf("unknown command %q", noun+" "+verb)}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
