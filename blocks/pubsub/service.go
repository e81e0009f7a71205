package pubsub

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/blockgate/blockgate/blocks"
	"github.com/blockgate/blockgate/tenants"
)

// Components finds a tenant's components; the gateway's registry cache
// implements it. It must be cheap and safe for concurrent use.
type Components interface {
	Component(ctx context.Context, tenant tenants.ID, name string) (c tenants.Component, ok bool, err error)
	HasKind(ctx context.Context, tenant tenants.ID, kind string) (bool, error)
}

// Service is the pub/sub building block. It is safe for concurrent use.
type Service struct {
	components Components
	broker     Broker
	logger     *slog.Logger
	now        func() time.Time

	stats  Stats
	active activeSet
	access tenants.Access
}

// Stats count what happened to delivered messages on this node.
type Stats struct {
	Delivered    atomic.Int64 // acknowledged by the subscriber
	Retried      atomic.Int64 // redelivery asked for (RETRY, error, timeout)
	Dropped      atomic.Int64 // DROP, 404, expired or undeliverable, without a dead-letter topic
	DeadLettered atomic.Int64 // sent to the subscription's dead-letter topic
}

// NewService returns the pub/sub service over broker.
func NewService(components Components, broker Broker, logger *slog.Logger) *Service {
	return &Service{components: components, broker: broker, logger: logger.With("block", "pubsub"), now: time.Now}
}

// SetAccess makes the service consult a tenant access policy beyond the
// components' scopes. Call it before serving.
func (s *Service) SetAccess(a tenants.Access) { s.access = a }

// Stats returns the node's delivery counters.
func (s *Service) Stats() *Stats { return &s.stats }

// Types lists the component types the service serves.
func (s *Service) Types() []string { return []string{"pubsub.jetstream"} }

// ValidateComponent checks a pub/sub component before it is stored.
func (s *Service) ValidateComponent(c tenants.Component) error {
	if c.Type != "pubsub.jetstream" {
		return errSubscription("component %s: unsupported pub/sub type %q (supported: pubsub.jetstream)", c.Name, c.Type)
	}
	if _, err := parseScopes(c); err != nil {
		return err
	}
	return nil
}

// Capabilities lists the Dapr features of a pub/sub component type.
func (s *Service) Capabilities(c tenants.Component) []string {
	if c.Type != "pubsub.jetstream" {
		return nil
	}
	return []string{"SUBSCRIBE_WILDCARDS", "BULK_PUBLISH"}
}

// component resolves a pub/sub component the caller may use.
func (s *Service) component(ctx context.Context, p tenants.Principal, name string) (tenants.Component, error) {
	if name == "" {
		return tenants.Component{}, ErrNameEmpty()
	}
	c, ok, err := s.components.Component(ctx, p.Tenant, name)
	if err != nil {
		return tenants.Component{}, blocks.ErrUnavailable("the component registry", err)
	}
	if ok && c.Kind() == "pubsub" && c.InScope(p.AppID) && s.access != nil {
		if err := s.access.Component(ctx, p, c); err != nil {
			var be *blocks.Error
			if errors.As(err, &be) && be.Kind == blocks.Unavailable {
				return tenants.Component{}, be
			}
			ok = false // refused by policy: as if out of scope
		}
	}
	if !ok || c.Kind() != "pubsub" || !c.InScope(p.AppID) {
		if any, err := s.components.HasKind(ctx, p.Tenant, "pubsub"); err == nil && !any {
			return tenants.Component{}, ErrNotConfigured(name)
		}
		return tenants.Component{}, ErrNotFound(name)
	}
	return c, nil
}

// topicAllowed is checkTopic plus the tenant's access policy.
func (s *Service) topicAllowed(ctx context.Context, p tenants.Principal, c tenants.Component, topic string, publishing bool) error {
	if err := checkTopic(c, p.AppID, topic, publishing); err != nil {
		return err
	}
	if s.access == nil {
		return nil
	}
	if err := s.access.Topic(ctx, p, c, topic, publishing); err != nil {
		var be *blocks.Error
		if errors.As(err, &be) {
			return be
		}
		return ErrForbidden(p.AppID, topic).WithCause(err)
	}
	return nil
}

// checkTopic validates topic and the component's topic scopes for app.
func checkTopic(c tenants.Component, app, topic string, publishing bool) error {
	if topic == "" {
		return ErrTopicEmpty()
	}
	if err := ValidateTopic(topic); err != nil {
		return err
	}
	sc, err := parseScopes(c)
	if err != nil {
		return ErrForbidden(app, topic).WithCause(err)
	}
	if !sc.allowed(app, topic, publishing) {
		return ErrForbidden(app, topic)
	}
	return nil
}

// Publication is a publish request as a transport decodes it.
type Publication struct {
	Pubsub      string
	Topic       string
	Data        []byte
	ContentType string
	Metadata    map[string]string
	TraceParent string
	TraceState  string
}

// Publish publishes one event and returns once the broker has stored it.
func (s *Service) Publish(ctx context.Context, p tenants.Principal, pub Publication) error {
	c, err := s.component(ctx, p, pub.Pubsub)
	if err != nil {
		return err
	}
	if err := s.topicAllowed(ctx, p, c, pub.Topic, true); err != nil {
		return err
	}
	msg, err := NewEnvelope(s.request(p, pub))
	if err != nil {
		return err
	}
	if err := s.broker.Publish(ctx, msg); err != nil {
		return ErrPublish(pub.Pubsub, pub.Topic, err)
	}
	return nil
}

func (s *Service) request(p tenants.Principal, pub Publication) PublishRequest {
	return PublishRequest{
		Tenant: p.Tenant, AppID: p.AppID, Pubsub: pub.Pubsub, Topic: pub.Topic,
		Data: pub.Data, ContentType: pub.ContentType, Metadata: pub.Metadata,
		TraceParent: pub.TraceParent, TraceState: pub.TraceState, Now: s.now(),
	}
}

// BulkEntry is one event of a bulk publish.
type BulkEntry struct {
	EntryID     string
	Data        []byte
	ContentType string
	Metadata    map[string]string
}

// FailedEntry is an entry a bulk publish could not store.
type FailedEntry struct {
	EntryID string
	Error   string
}

// maxBulkEntries bounds one bulk publish.
const maxBulkEntries = 10_000

// BulkPublish publishes entries and reports, as daprd does, the entries that
// failed; nil means every entry was stored. Request-level problems (unknown
// pubsub, bad topic, a missing or repeated entry id) fail the whole request.
func (s *Service) BulkPublish(ctx context.Context, p tenants.Principal, pubsubName, topic string, md map[string]string, entries []BulkEntry) ([]FailedEntry, error) {
	c, err := s.component(ctx, p, pubsubName)
	if err != nil {
		return nil, err
	}
	if err := s.topicAllowed(ctx, p, c, topic, true); err != nil {
		return nil, err
	}
	if len(entries) > maxBulkEntries {
		return nil, blocks.ErrMalformedRequest("a bulk publish takes at most %d entries, got %d", maxBulkEntries, len(entries))
	}
	seen := make(map[string]bool, len(entries))
	msgs := make([]Message, 0, len(entries))
	var failed []FailedEntry
	index := make([]int, 0, len(entries)) // msgs[i] is entries[index[i]]
	for i, e := range entries {
		if e.EntryID == "" {
			return nil, blocks.ErrMalformedRequest("entry %d has no entryId", i)
		}
		if seen[e.EntryID] {
			return nil, blocks.ErrMalformedRequest("entryId %q appears more than once", e.EntryID)
		}
		seen[e.EntryID] = true
		msg, err := NewEnvelope(s.request(p, Publication{
			Pubsub: pubsubName, Topic: topic, Data: e.Data, ContentType: e.ContentType, Metadata: merge(md, e.Metadata),
		}))
		if err != nil {
			failed = append(failed, FailedEntry{EntryID: e.EntryID, Error: blocks.As(err).Message})
			continue
		}
		msgs = append(msgs, msg)
		index = append(index, i)
	}
	for i, err := range s.broker.PublishBatch(ctx, msgs) {
		if err != nil {
			failed = append(failed, FailedEntry{EntryID: entries[index[i]].EntryID, Error: ErrPublish(pubsubName, topic, err).Message})
		}
	}
	return failed, nil
}

// merge returns request metadata overlaid with entry metadata.
func merge(req, entry map[string]string) map[string]string {
	if len(entry) == 0 {
		return req
	}
	if len(req) == 0 {
		return entry
	}
	out := make(map[string]string, len(req)+len(entry))
	for k, v := range req {
		out[k] = v
	}
	for k, v := range entry {
		out[k] = v
	}
	return out
}

// scopes are Dapr's topic scoping metadata of a pub/sub component:
// allowedTopics (every app), publishingScopes and subscriptionScopes
// ("app1=t1,t2;app2=t3").
type scopes struct {
	topics    map[string]bool // allowedTopics; nil: any topic
	publish   map[string]map[string]bool
	subscribe map[string]map[string]bool
}

func parseScopes(c tenants.Component) (scopes, error) {
	var sc scopes
	if v, ok := c.Meta("allowedTopics"); ok && strings.TrimSpace(v) != "" {
		sc.topics = map[string]bool{}
		for _, t := range strings.Split(v, ",") {
			sc.topics[strings.TrimSpace(t)] = true
		}
	}
	var err error
	if sc.publish, err = parseAppTopics(c, "publishingScopes"); err != nil {
		return sc, err
	}
	if sc.subscribe, err = parseAppTopics(c, "subscriptionScopes"); err != nil {
		return sc, err
	}
	return sc, nil
}

func parseAppTopics(c tenants.Component, key string) (map[string]map[string]bool, error) {
	v, ok := c.Meta(key)
	if !ok || strings.TrimSpace(v) == "" {
		return nil, nil
	}
	out := map[string]map[string]bool{}
	for _, part := range strings.Split(v, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		app, topics, ok := strings.Cut(part, "=")
		if !ok {
			return nil, errSubscription("component %s: %s entry %q must look like app=topic1,topic2", c.Name, key, part)
		}
		set := map[string]bool{}
		for _, t := range strings.Split(topics, ",") {
			if t = strings.TrimSpace(t); t != "" {
				set[t] = true
			}
		}
		out[strings.TrimSpace(app)] = set
	}
	return out, nil
}

// allowed applies Dapr's rules: allowedTopics limits every app; an app
// listed in the publishing (subscription) scopes may use only its topics;
// an app not listed is limited only by allowedTopics.
func (sc scopes) allowed(app, topic string, publishing bool) bool {
	if sc.topics != nil && !sc.topics[topic] {
		return false
	}
	m := sc.subscribe
	if publishing {
		m = sc.publish
	}
	if topics, listed := m[app]; listed {
		return topics[topic]
	}
	return true
}
