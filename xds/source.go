package xds

import (
	"context"
	"errors"
	"fmt"

	"github.com/blockgate/blockgate/auth/authpolicy"
	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
)

// AppRegistry is where NewRegistrySource reads a tenant's apps;
// *tenantspg.Registry is one.
type AppRegistry interface {
	Apps(ctx context.Context, tenant tenants.ID) ([]tenants.App, error)
	// App returns one app with its instances.
	App(ctx context.Context, tenant tenants.ID, appID string) (tenants.App, error)
}

// PolicySets gives a tenant's access policy; *authpolicy.Cache is one.
type PolicySets interface {
	Set(ctx context.Context, tenant tenants.ID) (*authpolicy.Set, error)
}

var (
	_ AppRegistry = (*tenantspg.Registry)(nil)
	_ PolicySets  = (*authpolicy.Cache)(nil)
)

// NewRegistrySource is the Source of a gateway: the tenant's apps with
// their instances from the registry, and its access policy from the
// policy cache. The gateway must drop the cache's entry of a tenant
// before it calls Refresh for a policy change, or the rebuild sees the old
// policy. It lists no Sidecars; wrap it to add TenantConfig.Sidecars from
// the cluster's view (with Config.Presence, the only view).
func NewRegistrySource(apps AppRegistry, policies PolicySets) Source {
	return SourceFunc(func(ctx context.Context, tenant tenants.ID) (TenantConfig, error) {
		list, err := apps.Apps(ctx, tenant)
		if err != nil {
			return TenantConfig{}, fmt.Errorf("listing the apps of tenant %s: %w", tenant, err)
		}
		cfg := TenantConfig{Apps: make([]tenants.App, 0, len(list))}
		for _, a := range list {
			full, err := apps.App(ctx, tenant, a.ID)
			if errors.Is(err, tenants.ErrNotFound) {
				continue // deleted meanwhile
			}
			if err != nil {
				return TenantConfig{}, fmt.Errorf("loading app %s of tenant %s: %w", a.ID, tenant, err)
			}
			cfg.Apps = append(cfg.Apps, full)
		}
		if cfg.Policy, err = policies.Set(ctx, tenant); err != nil {
			return TenantConfig{}, fmt.Errorf("loading the access policy of tenant %s: %w", tenant, err)
		}
		return cfg, nil
	})
}
