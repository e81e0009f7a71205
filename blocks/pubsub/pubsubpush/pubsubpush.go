// Package pubsubpush delivers pub/sub messages to an app's HTTP endpoint,
// the way daprd delivers to the app next to it: POST the CloudEvent (or the
// raw payload) to the subscription's route and read the app's verdict from
// the response.
package pubsubpush

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/tenants"
)

// ParseStatus reads a Dapr status word; unknown words are Retry, so that a
// message is never lost to a typo.
func ParseStatus(s string) pubsub.Verdict {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "", "SUCCESS":
		return pubsub.Success
	case "DROP":
		return pubsub.Drop
	}
	return pubsub.Retry
}

// Channel carries requests to an app's instances; the gateway's app
// channel (appchannel.Channel) implements it. Do sends req, whose URL holds
// only the path the app should see, to an instance of app with the app's
// token and headers, and returns tenants.ErrNoInstance (wrapped) when no
// instance may take it.
type Channel interface {
	Do(req *http.Request, app tenants.App) (*http.Response, error)
}

// Pusher posts messages to apps. It is safe for concurrent use.
type Pusher struct {
	channel Channel
	// timeout bounds one delivery.
	timeout time.Duration
}

// New returns a Pusher over channel; timeout bounds one delivery (default
// 60s).
func New(channel Channel, timeout time.Duration) *Pusher {
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	return &Pusher{channel: channel, timeout: timeout}
}

// Request is one message to deliver.
type Request struct {
	// App receives the message, at Path under its endpoint.
	App         tenants.App
	Path        string
	Body        []byte
	ContentType string
	// Header carries extra headers, such as traceparent.
	Header http.Header
}

// post sends r and returns the app's status code and (bounded) body.
func (p *Pusher) post(ctx context.Context, r Request, maxBody int64) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/", bytes.NewReader(r.Body))
	if err != nil {
		return 0, nil, fmt.Errorf("building the delivery request: %w", err)
	}
	req.URL.Path = r.Path
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", r.ContentType)
	resp, err := p.channel.Do(req, r.App)
	if err != nil {
		return 0, nil, fmt.Errorf("delivering to app %s: %w", r.App.ID, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	return resp.StatusCode, body, nil
}

// verdictOf maps a status code: 404 drops, other non-2xx retry; ok means a
// 2xx whose body decides.
func verdictOf(code int) (v pubsub.Verdict, ok bool, err error) {
	switch {
	case code == http.StatusNotFound:
		return pubsub.Drop, false, nil
	case code < 200 || code > 299:
		return pubsub.Retry, false, fmt.Errorf("app answered %d %s", code, http.StatusText(code))
	}
	return pubsub.Success, true, nil
}

// Push delivers one message and returns the app's verdict; err explains a
// Retry that came from a failure rather than from the app's answer.
func (p *Pusher) Push(ctx context.Context, r Request) (pubsub.Verdict, error) {
	code, body, err := p.post(ctx, r, 64<<10)
	if err != nil {
		return pubsub.Retry, err
	}
	if v, ok, err := verdictOf(code); !ok {
		return v, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return pubsub.Success, nil
	}
	var answer struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		// daprd treats a 2xx whose body is not a status object as success.
		return pubsub.Success, nil
	}
	return ParseStatus(answer.Status), nil
}

// BulkStatus is one entry of a bulk delivery's answer.
type BulkStatus struct {
	EntryID string `json:"entryId"`
	Status  string `json:"status"`
}

// PushBulk delivers a bulk message (Dapr's bulk subscribe) and returns the
// verdict for every entry id in ids; an entry the app did not mention is
// Retry, and so is every entry when the whole request failed.
func (p *Pusher) PushBulk(ctx context.Context, r Request, ids []string) (map[string]pubsub.Verdict, error) {
	out := make(map[string]pubsub.Verdict, len(ids))
	all := func(v pubsub.Verdict) map[string]pubsub.Verdict {
		for _, id := range ids {
			out[id] = v
		}
		return out
	}
	code, body, err := p.post(ctx, r, 4<<20)
	if err != nil {
		return all(pubsub.Retry), err
	}
	if v, ok, err := verdictOf(code); !ok {
		return all(v), err
	}
	var answer struct {
		Statuses []BulkStatus `json:"statuses"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return all(pubsub.Retry), fmt.Errorf("bulk answer is not {\"statuses\": [...]}: %w", err)
	}
	all(pubsub.Retry)
	for _, st := range answer.Statuses {
		if _, ok := out[st.EntryID]; ok {
			out[st.EntryID] = ParseStatus(st.Status)
		}
	}
	return out, nil
}

// Sink delivers one app's subscription to the app's instances.
type Sink struct {
	Pusher *Pusher
	App    tenants.App
}

var _ pubsub.Sink = Sink{}

// Deliver implements pubsub.Sink: the CloudEvent goes as
// application/cloudevents+json, a raw payload with its own content type,
// to the route under the app's endpoint.
func (s Sink) Deliver(ctx context.Context, d pubsub.Delivered) (pubsub.Verdict, error) {
	r := Request{
		App:         s.App,
		Path:        d.Path,
		Body:        d.Message.Data,
		ContentType: d.Message.ContentType,
		Header:      http.Header{},
	}
	if d.Event.Raw && r.ContentType == "" {
		r.ContentType = "application/octet-stream"
	}
	if d.Event.TraceParent != "" {
		r.Header.Set("traceparent", d.Event.TraceParent)
	}
	if d.Event.TraceState != "" {
		r.Header.Set("tracestate", d.Event.TraceState)
	}
	return s.Pusher.Push(ctx, r)
}

var _ pubsub.BulkSink = Sink{}

// bulkEntry is one entry of Dapr's bulk delivery body.
type bulkEntry struct {
	EntryID     string            `json:"entryId"`
	Event       json.RawMessage   `json:"event"`
	ContentType string            `json:"contentType"`
	Metadata    map[string]string `json:"metadata"`
}

// DeliverBulk implements pubsub.BulkSink: one POST per route with every
// event bound there, in daprd's bulk body; the app answers with a status per
// entry id.
func (s Sink) DeliverBulk(ctx context.Context, ds []pubsub.Delivered) ([]pubsub.Verdict, error) {
	out := make([]pubsub.Verdict, len(ds))
	byPath := map[string][]int{}
	var order []string
	for i, d := range ds {
		if _, ok := byPath[d.Path]; !ok {
			order = append(order, d.Path)
		}
		byPath[d.Path] = append(byPath[d.Path], i)
	}
	var firstErr error
	for _, path := range order {
		idx := byPath[path]
		entries := make([]bulkEntry, len(idx))
		ids := make([]string, len(idx))
		for j, i := range idx {
			d := ds[i]
			ids[j] = d.Message.ID
			entries[j] = bulkEntry{EntryID: d.Message.ID, Event: eventJSON(d), ContentType: d.Message.ContentType, Metadata: map[string]string{}}
		}
		first := ds[idx[0]]
		body, err := json.Marshal(struct {
			Entries  []bulkEntry       `json:"entries"`
			ID       string            `json:"id"`
			Metadata map[string]string `json:"metadata"`
			Pubsub   string            `json:"pubsubname"`
			Topic    string            `json:"topic"`
			Type     string            `json:"type"`
		}{entries, first.Message.ID + "/bulk", map[string]string{}, first.Message.Pubsub, first.Message.Topic, "com.dapr.event.sent"})
		if err != nil {
			return nil, err
		}
		r := Request{App: s.App, Path: path, Body: body, ContentType: "application/json", Header: http.Header{}}
		verdicts, err := s.Pusher.PushBulk(ctx, r, ids)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		for j, i := range idx {
			out[i] = verdicts[ids[j]]
		}
	}
	return out, firstErr
}

// eventJSON is a delivered event as a JSON value: the CloudEvent itself, a
// raw JSON payload as is, other raw payloads as a string.
func eventJSON(d pubsub.Delivered) json.RawMessage {
	if json.Valid(d.Message.Data) {
		return d.Message.Data
	}
	b, _ := json.Marshal(string(d.Message.Data))
	return b
}
