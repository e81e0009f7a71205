package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// envoyCommand runs the subcommands of envoy and join-token (what an app's
// Envoy sidecar needs to join the gateway's xDS control plane) and of
// cluster.
func envoyCommand(ctx context.Context, noun string, args []string) error {
	cmd, err := newSubcommand(noun, args)
	if err != nil {
		return err
	}
	fs, verb := cmd.fs, cmd.verb
	app := fs.String("app", "", "app id")
	appPort := fs.Int("app-port", 0, "port the app listens on at 127.0.0.1, where the sidecar's inbound listener forwards (0: the app takes no calls)")
	instance := fs.String("instance", "", "name of this sidecar among the app's (default: this host's name)")
	ttl := fs.Duration("ttl", 0, "join token lifetime, e.g. 720h (default 720h)")
	outFile := fs.String("o", "", "write the bootstrap to this file (mode 0600) instead of standard output")
	if err := cmd.parse(); err != nil {
		return err
	}
	tenant, asJSON, c, out := cmd.tenant, cmd.asJSON, cmd.client, cmd.out
	needApp := func() error {
		if err := cmd.needTenant(); err != nil {
			return err
		}
		if *app == "" {
			return usageError{fmt.Sprintf("%s %s needs --app APP_ID", noun, verb)}
		}
		return nil
	}

	switch noun + " " + verb {
	case "envoy bootstrap":
		if err := needApp(); err != nil {
			return err
		}
		if *instance == "" {
			if *instance, err = os.Hostname(); err != nil {
				return fmt.Errorf("naming the instance: %w (pass --instance)", err)
			}
		}
		y, err := c.EnvoyBootstrap(ctx, *tenant, *app, *instance, *appPort, *ttl)
		if err != nil {
			return err
		}
		if *outFile == "" {
			_, err := out.Write(y)
			return err
		}
		// The bootstrap holds the join token: as private as a key.
		if err := os.WriteFile(*outFile, y, 0o600); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s: envoy -c %s\n", *outFile, *outFile)
		return nil
	case "envoy status":
		ss, err := c.Sidecars(ctx, *tenant)
		if err != nil {
			return err
		}
		return show(out, *asJSON, ss, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tCONNECTED\tVERSION\tACKED\tNACKS")
			for _, s := range ss {
				acked := make([]string, 0, len(s.Acked))
				for k, v := range s.Acked {
					acked = append(acked, k+"="+v)
				}
				nacks := "-"
				if len(s.NACKs) > 0 {
					last := s.NACKs[len(s.NACKs)-1]
					nacks = fmt.Sprintf("%d (last %s: %s)", len(s.NACKs), last.Type, last.Error)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.ConnectedAt.Format(time.RFC3339), s.Version, strings.Join(acked, " "), nacks)
			}
			tw.Flush()
		})
	case "cluster nodes":
		ns, err := c.ClusterNodes(ctx)
		if err != nil {
			return err
		}
		return show(out, *asJSON, ns, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE	HTTP	GRPC	ADMIN	VERSION	STARTED	LAST SEEN")
			for _, n := range ns {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.HTTP, n.GRPC, n.Admin, n.Version,
					n.StartedAt.Format(time.RFC3339), n.LastSeen.Format(time.RFC3339))
			}
			tw.Flush()
		})
	case "join-token issue":
		if err := needApp(); err != nil {
			return err
		}
		t, err := c.IssueJoinToken(ctx, *tenant, *app, *ttl)
		if err != nil {
			return err
		}
		return show(out, *asJSON, t, func(w io.Writer) { fmt.Fprintln(w, t.Text) })
	case "join-token list":
		if err := cmd.needTenant(); err != nil {
			return err
		}
		ts, err := c.JoinTokens(ctx, *tenant)
		if err != nil {
			return err
		}
		return show(out, *asJSON, ts, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tAPP ID\tEXPIRES\tREVOKED")
			for _, t := range ts {
				revoked := "-"
				if t.RevokedAt != nil {
					revoked = t.RevokedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.AppID, t.ExpiresAt.Format(time.RFC3339), revoked)
			}
			tw.Flush()
		})
	case "join-token revoke":
		if err := cmd.need(1, "one join token id (see join-token list)"); err != nil {
			return err
		}
		if err := cmd.needTenant(); err != nil {
			return err
		}
		if _, err := c.RevokeJoinToken(ctx, *tenant, cmd.pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(out, "join token %s revoked; its sidecars are disconnected\n", cmd.pos[0])
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %s %s", noun, verb)}
}
