package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/blockgate/blockgate/admin/adminclient"
)

// subcommand is one admin subcommand being run: `blockgate NOUN VERB
// [flags] [args]`. newSubcommand makes its flag set with the flags every
// subcommand has (--tenant, --json); the caller adds its own, then parse
// reads the arguments and connects the admin client.
type subcommand struct {
	noun, verb string
	fs         *flag.FlagSet
	tenant     *string
	asJSON     *bool
	args       []string // after the verb
	pos        []string // positional arguments, after parse
	client     *adminclient.Client
	out        io.Writer
}

func newSubcommand(noun string, args []string) (*subcommand, error) {
	if len(args) == 0 {
		return nil, usageError{fmt.Sprintf("%s needs a verb", noun)}
	}
	c := &subcommand{noun: noun, verb: args[0], args: args[1:], out: os.Stdout}
	c.fs = flag.NewFlagSet(noun+" "+c.verb, flag.ContinueOnError)
	c.tenant = c.fs.String("tenant", "", "tenant name")
	c.asJSON = c.fs.Bool("json", false, "print JSON")
	return c, nil
}

// parse reads the flags and positional arguments and connects the client.
func (c *subcommand) parse() error {
	var err error
	if c.pos, err = parseInterspersed(c.fs, c.args); err != nil {
		return err
	}
	c.client, err = client()
	return err
}

// need checks that there are n positional arguments, described by what.
func (c *subcommand) need(n int, what string) error {
	if len(c.pos) != n {
		return usageError{fmt.Sprintf("%s %s takes %s", c.noun, c.verb, what)}
	}
	return nil
}

// needTenant checks that --tenant was given.
func (c *subcommand) needTenant() error {
	if *c.tenant == "" {
		return usageError{fmt.Sprintf("%s %s needs --tenant NAME", c.noun, c.verb)}
	}
	return nil
}

// adminCommand runs one of the admin subcommands against the admin API at
// BLOCKGATE_ADMIN_URL with BLOCKGATE_ADMIN_TOKEN.
func adminCommand(ctx context.Context, noun string, args []string) error {
	cmd, err := newSubcommand(noun, args)
	if err != nil {
		return err
	}
	fs, verb := cmd.fs, cmd.verb
	app := fs.String("app", "", "app id")
	endpoint := fs.String("endpoint", "", "the app's base URL, for calls from the gateway to the app")
	healthPath := fs.String("path", "", "health check path, e.g. /healthz (empty: no checks)")
	interval := fs.Duration("interval", 0, "health check interval (default 5s)")
	threshold := fs.Int("threshold", 0, "failed checks in a row that make an instance unhealthy (default 3)")
	appToken := fs.String("app-token", "", "token the gateway sends to the app's endpoint as dapr-api-token (daprd's APP_API_TOKEN)")
	ttl := fs.Duration("ttl", 0, "token lifetime, e.g. 24h (default 24h, at most 720h)")
	file := fs.String("f", "", "resource file (YAML or JSON), - for standard input")
	quotaFlags := newQuotaFlags(fs)
	if err := cmd.parse(); err != nil {
		return err
	}
	tenant, asJSON, pos, c, out := cmd.tenant, cmd.asJSON, cmd.pos, cmd.client, cmd.out
	need, needTenant := cmd.need, cmd.needTenant

	switch noun + " " + verb {
	case "tenant create":
		if err := need(1, "one tenant name"); err != nil {
			return err
		}
		t, err := c.CreateTenant(ctx, pos[0])
		if err != nil {
			return err
		}
		return show(out, *asJSON, t, func(w io.Writer) { fmt.Fprintf(w, "tenant %s created\n", t.ID) })
	case "tenant list":
		ts, err := c.Tenants(ctx)
		if err != nil {
			return err
		}
		return show(out, *asJSON, ts, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tCREATED")
			for _, t := range ts {
				fmt.Fprintf(tw, "%s\t%s\n", t.ID, t.CreatedAt.Format(time.RFC3339))
			}
			tw.Flush()
		})
	case "tenant limits":
		if err := need(1, "one tenant name"); err != nil {
			return err
		}
		// Only the limits named by flags change; the others stay.
		cur, err := c.Tenant(ctx, pos[0])
		if err != nil {
			return err
		}
		l := cur.Limits
		if err := quotaFlags.apply(fs, &l); err != nil {
			return err
		}
		t, err := c.SetLimits(ctx, pos[0], l)
		if err != nil {
			return err
		}
		return show(out, *asJSON, t, func(w io.Writer) { describeLimits(w, t) })
	case "tenant delete":
		if err := need(1, "one tenant name"); err != nil {
			return err
		}
		if err := c.DeleteTenant(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(out, "tenant %s deleted\n", pos[0])
		return nil
	case "app create":
		if err := needTenant(); err != nil {
			return err
		}
		if err := need(1, "one app id"); err != nil {
			return err
		}
		a, err := c.CreateApp(ctx, *tenant, pos[0], *endpoint, *appToken)
		if err != nil {
			return err
		}
		return show(out, *asJSON, a, func(w io.Writer) { fmt.Fprintf(w, "app %s created in tenant %s\n", a.ID, a.Tenant) })
	case "app apply":
		if err := needTenant(); err != nil {
			return err
		}
		if *file == "" {
			return usageError{"app apply needs -f FILE.yaml (a blockgate.io/v1alpha1 App or a dapr.io/v1alpha1 HTTPEndpoint)"}
		}
		doc, err := readFile(*file)
		if err != nil {
			return err
		}
		a, err := c.ApplyApp(ctx, *tenant, doc)
		if err != nil {
			return err
		}
		return show(out, *asJSON, a, func(w io.Writer) {
			verb := "updated"
			if a.Created {
				verb = "created"
			}
			fmt.Fprintf(w, "app %s %s in tenant %s with %d instance(s)\n", a.App.ID, verb, *tenant, len(a.App.Endpoints()))
		})
	case "app list":
		if err := needTenant(); err != nil {
			return err
		}
		as, err := c.Apps(ctx, *tenant)
		if err != nil {
			return err
		}
		return show(out, *asJSON, as, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "APP ID\tENDPOINT\tCREATED")
			for _, a := range as {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", a.ID, a.Endpoint, a.CreatedAt.Format(time.RFC3339))
			}
			tw.Flush()
		})
	case "app add-instance":
		if err := needTenant(); err != nil {
			return err
		}
		if err := need(2, "an app id and an instance id"); err != nil {
			return err
		}
		if err := c.AddInstance(ctx, *tenant, pos[0], pos[1], *endpoint); err != nil {
			return err
		}
		fmt.Fprintf(out, "instance %s of app %s at %s\n", pos[1], pos[0], *endpoint)
		return nil
	case "app remove-instance":
		if err := needTenant(); err != nil {
			return err
		}
		if err := need(2, "an app id and an instance id"); err != nil {
			return err
		}
		if err := c.RemoveInstance(ctx, *tenant, pos[0], pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(out, "instance %s of app %s removed\n", pos[1], pos[0])
		return nil
	case "app health":
		if err := needTenant(); err != nil {
			return err
		}
		if err := need(1, "one app id"); err != nil {
			return err
		}
		if err := c.SetHealth(ctx, *tenant, pos[0], *healthPath, *interval, *threshold); err != nil {
			return err
		}
		fmt.Fprintf(out, "health check of app %s set\n", pos[0])
		return nil
	case "app delete":
		if err := needTenant(); err != nil {
			return err
		}
		if err := need(1, "one app id"); err != nil {
			return err
		}
		if err := c.DeleteApp(ctx, *tenant, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(out, "app %s deleted; its tokens are revoked\n", pos[0])
		return nil
	case "token issue":
		if err := needTenant(); err != nil {
			return err
		}
		if *app == "" {
			return usageError{"token issue needs --app APP_ID"}
		}
		t, err := c.IssueToken(ctx, *tenant, *app, *ttl)
		if err != nil {
			return err
		}
		// Only the token, so that $(blockgate token issue ...) works.
		return show(out, *asJSON, t, func(w io.Writer) { fmt.Fprintln(w, t.Text) })
	case "token list":
		if err := needTenant(); err != nil {
			return err
		}
		ts, err := c.Tokens(ctx, *tenant)
		if err != nil {
			return err
		}
		return show(out, *asJSON, ts, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tAPP ID\tISSUED\tEXPIRES\tREVOKED")
			for _, t := range ts {
				revoked := "-"
				if t.RevokedAt != nil {
					revoked = t.RevokedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.AppID, t.IssuedAt.Format(time.RFC3339), t.ExpiresAt.Format(time.RFC3339), revoked)
			}
			tw.Flush()
		})
	case "token revoke":
		if err := need(1, "one token id (see token list)"); err != nil {
			return err
		}
		t, err := c.RevokeToken(ctx, pos[0])
		if err != nil {
			return err
		}
		return show(out, *asJSON, t, func(w io.Writer) { fmt.Fprintf(w, "token %s of %s/%s revoked\n", t.ID, t.Tenant, t.AppID) })
	case "component apply":
		if err := needTenant(); err != nil {
			return err
		}
		if *file == "" {
			return usageError{"component apply needs -f FILE.yaml"}
		}
		doc, err := readFile(*file)
		if err != nil {
			return err
		}
		comp, err := c.ApplyComponent(ctx, *tenant, doc)
		if err != nil {
			return err
		}
		return show(out, *asJSON, comp, func(w io.Writer) {
			fmt.Fprintf(w, "component %s (%s) applied to tenant %s, revision %d\n", comp.Name, comp.Type, *tenant, comp.Revision)
		})
	case "component list":
		if err := needTenant(); err != nil {
			return err
		}
		cs, err := c.Components(ctx, *tenant)
		if err != nil {
			return err
		}
		return show(out, *asJSON, cs, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tTYPE\tVERSION\tREVISION")
			for _, comp := range cs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", comp.Name, comp.Type, comp.Version, comp.Revision)
			}
			tw.Flush()
		})
	case "component delete":
		if err := needTenant(); err != nil {
			return err
		}
		if err := need(1, "one component name"); err != nil {
			return err
		}
		if err := c.DeleteComponent(ctx, *tenant, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(out, "component %s deleted\n", pos[0])
		return nil
	case "subscription apply":
		if err := needTenant(); err != nil {
			return err
		}
		if *file == "" {
			return usageError{"subscription apply needs -f FILE.yaml"}
		}
		doc, err := readFile(*file)
		if err != nil {
			return err
		}
		sub, err := c.ApplySubscription(ctx, *tenant, doc)
		if err != nil {
			return err
		}
		return show(out, *asJSON, sub, func(w io.Writer) {
			fmt.Fprintf(w, "subscription %s (%s/%s) applied to tenant %s, revision %d\n", sub.Name, sub.Pubsub, sub.Topic, *tenant, sub.Revision)
		})
	case "subscription list":
		if err := needTenant(); err != nil {
			return err
		}
		subs, err := c.Subscriptions(ctx, *tenant)
		if err != nil {
			return err
		}
		return show(out, *asJSON, subs, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPUBSUB\tTOPIC\tREVISION")
			for _, s := range subs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", s.Name, s.Pubsub, s.Topic, s.Revision)
			}
			tw.Flush()
		})
	case "subscription delete":
		if err := needTenant(); err != nil {
			return err
		}
		if err := need(1, "one subscription name"); err != nil {
			return err
		}
		if err := c.DeleteSubscription(ctx, *tenant, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(out, "subscription %s deleted\n", pos[0])
		return nil
	case "resiliency apply":
		if err := needTenant(); err != nil {
			return err
		}
		if *file == "" {
			return usageError{"resiliency apply needs -f FILE.yaml"}
		}
		doc, err := readFile(*file)
		if err != nil {
			return err
		}
		r, err := c.ApplyResiliency(ctx, *tenant, doc)
		if err != nil {
			return err
		}
		return show(out, *asJSON, r, func(w io.Writer) {
			fmt.Fprintf(w, "resiliency %s applied to tenant %s, revision %d\n", r.Name, *tenant, r.Revision)
		})
	case "resiliency list":
		if err := needTenant(); err != nil {
			return err
		}
		rs, err := c.Resiliencies(ctx, *tenant)
		if err != nil {
			return err
		}
		return show(out, *asJSON, rs, func(w io.Writer) {
			for _, r := range rs {
				fmt.Fprintf(w, "%s\t(revision %d)\n", r.Name, r.Revision)
			}
		})
	case "resiliency delete":
		if err := needTenant(); err != nil {
			return err
		}
		if err := need(1, "one resiliency name"); err != nil {
			return err
		}
		if err := c.DeleteResiliency(ctx, *tenant, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(out, "resiliency %s deleted\n", pos[0])
		return nil
	case "key rotate":
		kid, err := c.RotateSigningKey(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "new signing key %s; tokens signed by older keys keep working until they expire\n", kid)
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %q", noun+" "+verb)}
}

// parseInterspersed parses flags that may come before, between or after the
// positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func client() (*adminclient.Client, error) {
	url := os.Getenv("BLOCKGATE_ADMIN_URL")
	if url == "" {
		url = "http://127.0.0.1:8080"
	}
	token := os.Getenv("BLOCKGATE_ADMIN_TOKEN")
	if token == "" {
		return nil, usageError{"BLOCKGATE_ADMIN_TOKEN is not set: export it (serve --dev writes it to .blockgate/dev.env; otherwise it is in <data-dir>/admin-token)"}
	}
	return adminclient.New(url, token), nil
}

func readFile(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}

func show(w io.Writer, asJSON bool, v any, text func(io.Writer)) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(w)
	return nil
}

// parseBytes reads a size such as 1048576, 512MiB or 2GiB.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("a size is required, e.g. 512MiB")
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size like 512MiB", s)
	}
	return n * mult, nil
}

func describeBytes(n int64) string {
	if n == 0 {
		return "the gateway's default"
	}
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
