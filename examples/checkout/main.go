// Command checkout is the sample app that calls orders in
// docker-compose.yml. It speaks Dapr's HTTP API to its Envoy sidecar on
// 127.0.0.1:3500 and holds no token: the sidecar sends the invocation
// straight to orders' sidecar over mTLS (or, when policy decides per
// method, through the gateway) and every other Dapr call to the gateway,
// where its certificate says which tenant and app it is.
//
//	POST /checkout       {"item": "book", "quantity": 2}: invokes orders'
//	                     POST /orders, saves the order in the state store
//	                     and answers both
//	GET  /checkout/{id}  the saved order, from the state store
//	GET  /healthz        204
//
// Environment: PORT (default 8080); DAPR_HTTP_ENDPOINT (default
// http://127.0.0.1:3500, the sidecar); DAPR_API_TOKEN, needed only when
// DAPR_HTTP_ENDPOINT is the gateway itself; STATESTORE (default
// statestore); ORDERS_APP_ID (default orders).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"
)

// dapr calls the Dapr HTTP API at base.
type dapr struct {
	base, token string
	client      *http.Client
}

// call sends a request to the Dapr API and returns the response's status
// and body; a status of 300 or more is an error carrying the body (Dapr's
// {"errorCode": ..., "message": ...}).
func (d dapr) call(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if d.token != "" {
		req.Header.Set("dapr-api-token", d.token)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, b, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	return resp.StatusCode, b, nil
}

var orderID = regexp.MustCompile(`^[0-9a-f]{1,64}$`)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log); err != nil {
		log.Error("checkout stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger) error {
	d := dapr{
		base:   env("DAPR_HTTP_ENDPOINT", "http://127.0.0.1:3500"),
		token:  os.Getenv("DAPR_API_TOKEN"),
		client: &http.Client{Timeout: 10 * time.Second},
	}
	store := url.PathEscape(env("STATESTORE", "statestore"))
	orders := url.PathEscape(env("ORDERS_APP_ID", "orders"))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("POST /checkout", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Item     string `json:"item"`
			Quantity int    `json:"quantity"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
			http.Error(w, `want {"item": "...", "quantity": 1 or more}`, http.StatusBadRequest)
			return
		}
		// Service invocation: the sidecar routes /v1.0/invoke/orders/...
		// to orders' sidecar, which forwards /orders to the app.
		status, body, err := d.call(r.Context(), http.MethodPost, "/v1.0/invoke/"+orders+"/method/orders", in)
		if err != nil {
			log.Warn("invoking orders", "err", err)
			passError(w, status, err)
			return
		}
		var o struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(body, &o); err != nil || !orderID.MatchString(o.ID) {
			http.Error(w, "orders answered without an order id: "+string(body), http.StatusBadGateway)
			return
		}
		key := "order-" + o.ID
		state := []map[string]any{{"key": key, "value": json.RawMessage(body)}}
		if status, _, err := d.call(r.Context(), http.MethodPost, "/v1.0/state/"+store, state); err != nil {
			log.Warn("saving the order", "err", err)
			passError(w, status, err)
			return
		}
		log.Info("checked out", "order", o.ID)
		writeJSON(w, map[string]any{"order": json.RawMessage(body), "stateKey": key})
	})
	mux.HandleFunc("GET /checkout/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if !orderID.MatchString(id) {
			http.Error(w, "an order id is hexadecimal", http.StatusBadRequest)
			return
		}
		status, body, err := d.call(r.Context(), http.MethodGet, "/v1.0/state/"+store+"/order-"+id, nil)
		switch {
		case err != nil:
			passError(w, status, err)
		case status == http.StatusNoContent || len(body) == 0:
			http.Error(w, "no order "+id, http.StatusNotFound)
		default:
			writeJSON(w, json.RawMessage(body))
		}
	})
	return serve(ctx, log, mux)
}

// passError answers a failed Dapr call: its own 4xx as they are, anything
// else as a bad gateway.
func passError(w http.ResponseWriter, status int, err error) {
	if status < 400 || status >= 500 {
		status = http.StatusBadGateway
	}
	http.Error(w, err.Error(), status)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// serve runs the app's HTTP server on PORT until ctx is done.
func serve(ctx context.Context, log *slog.Logger, h http.Handler) error {
	srv := &http.Server{Addr: ":" + env("PORT", "8080"), Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("checkout listening", "addr", srv.Addr, "dapr", os.Getenv("DAPR_HTTP_ENDPOINT"))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
