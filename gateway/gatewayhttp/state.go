package gatewayhttp

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/blockgate/blockgate/blocks"
	"github.com/blockgate/blockgate/blocks/state"
)

// stateItem is one item of a save request or a transaction's request.
type stateItem struct {
	Key      string            `json:"key"`
	Value    json.RawMessage   `json:"value"`
	ETag     *string           `json:"etag"`
	Metadata map[string]string `json:"metadata"`
	Options  *struct {
		Concurrency string `json:"concurrency"`
		Consistency string `json:"consistency"`
	} `json:"options"`
}

func (it stateItem) toSet() state.SetItem {
	si := state.SetItem{Key: it.Key, Value: it.Value, Metadata: it.Metadata}
	if it.ETag != nil && *it.ETag != "" {
		si.ETag = it.ETag
	}
	if it.Options != nil {
		si.Options = state.Options{Concurrency: it.Options.Concurrency, Consistency: it.Options.Consistency}
	}
	return si
}

// decodeJSON reads the body into v; malformed JSON is a 400.
func (s *server) decodeJSON(c echo.Context, v any) error {
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return blocks.ErrMalformedRequest("the request body is empty")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return blocks.ErrMalformedRequest("the request body is not valid JSON for this API: %v", err)
	}
	return nil
}

// pathKey returns the state key from the URL path.
func pathKey(c echo.Context) (string, error) { return pathParam(c, "key") }

// pathParam returns a path parameter decoded. Like daprd, a '+' in the path
// reads as a space; send %2B for a plus sign.
func pathParam(c echo.Context, name string) (string, error) {
	raw := c.Param(name)
	if c.Request().URL.RawPath == "" {
		// echo matched on the decoded path, so raw is decoded already.
		return strings.ReplaceAll(raw, "+", " "), nil
	}
	key, err := url.PathUnescape(strings.ReplaceAll(raw, "+", "%20"))
	if err != nil {
		return "", blocks.ErrMalformedRequest("%s in the path is not properly escaped: %v", name, err)
	}
	return key, nil
}

// queryMetadata collects metadata.<name>=value query parameters.
func queryMetadata(c echo.Context) map[string]string {
	var md map[string]string
	for k, vs := range c.QueryParams() {
		if name, ok := strings.CutPrefix(k, "metadata."); ok && len(vs) > 0 {
			if md == nil {
				md = make(map[string]string)
			}
			md[name] = vs[0]
		}
	}
	return md
}

func (s *server) saveState(c echo.Context) error {
	var items []stateItem
	if err := s.decodeJSON(c, &items); err != nil {
		return err
	}
	reqs := make([]state.SetItem, len(items))
	for i, it := range items {
		reqs[i] = it.toSet()
	}
	if err := s.cfg.State.Save(c.Request().Context(), principal(c), c.Param("store"), reqs); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *server) getState(c echo.Context) error {
	key, err := pathKey(c)
	if err != nil {
		return err
	}
	opts := state.Options{Consistency: c.QueryParam("consistency")}
	res, err := s.cfg.State.Get(c.Request().Context(), principal(c), c.Param("store"), key, opts)
	if err != nil {
		return err
	}
	if !res.Found {
		return c.NoContent(http.StatusNoContent)
	}
	h := c.Response().Header()
	h.Set("ETag", res.ETag)
	for k, v := range res.Metadata {
		h.Set("metadata."+k, v)
	}
	return c.Blob(http.StatusOK, contentType(res.Value), res.Value)
}

func contentType(v []byte) string {
	if json.Valid(v) {
		return echo.MIMEApplicationJSON
	}
	return echo.MIMEOctetStream
}

func (s *server) deleteState(c echo.Context) error {
	key, err := pathKey(c)
	if err != nil {
		return err
	}
	it := state.DeleteItem{
		Key:      key,
		Options:  state.Options{Concurrency: c.QueryParam("concurrency"), Consistency: c.QueryParam("consistency")},
		Metadata: queryMetadata(c),
	}
	if etag := c.Request().Header.Get("If-Match"); etag != "" {
		it.ETag = &etag
	}
	if err := s.cfg.State.Delete(c.Request().Context(), principal(c), c.Param("store"), []state.DeleteItem{it}); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// bulkItem is one entry of a bulk get answer. Data is the value itself when
// it is JSON and a base64 string otherwise, as daprd does.
type bulkItem struct {
	Key      string            `json:"key"`
	Data     json.RawMessage   `json:"data,omitempty"`
	ETag     string            `json:"etag,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Error    string            `json:"error,omitempty"`
}

func dataJSON(v []byte) json.RawMessage {
	if json.Valid(v) {
		return v
	}
	b, _ := json.Marshal(v) // []byte marshals as a base64 string
	return b
}

func (s *server) bulkGetState(c echo.Context) error {
	var req struct {
		Keys        []string          `json:"keys"`
		Parallelism int               `json:"parallelism"`
		Metadata    map[string]string `json:"metadata"`
	}
	if err := s.decodeJSON(c, &req); err != nil {
		return err
	}
	res, err := s.cfg.State.BulkGet(c.Request().Context(), principal(c), c.Param("store"), req.Keys)
	if err != nil {
		return err
	}
	out := make([]bulkItem, len(res))
	for i, r := range res {
		out[i] = bulkItem{Key: r.Key, ETag: r.ETag, Metadata: r.Metadata, Error: r.Error}
		if r.Found {
			out[i].Data = dataJSON(r.Value)
		}
	}
	return c.JSON(http.StatusOK, out)
}

func (s *server) transactState(c echo.Context) error {
	var req struct {
		Operations []struct {
			Operation string    `json:"operation"`
			Request   stateItem `json:"request"`
		} `json:"operations"`
		Metadata map[string]string `json:"metadata"`
	}
	if err := s.decodeJSON(c, &req); err != nil {
		return err
	}
	ops := make([]state.TxOperation, len(req.Operations))
	for i, op := range req.Operations {
		ops[i] = state.TxOperation{Operation: op.Operation, Item: op.Request.toSet()}
	}
	if err := s.cfg.State.Transact(c.Request().Context(), principal(c), c.Param("store"), ops); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *server) queryState(c echo.Context) error {
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	res, err := s.cfg.State.Query(c.Request().Context(), principal(c), c.Param("store"), body)
	if err != nil {
		return err
	}
	type result struct {
		Key  string          `json:"key"`
		Data json.RawMessage `json:"data"`
		ETag string          `json:"etag,omitempty"`
	}
	out := struct {
		Results []result `json:"results"`
		Token   string   `json:"token,omitempty"`
	}{Results: make([]result, len(res.Results)), Token: res.Token}
	for i, r := range res.Results {
		out.Results[i] = result{Key: r.Key, Data: dataJSON(r.Value), ETag: r.ETag}
	}
	return c.JSON(http.StatusOK, out)
}
