package pubsub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"github.com/blockgate/blockgate/blocks"
	"github.com/blockgate/blockgate/tenants"
)

// Subscription is one subscription of an app to a topic: a declarative one
// (Dapr's Subscription resource, applied by a tenant admin) or a
// programmatic one (an entry of the app's GET /dapr/subscribe answer, which
// has no Name and no Scopes).
type Subscription struct {
	// Name is metadata.name of a declarative subscription.
	Name   string
	Pubsub string
	Topic  string
	Routes Routes
	// DeadLetterTopic receives the events the app drops or that run out of
	// deliveries; empty for none.
	DeadLetterTopic string
	// Metadata is passed to the component; rawPayload=true makes the app
	// receive payloads without an envelope.
	Metadata map[string]string
	// BulkSubscribe is nil when the subscription does not mention it.
	BulkSubscribe *BulkSubscribe
	// Scopes lists the app ids the subscription applies to; empty means
	// every app of the tenant.
	Scopes []string
}

// BulkSubscribe asks for events in batches. Zero counts mean Dapr's
// defaults (100 messages, 1000 ms).
type BulkSubscribe struct {
	Enabled            bool  `json:"enabled"`
	MaxMessagesCount   int32 `json:"maxMessagesCount,omitempty"`
	MaxAwaitDurationMs int32 `json:"maxAwaitDurationMs,omitempty"`
}

// Dapr's Subscription resource versions.
const (
	APIVersionV1alpha1 = "dapr.io/v1alpha1"
	APIVersionV2alpha1 = "dapr.io/v2alpha1"
)

// maxRoutePath bounds a route path, in bytes.
const maxRoutePath = 1024

// nameRE is the rule for subscription and component names: a DNS label, as
// tenants.Component names are.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// InScope reports whether the subscription applies to appID.
func (s Subscription) InScope(appID string) bool {
	if len(s.Scopes) == 0 {
		return true
	}
	for _, a := range s.Scopes {
		if a == appID {
			return true
		}
	}
	return false
}

// RawPayload reports whether the app receives payloads without an envelope
// (metadata rawPayload=true). Validate has checked the value.
func (s Subscription) RawPayload() bool {
	b, _ := strconv.ParseBool(s.Metadata[MetaRawPayload])
	return b
}

// Router compiles the subscription's routes.
func (s Subscription) Router() (*Router, error) {
	return CompileRoutes(s.Routes)
}

// Validate checks a declarative subscription: a name, a pub/sub name (a DNS
// label, as component names), a topic (ValidateTopic), a dead-letter topic
// other than the topic, at least one route (a rule or a default), route
// paths, rules that compile (CompileRoutes), metadata (rawPayload must be a
// boolean), non-negative bulk settings, and scopes that are app ids.
func (s Subscription) Validate() error {
	if !nameRE.MatchString(s.Name) {
		return errSubscription("invalid subscription name %q: use 1-63 lowercase letters, digits and '-'", s.Name)
	}
	if err := s.validate(); err != nil {
		return fmt.Errorf("invalid subscription %s: %w", s.Name, err)
	}
	return nil
}

// validate checks everything but the name.
func (s Subscription) validate() error { return s.check(true) }

// check is validate; needRoute false accepts a subscription without any
// route, which a gRPC app's default handler takes (the event's path is
// empty).
func (s Subscription) check(needRoute bool) error {
	if s.Pubsub == "" {
		return errSubscription("pubsubname is required")
	}
	if !nameRE.MatchString(s.Pubsub) {
		return errSubscription("pubsubname %q: use 1-63 lowercase letters, digits and '-'", s.Pubsub)
	}
	if err := ValidateTopic(s.Topic); err != nil {
		return errSubscription("topic %q: %s", s.Topic, clientMessage(err))
	}
	if s.DeadLetterTopic != "" {
		if err := ValidateTopic(s.DeadLetterTopic); err != nil {
			return errSubscription("deadLetterTopic %q: %s", s.DeadLetterTopic, clientMessage(err))
		}
		if s.DeadLetterTopic == s.Topic {
			return errSubscription("deadLetterTopic must differ from topic %q", s.Topic)
		}
	}
	if needRoute && len(s.Routes.Rules) == 0 && s.Routes.Default == "" {
		return errSubscription("no route: set a route, routes.default or routes.rules")
	}
	for i, r := range s.Routes.Rules {
		if err := validatePath(r.Path); err != nil {
			return errSubscription("routes.rules[%d].path: %v", i, err)
		}
	}
	if s.Routes.Default != "" {
		if err := validatePath(s.Routes.Default); err != nil {
			return errSubscription("routes.default: %v", err)
		}
	}
	if _, err := CompileRoutes(s.Routes); err != nil {
		return errSubscription("%v", err)
	}
	for k, v := range s.Metadata {
		if k == "" {
			return errSubscription("a metadata key is empty")
		}
		if k == MetaRawPayload && v != "" {
			if _, err := strconv.ParseBool(v); err != nil {
				return errSubscription("metadata rawPayload is %q; want true or false", v)
			}
		}
	}
	if b := s.BulkSubscribe; b != nil && (b.MaxMessagesCount < 0 || b.MaxAwaitDurationMs < 0) {
		return errSubscription("bulkSubscribe: maxMessagesCount and maxAwaitDurationMs must not be negative")
	}
	for _, a := range s.Scopes {
		if err := tenants.ValidateAppID(a); err != nil {
			return errSubscription("scopes: %v", err)
		}
	}
	return nil
}

// validatePath checks a route path: non-empty, at most 1024 bytes of UTF-8,
// without spaces or control characters. A leading '/' is optional, as in
// Dapr.
func validatePath(p string) error {
	switch {
	case p == "":
		return errors.New("a path is required")
	case len(p) > maxRoutePath:
		return fmt.Errorf("a path is at most %d bytes long", maxRoutePath)
	case !utf8.ValidString(p):
		return errors.New("a path must be valid UTF-8")
	case strings.IndexFunc(p, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("path %q contains a space or a control character", p)
	case strings.Contains(p, "://") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "?#\\"):
		return fmt.Errorf("route %q must be a path on the app, like /orders, not a URL", p)
	case slices.Contains(strings.Split(p, "/"), ".."):
		return fmt.Errorf("route %q climbs out of the app with a \"..\" segment", p)
	}
	return nil
}

// clientMessage is the message of a *blocks.Error without its code.
func clientMessage(err error) string {
	var be *blocks.Error
	if errors.As(err, &be) {
		return be.Message
	}
	return err.Error()
}

// objectMeta is the metadata of a Dapr resource; only name is used.
type objectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// resource is the frame of a Subscription resource; spec is read per
// apiVersion.
type resource struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   objectMeta      `json:"metadata"`
	Spec       json.RawMessage `json:"spec"`
	Scopes     []string        `json:"scopes,omitempty"`
}

// specV2 is spec of dapr.io/v2alpha1.
type specV2 struct {
	Pubsubname      string            `json:"pubsubname"`
	Topic           string            `json:"topic"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	Routes          Routes            `json:"routes"`
	DeadLetterTopic string            `json:"deadLetterTopic,omitempty"`
	BulkSubscribe   *BulkSubscribe    `json:"bulkSubscribe,omitempty"`
}

// specV1 is spec of dapr.io/v1alpha1: one route.
type specV1 struct {
	Topic           string            `json:"topic"`
	Pubsubname      string            `json:"pubsubname"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	Route           string            `json:"route"`
	BulkSubscribe   *BulkSubscribe    `json:"bulkSubscribe,omitempty"`
	DeadLetterTopic string            `json:"deadLetterTopic,omitempty"`
}

// ParseSubscription reads a Dapr Subscription resource in YAML or JSON:
// apiVersion dapr.io/v2alpha1 (spec.routes with rules and default) or
// dapr.io/v1alpha1 (spec.route, which becomes Routes.Default), kind
// Subscription. Unknown fields are refused, so that a typo does not
// silently change where events go; metadata.namespace, labels and
// annotations are accepted and ignored (the tenant comes from the
// credential). The result has passed Validate.
func ParseSubscription(doc []byte) (Subscription, error) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return Subscription{}, fmt.Errorf("subscription is neither YAML nor JSON: %w", err)
	}
	var res resource
	if err := strictDecode(js, &res); err != nil {
		return Subscription{}, fmt.Errorf("reading subscription: %w", err)
	}
	if res.Kind != "Subscription" {
		return Subscription{}, fmt.Errorf("kind is %q; want Subscription", res.Kind)
	}
	if len(res.Spec) == 0 || isNull(res.Spec) {
		return Subscription{}, errors.New("reading subscription: spec is required")
	}
	s := Subscription{Name: res.Metadata.Name, Scopes: res.Scopes}
	switch res.APIVersion {
	case APIVersionV2alpha1:
		var spec specV2
		if err := strictDecode(res.Spec, &spec); err != nil {
			return Subscription{}, fmt.Errorf("reading subscription spec: %w", err)
		}
		s.Pubsub, s.Topic, s.Metadata = spec.Pubsubname, spec.Topic, spec.Metadata
		s.Routes, s.DeadLetterTopic, s.BulkSubscribe = spec.Routes, spec.DeadLetterTopic, spec.BulkSubscribe
	case APIVersionV1alpha1:
		var spec specV1
		if err := strictDecode(res.Spec, &spec); err != nil {
			return Subscription{}, fmt.Errorf("reading subscription spec: %w", err)
		}
		s.Pubsub, s.Topic, s.Metadata = spec.Pubsubname, spec.Topic, spec.Metadata
		s.Routes.Default, s.DeadLetterTopic, s.BulkSubscribe = spec.Route, spec.DeadLetterTopic, spec.BulkSubscribe
	default:
		return Subscription{}, fmt.Errorf("subscription apiVersion is %q; want %s or %s", res.APIVersion, APIVersionV2alpha1, APIVersionV1alpha1)
	}
	s.normalize()
	if err := s.Validate(); err != nil {
		return Subscription{}, err
	}
	return s, nil
}

// programmatic is one entry of an app's GET /dapr/subscribe answer, as
// daprd reads it (dapr pkg/runtime/pubsub SubscriptionJSON).
type programmatic struct {
	PubsubName      string            `json:"pubsubname"`
	Topic           string            `json:"topic"`
	DeadLetterTopic string            `json:"deadLetterTopic"`
	Metadata        map[string]string `json:"metadata"`
	Route           string            `json:"route"`
	Routes          Routes            `json:"routes"`
	BulkSubscribe   *BulkSubscribe    `json:"bulkSubscribe"`
}

// ParseProgrammatic reads an app's answer to GET /dapr/subscribe: a JSON
// list of {pubsubname, topic, route | routes: {rules, default},
// deadLetterTopic, metadata, bulkSubscribe}. As daprd, it ignores fields it
// does not know (SDKs send extras), matches field names case-insensitively
// (encoding/json), reads an empty body as no subscriptions, uses route as
// the default when routes.default is empty, and leaves out an entry with no
// route at all. Wrong types, a rule that does not compile and an entry that
// fails validation (as Validate, without a name) are errors naming the
// entry. Entries have no Name and no Scopes.
func ParseProgrammatic(body []byte) ([]Subscription, error) {
	return parseProgrammatic(body, false)
}

// ParseProgrammaticGRPC reads a gRPC app's ListTopicSubscriptions answer in
// the same JSON form (protojson of each TopicSubscription). Unlike
// ParseProgrammatic it keeps an entry without routes: daprd delivers its
// events to a gRPC app with an empty path, which the SDKs hand to the
// topic's default handler.
func ParseProgrammaticGRPC(body []byte) ([]Subscription, error) {
	return parseProgrammatic(body, true)
}

func parseProgrammatic(body []byte, grpcApp bool) ([]Subscription, error) {
	body = trimJSONSpace(body)
	if len(body) == 0 {
		return nil, nil
	}
	var items []programmatic
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, fmt.Errorf("reading the app's subscriptions: %w", err)
	}
	subs := make([]Subscription, 0, len(items))
	for i, it := range items {
		s := Subscription{
			Pubsub:          it.PubsubName,
			Topic:           it.Topic,
			Routes:          it.Routes,
			DeadLetterTopic: it.DeadLetterTopic,
			Metadata:        it.Metadata,
			BulkSubscribe:   it.BulkSubscribe,
		}
		if s.Routes.Default == "" {
			s.Routes.Default = it.Route
		}
		if !grpcApp && len(s.Routes.Rules) == 0 && s.Routes.Default == "" {
			continue // daprd: "topic has an empty routes. removing from subscriptions list"
		}
		s.normalize()
		if err := s.check(!grpcApp); err != nil {
			return nil, fmt.Errorf("invalid subscription %d (pubsub %q, topic %q) in the app's answer: %w", i, s.Pubsub, s.Topic, err)
		}
		subs = append(subs, s)
	}
	return subs, nil
}

// Document renders s as a dapr.io/v2alpha1 Subscription resource in JSON,
// which ParseSubscription reads back to s.
func (s Subscription) Document() []byte {
	spec := specV2{
		Pubsubname:      s.Pubsub,
		Topic:           s.Topic,
		Metadata:        s.Metadata,
		Routes:          s.Routes,
		DeadLetterTopic: s.DeadLetterTopic,
		BulkSubscribe:   s.BulkSubscribe,
	}
	specJSON, _ := json.Marshal(spec) // strings, ints and bools: cannot fail
	out, _ := json.Marshal(resource{
		APIVersion: APIVersionV2alpha1,
		Kind:       "Subscription",
		Metadata:   objectMeta{Name: s.Name},
		Spec:       specJSON,
		Scopes:     s.Scopes,
	})
	return out
}

// normalize makes empty collections nil, so that a subscription compares
// equal to itself after a round trip through Document.
func (s *Subscription) normalize() {
	if len(s.Metadata) == 0 {
		s.Metadata = nil
	}
	if len(s.Scopes) == 0 {
		s.Scopes = nil
	}
	if len(s.Routes.Rules) == 0 {
		s.Routes.Rules = nil
	}
}

// strictDecode decodes one JSON value into v, refusing unknown fields and
// trailing data.
func strictDecode(js []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the document")
	}
	return nil
}
