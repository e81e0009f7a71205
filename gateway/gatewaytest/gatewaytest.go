// Package gatewaytest has the hand-written fakes the transport adapters'
// tests share: an authenticator, a component source and an app attribute
// store, plus block services wired to in-memory stores.
package gatewaytest

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/blockgate/blockgate/blocks/metadata"
	"github.com/blockgate/blockgate/blocks/state"
	"github.com/blockgate/blockgate/blocks/state/statemem"
	"github.com/blockgate/blockgate/tenants"
)

// Auth accepts tokens of the form "tenant/app".
type Auth struct{}

// AuthenticateRequest implements the transports' Authenticator; it ignores
// the connection.
func (Auth) AuthenticateRequest(_ context.Context, tok string, _ *tls.ConnectionState) (tenants.Principal, error) {
	t, a, ok := strings.Cut(tok, "/")
	if !ok {
		return tenants.Principal{}, errors.New("bad token")
	}
	return tenants.Principal{Tenant: tenants.ID(t), AppID: a}, nil
}

// Components gives every tenant one in-memory state store, "statestore".
type Components struct{}

// Component implements state.Components.
func (Components) Component(_ context.Context, t tenants.ID, name string) (tenants.Component, bool, error) {
	if name != "statestore" {
		return tenants.Component{}, false, nil
	}
	return tenants.Component{Tenant: t, Name: name, Type: "state.in-memory", Version: "v1", Revision: 1}, true, nil
}

// HasKind implements state.Components.
func (Components) HasKind(context.Context, tenants.ID, string) (bool, error) { return true, nil }

// Components implements metadata.Components.
func (c Components) Components(ctx context.Context, t tenants.ID) ([]tenants.Component, error) {
	comp, _, _ := c.Component(ctx, t, "statestore")
	return []tenants.Component{comp}, nil
}

// Attributes stores nothing.
type Attributes struct{}

// SetAppMetadata implements metadata.Attributes.
func (Attributes) SetAppMetadata(context.Context, tenants.ID, string, string, string) error {
	return nil
}

// AppMetadata implements metadata.Attributes.
func (Attributes) AppMetadata(context.Context, tenants.ID, string) (map[string]string, error) {
	return map[string]string{}, nil
}

// Services are block services over in-memory stores: one store per tenant.
type Services struct {
	State    *state.Service
	Metadata *metadata.Service
	Logger   *slog.Logger
}

// NewServices builds the services the adapters' tests serve.
func NewServices() Services {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var mu sync.Mutex
	stores := map[tenants.ID]*statemem.Store{}
	svc := state.NewService(Components{}, map[string]state.Opener{
		"state.in-memory": func(c tenants.Component) (state.Store, error) {
			mu.Lock()
			defer mu.Unlock()
			if stores[c.Tenant] == nil {
				stores[c.Tenant] = statemem.New()
			}
			return stores[c.Tenant], nil
		},
	}, logger)
	return Services{
		State:    svc,
		Metadata: metadata.NewService(Components{}, Attributes{}, svc.Capabilities, nil, "test"),
		Logger:   logger,
	}
}
