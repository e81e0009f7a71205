package gateway

import (
	"context"
	"errors"

	"github.com/blockgate/blockgate/auth/authpolicy"
	"github.com/blockgate/blockgate/blocks"
	"github.com/blockgate/blockgate/blocks/invoke"
	"github.com/blockgate/blockgate/tenants"
)

// policies applies the tenants' access policies (authpolicy): who may
// invoke whom, and, with a tenant's deny-by-default switch, which apps may
// use which components and topics. It implements invoke.Authorize (as a
// method value) and tenants.Access.
type policies struct {
	cache *authpolicy.Cache
}

var _ tenants.Access = policies{}

// set returns the tenant's policy set; a registry outage refuses with 503
// rather than guessing.
func (p policies) set(ctx context.Context, tenant tenants.ID) (*authpolicy.Set, error) {
	s, err := p.cache.Set(ctx, tenant)
	if err != nil {
		return nil, blocks.ErrUnavailable("the access policies", err)
	}
	return s, nil
}

// Authorize implements invoke.Authorize.
func (p policies) Authorize(ctx context.Context, caller tenants.Principal, target string, op invoke.Operation) error {
	s, err := p.set(ctx, caller.Tenant)
	if err != nil {
		return err
	}
	if d := s.Invoke(caller.AppID, target, op.Method, op.Verb, op.GRPC); !d.Allowed {
		return errors.New(d.Reason)
	}
	return nil
}

// Component implements tenants.Access.
func (p policies) Component(ctx context.Context, pr tenants.Principal, c tenants.Component) error {
	s, err := p.set(ctx, pr.Tenant)
	if err != nil {
		return err
	}
	if d := s.Component(pr.AppID, c); !d.Allowed {
		return errors.New(d.Reason)
	}
	return nil
}

// Topic implements tenants.Access.
func (p policies) Topic(ctx context.Context, pr tenants.Principal, c tenants.Component, topic string, publish bool) error {
	s, err := p.set(ctx, pr.Tenant)
	if err != nil {
		return err
	}
	if d := s.Topic(pr.AppID, c, topic, publish); !d.Allowed {
		return errors.New(d.Reason)
	}
	return nil
}
