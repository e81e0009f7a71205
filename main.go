// Command blockgate runs a blockgate gateway node and administers tenants,
// apps, tokens and components through a node's admin API.
//
//	blockgate serve [flags]            run a node (see blockgate serve -h)
//	blockgate migrate [flags]          apply database migrations and exit
//	blockgate tenant create NAME       and the other admin commands: blockgate help
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "blockgate:", err)
		}
		os.Exit(exitCode(err))
	}
}

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg + " (see blockgate help)" }

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Print(usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:])
	case "migrate":
		return migrate(ctx, args[1:])
	case "tenant", "app", "token", "component", "subscription", "resiliency", "key":
		return adminCommand(ctx, args[0], args[1:])
	case "admin-token", "audit":
		return auditCommand(ctx, args[0], args[1:])
	case "federation", "policy", "svid", "ca":
		return identityCommand(ctx, args[0], args[1:])
	case "envoy", "join-token", "cluster":
		return envoyCommand(ctx, args[0], args[1:])
	case "version":
		fmt.Println(version)
		return nil
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

const usage = `blockgate serves the Dapr building-block APIs to many tenants from one gateway.

Run a node:
  blockgate serve [--dev] [flags]     flags: blockgate serve -h
  blockgate migrate [flags]           apply database migrations and exit

Administer (BLOCKGATE_ADMIN_URL, BLOCKGATE_ADMIN_TOKEN: the platform admin token,
or a tenant admin token for the commands on its own tenant):
  blockgate tenant create NAME
  blockgate tenant list
  blockgate tenant delete NAME
  blockgate tenant limits NAME [--rps N --burst N --app-rps N --app-burst N
        --max-request-bytes SIZE --state-max-bytes SIZE --pubsub-max-bytes SIZE
        --max-subscriptions N --max-apps N --max-connections N]   (0 default, -1 none)
  blockgate app create --tenant NAME APP_ID [--endpoint URL [--app-token TOKEN]]
  blockgate app apply --tenant NAME -f APP.yaml   (blockgate App or Dapr HTTPEndpoint)
  blockgate app list --tenant NAME
  blockgate app add-instance --tenant NAME APP_ID INSTANCE_ID --endpoint URL
  blockgate app remove-instance --tenant NAME APP_ID INSTANCE_ID
  blockgate app health --tenant NAME APP_ID --path /healthz [--interval 5s] [--threshold 3]
  blockgate app delete --tenant NAME APP_ID
  blockgate token issue --tenant NAME --app APP_ID [--ttl DURATION]
  blockgate token list --tenant NAME
  blockgate token revoke ID
  blockgate component apply --tenant NAME -f FILE.yaml
  blockgate component list --tenant NAME
  blockgate component delete --tenant NAME COMPONENT
  blockgate subscription apply --tenant NAME -f FILE.yaml
  blockgate subscription list --tenant NAME
  blockgate subscription delete --tenant NAME SUBSCRIPTION
  blockgate resiliency apply --tenant NAME -f FILE.yaml
  blockgate resiliency list --tenant NAME
  blockgate resiliency delete --tenant NAME RESILIENCY
  blockgate key rotate
  blockgate admin-token issue --tenant NAME [--name WHO] [--ttl 720h]   (platform; prints only the token)
  blockgate admin-token list --tenant NAME
  blockgate admin-token revoke ID
  blockgate audit list [--tenant NAME] [--limit 100] [--before TIME]
  blockgate federation apply --tenant NAME -f ISSUER.yaml   (a FederatedIssuer: trust an OIDC issuer)
  blockgate federation list --tenant NAME
  blockgate federation delete --tenant NAME FEDERATION
  blockgate policy apply --tenant NAME -f CONFIG.yaml [--app CALLEE,...]   (Dapr Configuration accessControl)
  blockgate policy list --tenant NAME
  blockgate policy delete --tenant NAME POLICY
  blockgate policy deny-by-default --tenant NAME on|off
  blockgate svid issue --tenant NAME --app APP_ID [--csr FILE] [--ttl 24h] [--cert-out F --key-out F --bundle-out F]
  blockgate ca rotate
  blockgate envoy bootstrap --tenant NAME --app APP_ID [--app-port P] [--instance NAME] [-o envoy.yaml]
  blockgate envoy status [--tenant NAME]                 (sidecars on this node: acked versions, NACKs)
  blockgate join-token issue --tenant NAME --app APP_ID [--ttl 720h]
  blockgate join-token list --tenant NAME
  blockgate join-token revoke --tenant NAME ID
  blockgate cluster nodes                                (the live gateway nodes)
  blockgate version
`
