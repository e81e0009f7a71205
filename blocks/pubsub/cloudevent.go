package pubsub

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/blockgate/blockgate/tenants"
)

// CloudEvent values daprd uses (components-contrib pubsub/envelope.go).
const (
	// ContentTypeCloudEvent is the content type of an envelope, and of a
	// published body that is a CloudEvent already.
	ContentTypeCloudEvent = "application/cloudevents+json"
	// DefaultEventType is the type of an event the publisher did not type.
	DefaultEventType = "com.dapr.event.sent"
	// DefaultEventSource is the source daprd gives an event when it knows no
	// app id, and a passed-through CloudEvent that has no source.
	DefaultEventSource = "Dapr"
	// SpecVersion is the CloudEvents version of every envelope.
	SpecVersion = "1.0"
	// DefaultDataContentType is the content type of a body that has none.
	DefaultDataContentType = "text/plain"
)

// Request metadata keys the block reads, as Dapr spells them (the HTTP API
// takes them as metadata.<key> query parameters). Keys of the form
// cloudevent.<attribute> override envelope attributes; those are matched
// case-insensitively, as daprd does.
const (
	MetaRawPayload   = "rawPayload"
	MetaTTL          = "ttlInSeconds"
	MetaPartitionKey = "partitionKey"
)

// The attribute names of a CloudEvent in JSON, and Dapr's extensions.
const (
	attrID              = "id"
	attrSource          = "source"
	attrType            = "type"
	attrSpecVersion     = "specversion"
	attrDataContentType = "datacontenttype"
	attrData            = "data"
	attrDataBase64      = "data_base64"
	attrSubject         = "subject"
	attrTime            = "time"
	attrTopic           = "topic"
	attrPubsub          = "pubsubname"
	attrTraceID         = "traceid"
	attrTraceParent     = "traceparent"
	attrTraceState      = "tracestate"
	attrExpiration      = "expiration"
)

// PublishRequest is one event as a publisher hands it to the block.
type PublishRequest struct {
	Tenant tenants.ID
	// AppID is the publishing app: the envelope's source.
	AppID  string
	Pubsub string
	Topic  string
	// Data is the body as sent. For raw payloads it becomes Message.Data
	// without a copy: the caller must not change it afterwards.
	Data []byte
	// ContentType of Data. Empty means text/plain, as daprd; the HTTP
	// adapter passes the Content-Type header, the gRPC adapter
	// data_content_type.
	ContentType string
	// Metadata is the request metadata (rawPayload, ttlInSeconds,
	// partitionKey, cloudevent.*, and any the component reads).
	Metadata map[string]string
	// TraceParent and TraceState are the caller's W3C trace context as the
	// transport received it (traceparent/tracestate header or gRPC
	// metadata, or the gateway's span); empty when there is none. They fill
	// the envelope's traceid, traceparent and tracestate.
	TraceParent string
	TraceState  string
	// Now is the publish time; zero means time.Now().
	Now time.Time
	// NewID returns a fresh event id; nil means a random UUID (v4).
	NewID func() string
	// Extensions are extra string attributes of a new envelope, such as
	// the custom CloudEvent fields of the state outbox. They apply to
	// neither raw payloads nor passed-through CloudEvents, and never
	// replace an attribute the envelope has a rule for (id, source, type,
	// specversion, datacontenttype, data, data_base64, subject, time,
	// topic, pubsubname, traceid, traceparent, tracestate, expiration):
	// those names are ignored here.
	Extensions map[string]string
}

// NewEnvelope turns a publish request into the broker Message, building the
// CloudEvent envelope exactly as daprd does (dapr pkg/runtime/pubsub
// NewCloudEvent, components-contrib pubsub NewCloudEventsEnvelope,
// FromCloudEvent and ApplyMetadata), with these rules:
//
//   - metadata rawPayload=true: no envelope. Data is the body byte for byte,
//     ContentType as given, ID a fresh id; trace context, if any, travels in
//     Metadata (traceid, traceparent, tracestate) as daprd's gRPC API does.
//   - Content type application/cloudevents+json: the body is a CloudEvent
//     already and must be a JSON object (else ErrCloudEvent, 400). Every
//     field it has is kept byte for byte, extensions included. Missing
//     attributes are filled in: id (a fresh id), source ("Dapr"), type
//     (com.dapr.event.sent), specversion (1.0), datacontenttype
//     (application/json, or application/octet-stream beside data_base64)
//     and time. topic and pubsubname are always set to where the event is
//     published, as daprd does. The caller's trace context replaces the
//     trace attributes when there is one; otherwise the event's own are
//     kept. cloudevent.* metadata does not apply (daprd ignores it too).
//   - Any other body gets a new envelope: id, source (the app id), type
//     com.dapr.event.sent, specversion 1.0, datacontenttype (the content
//     type, text/plain by default), topic, pubsubname, time, and traceid,
//     traceparent and tracestate (always present, empty without a trace),
//     each overridable by metadata cloudevent.id, cloudevent.source,
//     cloudevent.type, cloudevent.subject, cloudevent.traceid,
//     cloudevent.traceparent (which wins over traceid) and
//     cloudevent.tracestate. An override that is present but empty clears
//     the attribute, and then id, source and type fall back to their
//     defaults (a fresh id, "Dapr", com.dapr.event.sent), as in daprd.
//     subject appears only when set.
//   - The body goes into data or data_base64, never losing a byte: a JSON
//     content type (application/json, or any +json suffix) with a valid
//     UTF-8 JSON body embeds the value as is (only surrounding whitespace
//     trimmed); application/octet-stream is always data_base64; any other
//     body, or a JSON-typed body that is not valid JSON, is a JSON string
//     when it is valid UTF-8 and data_base64 otherwise. daprd differs only
//     where it would lose data: it turns any non-UTF-8 body into a string
//     with replacement characters. Like daprd, blockgate does not refuse a
//     JSON-typed body that is not JSON; it carries it as a string.
//   - time is RFC 3339 in UTC with seconds, as daprd writes it.
//   - metadata ttlInSeconds=N (N > 0) adds expiration (RFC 3339, UTC) and
//     sets Message.Expires; a value that is not a positive integer is
//     ErrRequestMetadata (400; daprd ignores it silently).
//   - metadata partitionKey becomes Message.PartitionKey.
//
// The envelope's members are written in sorted order, as daprd's
// encoding/json does. Errors are *blocks.Error, all 4xx. NewEnvelope does
// not check the pub/sub or topic names: the service does that first.
func NewEnvelope(r PublishRequest) (Message, error) {
	raw, err := rawPayload(r.Metadata)
	if err != nil {
		return Message{}, err
	}
	ttl, hasTTL, err := ttlOf(r.Metadata)
	if err != nil {
		return Message{}, err
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	newID := r.NewID
	if newID == nil {
		newID = uuid.NewString
	}
	m := Message{
		Tenant:       r.Tenant,
		Pubsub:       r.Pubsub,
		Topic:        r.Topic,
		PartitionKey: r.Metadata[MetaPartitionKey],
	}
	if hasTTL {
		m.Expires = now.Add(ttl)
	}
	if raw {
		m.ID = newID()
		m.Data = r.Data
		m.ContentType = r.ContentType
		m.Metadata = traceMetadata(r.TraceParent, r.TraceState)
		return m, nil
	}

	if !isCloudEventContentType(r.ContentType) && len(r.Extensions) == 0 {
		f := resolveEnvelope(r, newID)
		expiration := ""
		if hasTTL {
			expiration = now.UTC().Add(ttl).Format(time.RFC3339)
		}
		m.ID = f.id
		if !utf8.ValidString(m.ID) {
			// The id as a subscriber decodes it: JSON replaced the bytes
			// that are not UTF-8.
			_ = json.Unmarshal(jsonString(m.ID), &m.ID)
		}
		m.Data = appendEnvelope(f, r, now, expiration)
		m.ContentType = ContentTypeCloudEvent
		return m, nil
	}
	var ev object
	if isCloudEventContentType(r.ContentType) {
		if ev, err = passThrough(r, now, newID); err != nil {
			return Message{}, err
		}
	} else {
		ev = envelope(r, now, newID)
	}
	if hasTTL {
		ev[attrExpiration] = jsonString(now.UTC().Add(ttl).Format(time.RFC3339))
	}
	m.ID, _ = ev.string(attrID)
	m.Data = ev.encode()
	m.ContentType = ContentTypeCloudEvent
	return m, nil
}

// envelopeFields are the attributes of a new envelope, resolved from the
// request and its cloudevent.* metadata.
type envelopeFields struct {
	id, source, typ, subject, traceID, traceState, contentType string
}

func resolveEnvelope(r PublishRequest, newID func() string) envelopeFields {
	f := envelopeFields{source: r.AppID, traceID: r.TraceParent, traceState: r.TraceState}
	if v, ok := metaFold(r.Metadata, "cloudevent.id"); ok {
		f.id = v
	}
	if v, ok := metaFold(r.Metadata, "cloudevent.source"); ok {
		f.source = v
	}
	if v, ok := metaFold(r.Metadata, "cloudevent.type"); ok {
		f.typ = v
	}
	if v, ok := metaFold(r.Metadata, "cloudevent.subject"); ok {
		f.subject = v
	}
	if v, ok := metaFold(r.Metadata, "cloudevent.traceid"); ok {
		f.traceID = v
	}
	if v, ok := metaFold(r.Metadata, "cloudevent.tracestate"); ok {
		f.traceState = v
	}
	// traceparent supersedes traceid; both attributes carry the same value.
	if v, ok := metaFold(r.Metadata, "cloudevent.traceparent"); ok && v != "" {
		f.traceID = v
	}
	if f.id == "" {
		f.id = newID()
	}
	if f.source == "" {
		f.source = DefaultEventSource
	}
	if f.typ == "" {
		f.typ = DefaultEventType
	}
	f.contentType = r.ContentType
	if f.contentType == "" {
		f.contentType = DefaultDataContentType
	}
	return f
}

// appendEnvelope writes the envelope of f around r.Data straight into one
// buffer, members in sorted order, exactly as envelope(...).encode() would:
// the publish path's common case, without the map, the sort and a
// marshalled string per attribute. expiration is "" when there is none.
func appendEnvelope(f envelopeFields, r PublishRequest, now time.Time, expiration string) []byte {
	field, value := encodeData(f.contentType, r.Data)
	b := make([]byte, 0, len(value)+320+len(f.id)+len(f.source)+len(f.typ)+len(f.subject)+
		2*len(f.traceID)+len(f.traceState)+len(f.contentType)+len(r.Topic)+len(r.Pubsub))
	b = append(b, `{"`...)
	b = append(b, field...)
	b = append(b, `":`...)
	b = append(b, value...)
	b = appendJSONString(append(b, `,"datacontenttype":`...), f.contentType)
	if expiration != "" {
		b = appendJSONString(append(b, `,"expiration":`...), expiration)
	}
	b = appendJSONString(append(b, `,"id":`...), f.id)
	b = appendJSONString(append(b, `,"pubsubname":`...), r.Pubsub)
	b = appendJSONString(append(b, `,"source":`...), f.source)
	b = appendJSONString(append(b, `,"specversion":`...), SpecVersion)
	if f.subject != "" {
		b = appendJSONString(append(b, `,"subject":`...), f.subject)
	}
	b = append(b, `,"time":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339)
	b = appendJSONString(append(b, `","topic":`...), r.Topic)
	b = appendJSONString(append(b, `,"traceid":`...), f.traceID)
	b = appendJSONString(append(b, `,"traceparent":`...), f.traceID)
	b = appendJSONString(append(b, `,"tracestate":`...), f.traceState)
	b = appendJSONString(append(b, `,"type":`...), f.typ)
	return append(b, '}')
}

// appendJSONString appends s as jsonString writes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return append(b, jsonString(s)...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// envelope builds a new CloudEvent around r.Data as an object, for the
// requests appendEnvelope does not cover (extension attributes).
func envelope(r PublishRequest, now time.Time, newID func() string) object {
	f := resolveEnvelope(r, newID)
	id, source, typ, subject := f.id, f.source, f.typ, f.subject
	traceID, traceState, ct := f.traceID, f.traceState, f.contentType
	ev := object{
		attrID:              jsonString(id),
		attrSource:          jsonString(source),
		attrType:            jsonString(typ),
		attrSpecVersion:     jsonString(SpecVersion),
		attrDataContentType: jsonString(ct),
		attrTopic:           jsonString(r.Topic),
		attrPubsub:          jsonString(r.Pubsub),
		attrTraceID:         jsonString(traceID),
		attrTraceParent:     jsonString(traceID),
		attrTraceState:      jsonString(traceState),
		attrTime:            jsonString(now.UTC().Format(time.RFC3339)),
	}
	field, value := encodeData(ct, r.Data)
	ev[field] = value
	if subject != "" {
		ev[attrSubject] = jsonString(subject)
	}
	for k, v := range r.Extensions {
		if k != "" && !slices.Contains(envelopeAttrs, k) {
			ev[k] = jsonString(v)
		}
	}
	return ev
}

// envelopeAttrs are the attributes NewEnvelope sets by its own rules, which
// PublishRequest.Extensions cannot replace.
var envelopeAttrs = []string{attrID, attrSource, attrType, attrSpecVersion, attrDataContentType, attrData,
	attrDataBase64, attrSubject, attrTime, attrTopic, attrPubsub, attrTraceID, attrTraceParent, attrTraceState,
	attrExpiration}

// passThrough completes a CloudEvent the publisher built.
func passThrough(r PublishRequest, now time.Time, newID func() string) (object, error) {
	ev, err := decodeObject(r.Data)
	if err != nil {
		return nil, ErrCloudEvent("the body is not a CloudEvent in JSON: %v", err)
	}
	for _, name := range []string{attrID, attrSource, attrType, attrSpecVersion, attrDataContentType, attrSubject, attrTime} {
		if _, err := ev.stringStrict(name); err != nil {
			return nil, ErrCloudEvent("attribute %s must be a string", name)
		}
	}
	if id, _ := ev.string(attrID); id == "" {
		ev[attrID] = jsonString(newID())
	}
	ev.setDefault(attrSource, DefaultEventSource)
	ev.setDefault(attrType, DefaultEventType)
	ev.setDefault(attrSpecVersion, SpecVersion)
	if ev.has(attrDataBase64) {
		ev.setDefault(attrDataContentType, "application/octet-stream")
	} else {
		ev.setDefault(attrDataContentType, "application/json")
	}
	ev.setDefault(attrTime, now.UTC().Format(time.RFC3339))
	ev[attrTopic] = jsonString(r.Topic)
	ev[attrPubsub] = jsonString(r.Pubsub)
	if r.TraceParent != "" {
		ev[attrTraceID] = jsonString(r.TraceParent)
		ev[attrTraceParent] = jsonString(r.TraceParent)
		ev[attrTraceState] = jsonString(r.TraceState)
	} else {
		ev.setDefault(attrTraceID, "")
		ev.setDefault(attrTraceParent, "")
		ev.setDefault(attrTraceState, "")
	}
	return ev, nil
}

// encodeData chooses data or data_base64 for a body of content type ct.
func encodeData(ct string, data []byte) (string, json.RawMessage) {
	mt := mediaType(ct)
	if isJSONMediaType(mt) {
		if v := trimJSONSpace(data); json.Valid(v) && utf8.Valid(v) {
			return attrData, json.RawMessage(slices.Clone(v))
		}
	}
	if mt != "application/octet-stream" && utf8.Valid(data) {
		return attrData, jsonString(string(data))
	}
	return attrDataBase64, jsonString(base64.StdEncoding.EncodeToString(data))
}

func rawPayload(md map[string]string) (bool, error) {
	v, ok := md[MetaRawPayload]
	if !ok || v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, ErrRequestMetadata("%s value must be a valid boolean: actual is '%s'", MetaRawPayload, v)
	}
	return b, nil
}

func ttlOf(md map[string]string) (time.Duration, bool, error) {
	v, ok := md[MetaTTL]
	if !ok || v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false, ErrRequestMetadata("%s value must be a valid integer: actual is '%s'", MetaTTL, v)
	}
	if n <= 0 {
		return 0, false, ErrRequestMetadata("%s value must be higher than zero: actual is %d", MetaTTL, n)
	}
	if n > math.MaxInt64/int64(time.Second) {
		return math.MaxInt64, true, nil // ~292 years, as daprd clamps
	}
	return time.Duration(n) * time.Second, true, nil
}

func traceMetadata(traceParent, traceState string) map[string]string {
	if traceParent == "" && traceState == "" {
		return nil
	}
	md := make(map[string]string, 3)
	if traceParent != "" {
		md[attrTraceID] = traceParent
		md[attrTraceParent] = traceParent
	}
	if traceState != "" {
		md[attrTraceState] = traceState
	}
	return md
}

// metaFold finds key in md ignoring case, preferring an exact match; among
// several case variants the smallest key wins, so the result is stable.
func metaFold(md map[string]string, key string) (string, bool) {
	if v, ok := md[key]; ok {
		return v, true
	}
	found, best := false, ""
	for k := range md {
		if strings.EqualFold(k, key) && (!found || k < best) {
			found, best = true, k
		}
	}
	return md[best], found
}

// mediaType is the lowercase type/subtype of a Content-Type value.
func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

func isJSONMediaType(mt string) bool {
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

func isCloudEventContentType(ct string) bool {
	return mediaType(ct) == ContentTypeCloudEvent
}

func trimJSONSpace(b []byte) []byte {
	return bytes.Trim(b, " \t\r\n")
}

// Event is a message as a subscriber side needs it: the CloudEvent's
// attributes, its data decoded, and the whole event for routing rules.
type Event struct {
	ID              string
	Source          string
	Type            string
	SpecVersion     string
	DataContentType string
	Subject         string
	Time            string
	// Topic and Pubsub are where the message was delivered from.
	Topic  string
	Pubsub string
	// TraceParent is the W3C trace context; TraceID is its legacy name in
	// Dapr's envelope and holds the same value unless a publisher set them
	// apart.
	TraceID     string
	TraceParent string
	TraceState  string
	// Expiration is when the event stops being deliverable; zero for never.
	Expiration time.Time
	// Data is the event's data as bytes: data_base64 decoded; for a JSON
	// datacontenttype the JSON value as published (a JSON string keeps its
	// quotes, as daprd sends it); for any other type a JSON string's
	// content (other JSON values stay JSON). For a raw payload it is the
	// payload byte for byte.
	Data []byte
	// Raw reports a raw payload (published with rawPayload=true): there is
	// no envelope, and the attributes are the ones daprd makes up for it.
	Raw bool
	// JSON is the event as a CloudEvent JSON object: the envelope as
	// published, or for a raw payload the CloudEvent daprd synthesizes
	// (datacontenttype application/octet-stream, data_base64).
	JSON []byte
	// Fields are JSON's members, values as raw JSON.
	Fields map[string]json.RawMessage
}

// cloudEventCoreAttrs are the attributes a gRPC TopicEventRequest carries
// in its own fields; the rest are extensions (dapr's
// cloudEventDuplicateKeys).
var cloudEventCoreAttrs = []string{attrID, attrSource, attrDataContentType, attrType, attrSpecVersion, attrData, attrDataBase64}

// Extensions returns the event's members other than id, source,
// datacontenttype, type, specversion, data and data_base64: what daprd
// sends as the extensions of a gRPC TopicEventRequest.
func (e Event) Extensions() map[string]json.RawMessage {
	ext := make(map[string]json.RawMessage, len(e.Fields))
	for k, v := range e.Fields {
		if !slices.Contains(cloudEventCoreAttrs, k) {
			ext[k] = v
		}
	}
	return ext
}

// Expired reports whether the event's expiration has passed at now.
func (e Event) Expired(now time.Time) bool {
	return !e.Expiration.IsZero() && e.Expiration.Before(now)
}

// DecodeEvent reads a delivered Message. A message whose content type is
// application/cloudevents+json is decoded as a CloudEvent: it must be a JSON
// object; attributes that are not strings read as empty (as daprd reads
// them); trace attributes missing from the event are taken from
// m.Metadata. Any other message is a raw payload and decodes as RawEvent.
// The error (a malformed envelope, data_base64 that is not base64) is for
// the log: the message cannot be delivered as an event.
func DecodeEvent(m Message) (Event, error) {
	if !isCloudEventContentType(m.ContentType) {
		return RawEvent(m), nil
	}
	obj, err := decodeObject(m.Data)
	if err != nil {
		return Event{}, fmt.Errorf("decoding cloudevent %s: %w", m.ID, err)
	}
	ev := Event{JSON: m.Data, Fields: obj, Topic: m.Topic, Pubsub: m.Pubsub, Expiration: m.Expires}
	ev.ID, _ = obj.string(attrID)
	ev.Source, _ = obj.string(attrSource)
	ev.Type, _ = obj.string(attrType)
	ev.SpecVersion, _ = obj.string(attrSpecVersion)
	ev.DataContentType, _ = obj.string(attrDataContentType)
	ev.Subject, _ = obj.string(attrSubject)
	ev.Time, _ = obj.string(attrTime)
	if ev.Topic == "" {
		ev.Topic, _ = obj.string(attrTopic)
	}
	if ev.Pubsub == "" {
		ev.Pubsub, _ = obj.string(attrPubsub)
	}
	ev.TraceID, _ = obj.string(attrTraceID)
	ev.TraceParent, _ = obj.string(attrTraceParent)
	ev.TraceState, _ = obj.string(attrTraceState)
	ev.fillTrace(m.Metadata)
	if s, _ := obj.string(attrExpiration); s != "" {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			ev.Expiration = t
		}
	}

	if v, ok := obj[attrDataBase64]; ok && !isNull(v) {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return Event{}, fmt.Errorf("decoding cloudevent %s: data_base64 is not a string", m.ID)
		}
		if ev.Data, err = base64.StdEncoding.DecodeString(s); err != nil {
			return Event{}, fmt.Errorf("decoding cloudevent %s: data_base64: %w", m.ID, err)
		}
	} else if v, ok := obj[attrData]; ok && !isNull(v) {
		switch {
		case isJSONMediaType(mediaType(ev.DataContentType)) || v[0] != '"':
			ev.Data = v
		default:
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return Event{}, fmt.Errorf("decoding cloudevent %s: data: %w", m.ID, err)
			}
			ev.Data = []byte(s)
		}
	}
	return ev, nil
}

// RawEvent is a message as a raw payload: Data is m.Data byte for byte, and
// the attributes are those daprd makes up for a raw payload
// (components-contrib FromRawPayload) except that the id is the message's,
// so that a redelivery keeps it: source "Dapr", type com.dapr.event.sent,
// datacontenttype application/octet-stream, and trace context from
// m.Metadata. A subscription with rawPayload=true sees every message this
// way, envelope or not.
func RawEvent(m Message) Event {
	ev := Event{
		ID:              m.ID,
		Source:          DefaultEventSource,
		Type:            DefaultEventType,
		SpecVersion:     SpecVersion,
		DataContentType: "application/octet-stream",
		Topic:           m.Topic,
		Pubsub:          m.Pubsub,
		Expiration:      m.Expires,
		Data:            m.Data,
		Raw:             true,
	}
	ev.fillTrace(m.Metadata)
	obj := object{
		attrID:              jsonString(ev.ID),
		attrSource:          jsonString(ev.Source),
		attrType:            jsonString(ev.Type),
		attrSpecVersion:     jsonString(ev.SpecVersion),
		attrDataContentType: jsonString(ev.DataContentType),
		attrTopic:           jsonString(ev.Topic),
		attrPubsub:          jsonString(ev.Pubsub),
		attrDataBase64:      jsonString(base64.StdEncoding.EncodeToString(m.Data)),
	}
	if ev.TraceID != "" {
		obj[attrTraceID] = jsonString(ev.TraceID)
	}
	if ev.TraceParent != "" {
		obj[attrTraceParent] = jsonString(ev.TraceParent)
	}
	if ev.TraceState != "" {
		obj[attrTraceState] = jsonString(ev.TraceState)
	}
	ev.Fields = obj
	ev.JSON = obj.encode()
	return ev
}

// fillTrace completes missing trace context from message metadata, where a
// raw payload carries it; traceparent supersedes traceid.
func (e *Event) fillTrace(md map[string]string) {
	if e.TraceParent == "" {
		if v := md[attrTraceParent]; v != "" {
			e.TraceParent = v
			if e.TraceID == "" {
				e.TraceID = v
			}
		}
	}
	if e.TraceID == "" {
		e.TraceID = md[attrTraceID]
	}
	if e.TraceParent == "" {
		e.TraceParent = e.TraceID
	}
	if e.TraceState == "" {
		e.TraceState = md[attrTraceState]
	}
}

// object is a JSON object whose member values stay raw JSON, so that a
// passed-through CloudEvent keeps every value exactly as it was sent.
type object map[string]json.RawMessage

// decodeObject reads a JSON object; anything else (an array, null, bad
// JSON, trailing data) is an error.
func decodeObject(b []byte) (object, error) {
	t := trimJSONSpace(b)
	if len(t) == 0 || t[0] != '{' {
		if !json.Valid(t) {
			return nil, errors.New("invalid JSON")
		}
		return nil, errors.New("not a JSON object")
	}
	var obj object
	if err := json.Unmarshal(t, &obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// string returns the member name as a string; absent, null and non-string
// members read as "" and false.
func (o object) string(name string) (string, bool) {
	s, err := o.stringStrict(name)
	return s, err == nil && o.has(name)
}

// stringStrict is like string but reports a member that is present, not
// null and not a string.
func (o object) stringStrict(name string) (string, error) {
	v, ok := o[name]
	if !ok || isNull(v) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", err
	}
	return s, nil
}

// has reports whether name is present and not null.
func (o object) has(name string) bool {
	v, ok := o[name]
	return ok && !isNull(v)
}

// setDefault sets name to the string value unless it is present and not null.
func (o object) setDefault(name, value string) {
	if !o.has(name) {
		o[name] = jsonString(value)
	}
}

// encode writes the object with its members in sorted order and their
// values as they are.
func (o object) encode() []byte {
	keys := make([]string, 0, len(o))
	size := 2
	for k, v := range o {
		keys = append(keys, k)
		size += len(k) + len(v) + 4
	}
	slices.Sort(keys)
	buf := make([]byte, 0, size)
	buf = append(buf, '{')
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, jsonString(k)...)
		buf = append(buf, ':')
		buf = append(buf, o[k]...)
	}
	return append(buf, '}')
}

func isNull(v json.RawMessage) bool { return string(v) == "null" }

// jsonString encodes s as a JSON string (invalid UTF-8 becomes U+FFFD).
func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}
