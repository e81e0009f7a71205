package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/blockgate/blockgate/tenants"
)

// quotaFlags are the flags of `tenant limits`, one per tenants.Limits
// field. A flag left out keeps the tenant's current value; 0 returns to
// the gateway's default and -1 lifts the limit for the tenant.
type quotaFlags struct {
	pubsubMax, maxRequest, stateMax             *string
	rps, appRPS                                 *string
	burst, appBurst, subscriptions, apps, conns *string
}

func newQuotaFlags(fs *flag.FlagSet) *quotaFlags {
	return &quotaFlags{
		pubsubMax:     fs.String("pubsub-max-bytes", "", "stored pub/sub messages, e.g. 512MiB or 2GiB"),
		maxRequest:    fs.String("max-request-bytes", "", "one request body or gRPC message, e.g. 4MiB"),
		stateMax:      fs.String("state-max-bytes", "", "stored state, keys and values, e.g. 10GiB"),
		rps:           fs.String("rps", "", "API requests per second of the whole tenant"),
		burst:         fs.String("burst", "", "requests the tenant may send at once above its rate"),
		appRPS:        fs.String("app-rps", "", "API requests per second of each app"),
		appBurst:      fs.String("app-burst", "", "requests an app may send at once above its rate"),
		subscriptions: fs.String("max-subscriptions", "", "declarative plus streaming subscriptions"),
		apps:          fs.String("max-apps", "", "apps of the tenant"),
		conns:         fs.String("max-connections", "", "concurrent requests and streams per gateway node"),
	}
}

// apply changes l by the flags that were given.
func (q *quotaFlags) apply(fs *flag.FlagSet, l *tenants.Limits) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	bytes := func(name string, v *string, dst *int64) error {
		if !set[name] {
			return nil
		}
		if *v == "-1" {
			*dst = -1
			return nil
		}
		if *v == "0" {
			*dst = 0
			return nil
		}
		n, err := parseBytes(*v)
		if err != nil {
			return usageError{fmt.Sprintf("--%s: %v", name, err)}
		}
		*dst = n
		return nil
	}
	count := func(name string, v *string, dst *int) error {
		if !set[name] {
			return nil
		}
		n, err := strconv.Atoi(*v)
		if err != nil || n < -1 {
			return usageError{fmt.Sprintf("--%s %q: want a whole number, 0 for the default or -1 for no limit", name, *v)}
		}
		*dst = n
		return nil
	}
	rate := func(name string, v *string, dst *float64) error {
		if !set[name] {
			return nil
		}
		n, err := strconv.ParseFloat(*v, 64)
		if err != nil || (n < 0 && n != -1) {
			return usageError{fmt.Sprintf("--%s %q: want requests per second, 0 for the default or -1 for no limit", name, *v)}
		}
		*dst = n
		return nil
	}
	for _, err := range []error{
		bytes("pubsub-max-bytes", q.pubsubMax, &l.PubsubMaxBytes),
		bytes("max-request-bytes", q.maxRequest, &l.MaxRequestBytes),
		bytes("state-max-bytes", q.stateMax, &l.StateMaxBytes),
		rate("rps", q.rps, &l.RequestsPerSecond),
		rate("app-rps", q.appRPS, &l.AppRequestsPerSecond),
		count("burst", q.burst, &l.RequestBurst),
		count("app-burst", q.appBurst, &l.AppRequestBurst),
		count("max-subscriptions", q.subscriptions, &l.MaxSubscriptions),
		count("max-apps", q.apps, &l.MaxApps),
		count("max-connections", q.conns, &l.MaxConnections),
	} {
		if err != nil {
			return err
		}
	}
	if len(set) == 0 {
		return usageError{"tenant limits needs at least one limit flag (blockgate tenant limits -h lists them)"}
	}
	return nil
}

// describeLimits prints a tenant's limits, one per line.
func describeLimits(w io.Writer, t tenants.Tenant) {
	l := t.Limits
	num := func(v float64) string {
		switch {
		case v == 0:
			return "the gateway's default"
		case v < 0:
			return "no limit"
		}
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	size := func(v int64) string {
		if v < 0 {
			return "no limit"
		}
		return describeBytes(v)
	}
	fmt.Fprintf(w, "tenant %s:\n", t.ID)
	fmt.Fprintf(w, "  pub/sub storage      %s\n", size(l.PubsubMaxBytes))
	fmt.Fprintf(w, "  state storage        %s\n", size(l.StateMaxBytes))
	fmt.Fprintf(w, "  request size         %s\n", size(l.MaxRequestBytes))
	fmt.Fprintf(w, "  requests/s (tenant)  %s, burst %s\n", num(l.RequestsPerSecond), num(float64(l.RequestBurst)))
	fmt.Fprintf(w, "  requests/s (app)     %s, burst %s\n", num(l.AppRequestsPerSecond), num(float64(l.AppRequestBurst)))
	fmt.Fprintf(w, "  subscriptions        %s\n", num(float64(l.MaxSubscriptions)))
	fmt.Fprintf(w, "  apps                 %s\n", num(float64(l.MaxApps)))
	fmt.Fprintf(w, "  connections per node %s\n", num(float64(l.MaxConnections)))
}
