package tenants

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"
)

// Component is a tenant's named instance of a component type, in the shape of
// Dapr's Component resource (apiVersion dapr.io/v1alpha1, kind Component).
type Component struct {
	Tenant  ID
	Name    string
	Type    string // e.g. state.postgresql, pubsub.jetstream
	Version string // e.g. v1
	// Metadata is spec.metadata in document order.
	Metadata []MetadataItem
	// Scopes lists the app ids that may use the component; empty means all.
	Scopes []string
	// Revision increases on every change of the component.
	Revision int64
}

// MetadataItem is one spec.metadata entry.
type MetadataItem struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
	// SecretKeyRef names a secret instead of a literal value.
	SecretKeyRef *SecretKeyRef `json:"secretKeyRef,omitempty"`
}

// SecretKeyRef points a metadata value at a secret store entry.
type SecretKeyRef struct {
	Name string `json:"name"`
	Key  string `json:"key,omitempty"`
}

// Meta returns the value of the metadata item name, matched case-insensitively
// as Dapr's components do.
func (c Component) Meta(name string) (string, bool) {
	for _, m := range c.Metadata {
		if strings.EqualFold(m.Name, name) {
			return m.Value, true
		}
	}
	return "", false
}

// InScope reports whether appID may use the component.
func (c Component) InScope(appID string) bool {
	if len(c.Scopes) == 0 {
		return true
	}
	for _, s := range c.Scopes {
		if s == appID {
			return true
		}
	}
	return false
}

// Access is a tenant's access policy for components beyond each
// component's own scopes (the tenant's deny-by-default switch). A nil
// error allows; an error that is a *blocks.Error is passed on as it is,
// any other refuses. Implementations must be safe for concurrent use.
type Access interface {
	// Component decides whether p may use c at all.
	Component(ctx context.Context, p Principal, c Component) error
	// Topic decides whether p may publish to (publish) or subscribe to
	// topic on the pub/sub component c.
	Topic(ctx context.Context, p Principal, c Component, topic string, publish bool) error
}

// Kind returns the building block of the component type: "state" for
// "state.postgresql".
func (c Component) Kind() string {
	kind, _, _ := strings.Cut(c.Type, ".")
	return kind
}

// document is the wire form of a Dapr Component resource.
type document struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace,omitempty"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Spec struct {
		Type         string         `json:"type"`
		Version      string         `json:"version"`
		Metadata     []MetadataItem `json:"metadata,omitempty"`
		InitTimeout  string         `json:"initTimeout,omitempty"`
		IgnoreErrors bool           `json:"ignoreErrors,omitempty"`
	} `json:"spec"`
	Scopes []string `json:"scopes,omitempty"`
	Auth   *struct {
		SecretStore string `json:"secretStore"`
	} `json:"auth,omitempty"`
}

var componentNameRE = labelRE

// ParseComponent reads a Dapr Component resource in YAML or JSON. Unknown
// fields are rejected so that a typo does not silently change behaviour.
func ParseComponent(data []byte) (Component, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return Component{}, fmt.Errorf("component is neither YAML nor JSON: %w", err)
	}
	var doc document
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return Component{}, fmt.Errorf("reading component: %w", err)
	}
	if doc.APIVersion != "dapr.io/v1alpha1" {
		return Component{}, fmt.Errorf("component apiVersion is %q; want dapr.io/v1alpha1", doc.APIVersion)
	}
	if doc.Kind != "Component" {
		return Component{}, fmt.Errorf("kind is %q; want Component", doc.Kind)
	}
	c := Component{
		Name:     doc.Metadata.Name,
		Type:     doc.Spec.Type,
		Version:  doc.Spec.Version,
		Metadata: doc.Spec.Metadata,
		Scopes:   doc.Scopes,
	}
	if err := c.Validate(); err != nil {
		return Component{}, err
	}
	return c, nil
}

// ValidateComponentName reports whether name is a usable component name,
// for fields that refer to another component (outboxPublishPubsub).
func ValidateComponentName(name string) error {
	if !componentNameRE.MatchString(name) {
		return fmt.Errorf("invalid component name %q: use 1-63 lowercase letters, digits and '-'", name)
	}
	return nil
}

// Validate checks the fields every component needs, whatever its type.
func (c Component) Validate() error {
	if err := ValidateComponentName(c.Name); err != nil {
		return err
	}
	kind, impl, ok := strings.Cut(c.Type, ".")
	if !ok || kind == "" || impl == "" {
		return fmt.Errorf("component %s: spec.type %q must look like <block>.<implementation>, e.g. state.postgresql", c.Name, c.Type)
	}
	if c.Version == "" {
		return fmt.Errorf("component %s: spec.version is required (e.g. v1)", c.Name)
	}
	seen := make(map[string]bool, len(c.Metadata))
	for _, m := range c.Metadata {
		if m.Name == "" {
			return fmt.Errorf("component %s: a spec.metadata entry has no name", c.Name)
		}
		lower := strings.ToLower(m.Name)
		if seen[lower] {
			return fmt.Errorf("component %s: spec.metadata %q appears twice", c.Name, m.Name)
		}
		seen[lower] = true
	}
	for _, s := range c.Scopes {
		if err := ValidateAppID(s); err != nil {
			return fmt.Errorf("component %s: scopes: %w", c.Name, err)
		}
	}
	return nil
}

// Document renders c as a Dapr Component resource in JSON.
func (c Component) Document() []byte {
	var doc document
	doc.APIVersion = "dapr.io/v1alpha1"
	doc.Kind = "Component"
	doc.Metadata.Name = c.Name
	doc.Spec.Type = c.Type
	doc.Spec.Version = c.Version
	doc.Spec.Metadata = c.Metadata
	doc.Scopes = c.Scopes
	out, _ := json.Marshal(doc) // plain structs of strings: cannot fail
	return out
}
