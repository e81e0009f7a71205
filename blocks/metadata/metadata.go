// Package metadata is Dapr's metadata API: who the caller is (its app id)
// and what its tenant gives it (components with their capabilities), plus
// the extended attributes an app sets on itself.
package metadata

import (
	"context"
	"net/http"

	"github.com/blockgate/blockgate/blocks"
	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/tenants"
)

// Components lists a tenant's components.
type Components interface {
	Components(ctx context.Context, tenant tenants.ID) ([]tenants.Component, error)
}

// Attributes stores an app's extended metadata attributes.
type Attributes interface {
	SetAppMetadata(ctx context.Context, tenant tenants.ID, appID, key, value string) error
	AppMetadata(ctx context.Context, tenant tenants.ID, appID string) (map[string]string, error)
}

// Capabilities returns the Dapr capabilities of a component, or nil when the
// gateway does not know its type.
type Capabilities func(c tenants.Component) []string

// Subscriptions lists the subscriptions delivering to an app.
type Subscriptions func(tenant tenants.ID, appID string) []pubsub.Active

// Service answers the metadata API. It is safe for concurrent use.
type Service struct {
	components    Components
	attributes    Attributes
	capabilities  Capabilities
	subscriptions Subscriptions
	version       string
}

// NewService returns the metadata service; version is reported as the
// runtime version. subs may be nil.
func NewService(c Components, a Attributes, caps Capabilities, subs Subscriptions, version string) *Service {
	return &Service{components: c, attributes: a, capabilities: caps, subscriptions: subs, version: version}
}

// Component is one component as the metadata API lists it.
type Component struct {
	Name         string   `json:"name"`
	Type         string   `json:"type"`
	Version      string   `json:"version"`
	Capabilities []string `json:"capabilities,omitempty"`
}

// Metadata is the answer to GET /v1.0/metadata.
type Metadata struct {
	AppID           string
	RuntimeVersion  string
	EnabledFeatures []string
	Components      []Component
	Extended        map[string]string
	// Subscriptions delivering to the app on this node.
	Subscriptions []pubsub.Active
}

// Get describes the caller's app and its tenant's components. Components
// scoped to other apps are left out, as daprd does not load them.
func (s *Service) Get(ctx context.Context, p tenants.Principal) (Metadata, error) {
	comps, err := s.components.Components(ctx, p.Tenant)
	if err != nil {
		return Metadata{}, blocks.ErrUnavailable("the component registry", err)
	}
	// Extended attributes are a nicety: without the registry the answer
	// leaves them out rather than failing (SDKs poll this API to start).
	attrs, _ := s.attributes.AppMetadata(ctx, p.Tenant, p.AppID)
	md := Metadata{
		AppID:           p.AppID,
		RuntimeVersion:  s.version,
		EnabledFeatures: []string{},
		Components:      make([]Component, 0, len(comps)),
		Extended:        map[string]string{"daprRuntimeVersion": s.version, "tenant": string(p.Tenant)},
	}
	if s.subscriptions != nil {
		md.Subscriptions = s.subscriptions(p.Tenant, p.AppID)
	}
	for k, v := range attrs {
		md.Extended[k] = v
	}
	for _, c := range comps {
		if !c.InScope(p.AppID) {
			continue
		}
		md.Components = append(md.Components, Component{Name: c.Name, Type: c.Type, Version: c.Version, Capabilities: s.capabilities(c)})
	}
	return md, nil
}

// maxAttributeBytes bounds one extended attribute.
const maxAttributeBytes = 64 << 10

// Set stores an extended attribute of the caller's app; an empty value
// removes it.
func (s *Service) Set(ctx context.Context, p tenants.Principal, key, value string) error {
	if key == "" {
		return blocks.ErrMalformedRequest("metadata key is empty")
	}
	if len(key) > 256 || len(value) > maxAttributeBytes {
		return blocks.New(blocks.InvalidArgument, http.StatusBadRequest, "ERR_METADATA_SET",
			"metadata attribute too large: keys up to 256 bytes, values up to %d bytes", maxAttributeBytes)
	}
	if err := s.attributes.SetAppMetadata(ctx, p.Tenant, p.AppID, key, value); err != nil {
		return blocks.ErrUnavailable("the component registry", err)
	}
	return nil
}
