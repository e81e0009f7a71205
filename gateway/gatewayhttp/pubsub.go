package gatewayhttp

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/blockgate/blockgate/blocks/pubsub"
)

// topicParam is the topic from the path: everything after the pubsub name,
// so that topics may contain '/'.
func topicParam(c echo.Context) (string, error) {
	return pathParam(c, "*")
}

func (s *server) publish(c echo.Context) error {
	topic, err := topicParam(c)
	if err != nil {
		return err
	}
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	h := c.Request().Header
	err = s.cfg.Pubsub.Publish(c.Request().Context(), principal(c), pubsub.Publication{
		Pubsub: c.Param("pubsub"), Topic: topic, Data: body,
		ContentType: h.Get("Content-Type"), Metadata: queryMetadata(c),
		TraceParent: h.Get("traceparent"), TraceState: h.Get("tracestate"),
	})
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// bulkPublishEntry is one entry of a bulk publish body. event is any JSON
// value: a JSON string with a non-JSON content type is published as the
// string's text, anything else as its JSON.
type bulkPublishEntry struct {
	EntryID     string            `json:"entryId"`
	Event       json.RawMessage   `json:"event"`
	ContentType string            `json:"contentType"`
	Metadata    map[string]string `json:"metadata"`
}

func (e bulkPublishEntry) data() []byte {
	ct := strings.ToLower(e.ContentType)
	if len(e.Event) > 0 && e.Event[0] == '"' && !strings.Contains(ct, "json") {
		var text string
		if json.Unmarshal(e.Event, &text) == nil {
			return []byte(text)
		}
	}
	return e.Event
}

func (s *server) bulkPublish(c echo.Context) error {
	topic, err := topicParam(c)
	if err != nil {
		return err
	}
	var entries []bulkPublishEntry
	if err := s.decodeJSON(c, &entries); err != nil {
		return err
	}
	in := make([]pubsub.BulkEntry, len(entries))
	for i, e := range entries {
		in[i] = pubsub.BulkEntry{EntryID: e.EntryID, Data: e.data(), ContentType: e.ContentType, Metadata: e.Metadata}
	}
	failed, err := s.cfg.Pubsub.BulkPublish(c.Request().Context(), principal(c), c.Param("pubsub"), topic, queryMetadata(c), in)
	if err != nil {
		return err
	}
	if len(failed) == 0 {
		return c.NoContent(http.StatusNoContent)
	}
	type failedEntry struct {
		EntryID string `json:"entryId"`
		Error   string `json:"error"`
	}
	out := struct {
		FailedEntries []failedEntry `json:"failedEntries"`
		ErrorCode     string        `json:"errorCode"`
	}{ErrorCode: "ERR_PUBSUB_PUBLISH_MESSAGE"}
	for _, f := range failed {
		out.FailedEntries = append(out.FailedEntries, failedEntry{EntryID: f.EntryID, Error: f.Error})
	}
	return c.JSON(http.StatusInternalServerError, out)
}
