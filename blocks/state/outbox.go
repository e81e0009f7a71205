package state

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/blockgate/blockgate/blocks"
	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/tenants"
)

// The component metadata of Dapr's transactional outbox. The outbox is on
// when both outboxPublishPubsub and outboxPublishTopic are set.
const (
	metaOutboxPublishPubsub = "outboxPublishPubsub"
	metaOutboxPublishTopic  = "outboxPublishTopic"
	// metaOutboxPubsub is the pub/sub daprd uses to coordinate the state
	// and the message (an internal topic). blockgate's outbox is a table
	// in the same database transaction, so it needs none: the name is
	// checked and otherwise ignored.
	metaOutboxPubsub = "outboxPubsub"
	// metaOutboxDiscard (daprd: drop the message when the transaction's
	// marker state is missing at relay time, which happens when the
	// transaction did not commit). A blockgate outbox message exists only
	// if its transaction committed, so there is never anything to discard:
	// the value is checked and otherwise ignored.
	metaOutboxDiscard = "outboxDiscardWhenMissingState"
)

// The operation metadata the outbox reads.
const (
	// metaProjection marks an upsert that is not saved: its value (and
	// content type and CloudEvent metadata) is what is published for the
	// upsert of the same key in the same transaction.
	metaProjection = "outbox.projection"
	// metaContentType is daprd's key for the content type of a value; it
	// becomes the event's datacontenttype.
	metaContentType = "contentType"
	// metaDataContentType is the CloudEvent attribute, accepted as a key too.
	metaDataContentType = "datacontenttype"
	// CloudEvent attributes of the published event: outbox.cloudevent.<name>
	// (daprd's documented form) or cloudevent.<name> (the form of a
	// publish request); the first wins when both are given.
	prefixOutboxCloudEvent = "outbox.cloudevent."
	prefixCloudEvent       = "cloudevent."
	// metaPartitionKey orders the published messages of one key.
	metaPartitionKey = pubsub.MetaPartitionKey
)

// MaxOutboxMessageBytes bounds the CloudEvent an outbox message carries: it
// must fit the broker's largest message (NATS's default max_payload, 1 MiB,
// less room for headers), or the message could never be relayed. A larger
// one fails the transaction with 400 before anything is written.
const MaxOutboxMessageBytes = 1_000_000

// maxEventIDBytes bounds an event id a caller chooses (cloudevent.id).
const maxEventIDBytes = 1024

// outboxConfig is a state component's outbox: where its transactions
// publish.
type outboxConfig struct {
	pubsub string
	topic  string
}

// parseOutbox reads a component's outbox metadata; it returns nil when the
// outbox is off.
func parseOutbox(c tenants.Component) (*outboxConfig, error) {
	ps, _ := c.Meta(metaOutboxPublishPubsub)
	topic, _ := c.Meta(metaOutboxPublishTopic)
	if v, ok := c.Meta(metaOutboxDiscard); ok && v != "" {
		if _, err := parseBool(v); err != nil {
			return nil, fmt.Errorf("component %s: %s %q must be true or false", c.Name, metaOutboxDiscard, v)
		}
	}
	if v, ok := c.Meta(metaOutboxPubsub); ok && v != "" {
		if err := tenants.ValidateComponentName(v); err != nil {
			return nil, fmt.Errorf("component %s: %s: %w", c.Name, metaOutboxPubsub, err)
		}
	}
	switch {
	case ps == "" && topic == "":
		return nil, nil
	case ps == "":
		return nil, fmt.Errorf("component %s: %s is set but %s is not; set both to enable the outbox", c.Name, metaOutboxPublishTopic, metaOutboxPublishPubsub)
	case topic == "":
		return nil, fmt.Errorf("component %s: %s is set but %s is not; set both to enable the outbox", c.Name, metaOutboxPublishPubsub, metaOutboxPublishTopic)
	}
	if err := tenants.ValidateComponentName(ps); err != nil {
		return nil, fmt.Errorf("component %s: %s: %w", c.Name, metaOutboxPublishPubsub, err)
	}
	if err := pubsub.ValidateTopic(topic); err != nil {
		return nil, fmt.Errorf("component %s: %s: %s", c.Name, metaOutboxPublishTopic, blocks.As(err).Message)
	}
	return &outboxConfig{pubsub: ps, topic: topic}, nil
}

// parseBool reads a boolean the way Dapr's IsTruthy does, but refuses what
// is neither true nor false.
func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "y", "yes", "true", "t", "on", "1":
		return true, nil
	case "n", "no", "false", "f", "off", "0":
		return false, nil
	}
	return false, strconv.ErrSyntax
}

// truthy is Dapr's IsTruthy: anything but a true-like value is false.
func truthy(v string) bool {
	b, err := parseBool(v)
	return err == nil && b
}

// transactOutbox is Transact on a store with the outbox on: it builds one
// message per upsert, applies outbox.projection, and hands both to the
// store, which commits them together.
func (s *Service) transactOutbox(ctx context.Context, p tenants.Principal, name string, st *openStore, ops []TxOperation) error {
	otx, ok := st.store.(OutboxTransactor)
	if !ok {
		return errNotSupported(name, "the transactional outbox (outboxPublishPubsub)")
	}

	// Projections are taken out first: they are published, not saved. The
	// first projection of a key wins, as Dapr documents.
	projections := map[string]SetItem{}
	reqs := make([]Operation, 0, len(ops))
	var upserts []SetItem
	upserted := map[string]bool{}
	for _, op := range ops {
		if op.Operation == "upsert" && truthy(op.Item.Metadata[metaProjection]) {
			if _, err := st.prefix.key(p, name, op.Item.Key); err != nil {
				return err
			}
			if _, dup := projections[op.Item.Key]; !dup {
				projections[op.Item.Key] = op.Item
			}
			continue
		}
		r, err := st.operation(p, name, op)
		if err != nil {
			return err
		}
		reqs = append(reqs, r)
		if r.Set != nil {
			upserts = append(upserts, op.Item)
			upserted[op.Item.Key] = true
		}
	}
	for _, key := range slices.Sorted(maps.Keys(projections)) {
		if !upserted[key] {
			return errMalformed("the outbox projection of key %s has no upsert of the same key in the transaction", key)
		}
	}
	if len(reqs) == 0 {
		return nil
	}

	cfg := st.outbox
	if len(upserts) > 0 { // a transaction of deletes publishes nothing, as in daprd
		if err := s.checkOutboxPubsub(ctx, p, name, cfg); err != nil {
			return err
		}
	}
	msgs := make([]pubsub.Message, 0, len(upserts))
	for _, item := range upserts {
		m, err := outboxMessage(p, cfg, item, projections)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	if err := otx.TransactWithOutbox(ctx, reqs, msgs); err != nil {
		return errStore("execute the transaction on", "ERR_STATE_TRANSACTION", name, err)
	}
	return nil
}

// checkOutboxPubsub checks, at every transaction, that the outbox's pub/sub
// component exists for the caller and that the caller may publish to the
// outbox topic on it, as a publish would be checked.
func (s *Service) checkOutboxPubsub(ctx context.Context, p tenants.Principal, store string, cfg *outboxConfig) error {
	c, ok, err := s.components.Component(ctx, p.Tenant, cfg.pubsub)
	if err != nil {
		return blocks.ErrUnavailable("the component registry", err)
	}
	if !ok || c.Kind() != "pubsub" || !c.InScope(p.AppID) {
		return errOutboxPubsubNotFound(store, cfg.pubsub)
	}
	return pubsub.CheckPublish(c, p.AppID, cfg.topic)
}

// outboxMessage builds the message published for one upsert: the value (or
// its projection's) in a CloudEvent made exactly as a publish makes it, with
// the app as its source.
func outboxMessage(p tenants.Principal, cfg *outboxConfig, item SetItem, projections map[string]SetItem) (pubsub.Message, error) {
	data, md := item.Value, item.Metadata
	if proj, ok := projections[item.Key]; ok {
		// The projection's metadata adds to (and overrides) the state's.
		data, md = proj.Value, overlay(item.Metadata, proj.Metadata)
	}
	ce, ext := eventMetadata(md)
	m, err := pubsub.NewEnvelope(pubsub.PublishRequest{
		Tenant:      p.Tenant,
		AppID:       p.AppID,
		Pubsub:      cfg.pubsub,
		Topic:       cfg.topic,
		Data:        data,
		ContentType: contentType(md, data),
		Metadata:    ce,
		Extensions:  ext,
		NewID:       newOutboxID,
	})
	if err != nil {
		return pubsub.Message{}, err
	}
	switch {
	case m.ID == "" || len(m.ID) > maxEventIDBytes || !utf8.ValidString(m.ID) || strings.ContainsRune(m.ID, 0):
		return pubsub.Message{}, errMalformed("the outbox event id of key %s must be 1-%d bytes of UTF-8 without NUL", item.Key, maxEventIDBytes)
	case len(m.Data) > MaxOutboxMessageBytes:
		return pubsub.Message{}, errOutboxTooLarge(item.Key, len(m.Data))
	}
	return m, nil
}

// newOutboxID is the id of an outbox event the caller did not name, in
// daprd's form ("outbox-" and a UUID).
func newOutboxID() string { return "outbox-" + uuid.NewString() }

// contentType is the datacontenttype of a published value: the operation's
// datacontenttype or contentType metadata; without one, application/json
// for a value that is JSON (every value saved over HTTP is) and text/plain
// for anything else.
func contentType(md map[string]string, data []byte) string {
	for _, k := range []string{prefixOutboxCloudEvent + metaDataContentType, prefixCloudEvent + metaDataContentType, metaDataContentType, metaContentType} {
		if v, ok := md[k]; ok && v != "" {
			return v
		}
	}
	if Queryable(data) {
		return "application/json"
	}
	return pubsub.DefaultDataContentType
}

// eventMetadata picks from an operation's metadata what shapes the event:
// cloudevent.* overrides (from either prefix) as NewEnvelope reads them,
// extension attributes, and the partition key. Other keys (ttlInSeconds,
// contentType, store options) are the state's, not the event's.
func eventMetadata(md map[string]string) (ce, ext map[string]string) {
	ce = map[string]string{}
	// cloudevent.* first, so that outbox.cloudevent.* overwrites it.
	// Sorted keys make the choice among case variants ("cloudevent.Type",
	// "cloudevent.type") stable.
	keys := slices.Sorted(maps.Keys(md))
	for _, prefix := range []string{prefixCloudEvent, prefixOutboxCloudEvent} {
		for _, k := range keys {
			v := md[k]
			name, ok := strings.CutPrefix(k, prefix)
			if !ok || name == "" {
				continue
			}
			switch name = strings.ToLower(name); name {
			case "id", "source", "type", "subject", "traceid", "traceparent", "tracestate":
				ce[prefixCloudEvent+name] = v
			case metaDataContentType, "data", "data_base64", "specversion", "time", "topic", "pubsubname", "expiration":
				// Set by their own rules (datacontenttype: contentType).
			default:
				if ext == nil {
					ext = map[string]string{}
				}
				ext[name] = v
			}
		}
	}
	if v, ok := md[metaPartitionKey]; ok && v != "" {
		ce[metaPartitionKey] = v
	}
	return ce, ext
}

// overlay returns base with top's entries on top; neither is changed.
func overlay(base, top map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(top))
	maps.Copy(out, base)
	maps.Copy(out, top)
	return out
}
