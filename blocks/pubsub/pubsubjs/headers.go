package pubsubjs

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockgate/blockgate/blocks/pubsub"
)

// Headers carrying Message fields (see the package doc).
const (
	hdrContentType  = "Bg-Content-Type"
	hdrPartitionKey = "Bg-Partition-Key"
	hdrExpires      = "Bg-Expires"
	hdrMetaPrefix   = "Bg-Md-"
)

// b64Prefix marks a header value sent as base64.
const b64Prefix = "b64:"

// encodeValue returns v as a header value that NATS delivers unchanged.
func encodeValue(v string) string {
	if plainValue(v) {
		return v
	}
	return b64Prefix + base64.StdEncoding.EncodeToString([]byte(v))
}

// decodeValue inverts encodeValue.
func decodeValue(v string) (string, error) {
	enc, ok := strings.CutPrefix(v, b64Prefix)
	if !ok {
		return v, nil
	}
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", fmt.Errorf("decoding header value: %w", err)
	}
	return string(b), nil
}

// plainValue reports whether v survives NATS headers as it is: nats.go
// trims blanks around values and turns CR and LF into spaces, and the
// protocol is meant for printable text.
func plainValue(v string) bool {
	if strings.HasPrefix(v, b64Prefix) || !utf8.ValidString(v) {
		return false
	}
	if v != "" && (v[0] == ' ' || v[len(v)-1] == ' ') {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] == 0x7F {
			return false
		}
	}
	return true
}

// dedupeID is the Nats-Msg-Id of a message: its ID scoped to its topic, since
// the dedupe window is per stream, that is per tenant.
func dedupeID(scope, id string) string { return scope + "/" + encodeValue(id) }

// encodeHeaders returns the headers of msg, stored on scope.
func encodeHeaders(msg pubsub.Message, scope string, now time.Time) nats.Header {
	h := make(nats.Header, 4+len(msg.Metadata))
	if msg.ID != "" {
		h.Set(jetstream.MsgIDHeader, dedupeID(scope, msg.ID))
	}
	if msg.ContentType != "" {
		h.Set(hdrContentType, encodeValue(msg.ContentType))
	}
	if msg.PartitionKey != "" {
		h.Set(hdrPartitionKey, encodeValue(msg.PartitionKey))
	}
	if !msg.Expires.IsZero() {
		h.Set(hdrExpires, msg.Expires.UTC().Format(time.RFC3339Nano))
		h.Set(jetstream.MsgTTLHeader, strconv.FormatInt(ttlSeconds(msg.Expires, now), 10))
	}
	for k, v := range msg.Metadata {
		h.Set(hdrMetaPrefix+escapeToken(k), encodeValue(v))
	}
	return h
}

// ttlSeconds is the Nats-TTL for a message expiring at expires: whole
// seconds rounded up, at least 1 (JetStream's minimum). The consumer's own
// check of Bg-Expires makes up for the rounding.
func ttlSeconds(expires, now time.Time) int64 {
	d := expires.Sub(now)
	if d <= time.Second {
		return 1
	}
	return int64(math.Ceil(d.Seconds()))
}

// decodeHeaders fills msg's ID, ContentType, PartitionKey, Expires and
// Metadata from h. It decodes what it can and reports the first problem.
func decodeHeaders(h nats.Header, scope string, msg *pubsub.Message) error {
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	get := func(key string) string {
		v, err := decodeValue(h.Get(key))
		if err != nil {
			keep(fmt.Errorf("header %s: %w", key, err))
		}
		return v
	}
	if id := h.Get(jetstream.MsgIDHeader); id != "" {
		enc, ok := strings.CutPrefix(id, scope+"/")
		if !ok {
			keep(fmt.Errorf("message id %q is not scoped to %s", id, scope))
		}
		v, err := decodeValue(enc)
		if err != nil {
			keep(fmt.Errorf("message id: %w", err))
		}
		msg.ID = v
	}
	msg.ContentType = get(hdrContentType)
	msg.PartitionKey = get(hdrPartitionKey)
	if v := h.Get(hdrExpires); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			keep(fmt.Errorf("header %s: %w", hdrExpires, err))
		}
		msg.Expires = t
	}
	for k := range h {
		enc, ok := strings.CutPrefix(k, hdrMetaPrefix)
		if !ok {
			continue
		}
		key, err := unescapeToken(enc)
		if err != nil {
			keep(fmt.Errorf("metadata header %s: %w", k, err))
			continue
		}
		if msg.Metadata == nil {
			msg.Metadata = make(map[string]string)
		}
		msg.Metadata[key] = get(k)
	}
	return first
}
