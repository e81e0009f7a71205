package auth

import (
	"context"

	"github.com/blockgate/blockgate/tenants"
)

type principalKey struct{}

// WithPrincipal returns ctx carrying the authenticated principal.
func WithPrincipal(ctx context.Context, p tenants.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal a transport's authentication stored
// in ctx; ok is false for an unauthenticated context.
func PrincipalFrom(ctx context.Context) (p tenants.Principal, ok bool) {
	p, ok = ctx.Value(principalKey{}).(tenants.Principal)
	return p, ok
}
