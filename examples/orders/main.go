// Command orders is the sample app that docker-compose.yml calls through
// Envoy sidecars: a plain HTTP server that accepts orders. It knows nothing
// of blockgate; its sidecar's inbound listener (mTLS on port 15000, RBAC by
// SPIFFE ID) forwards to it on 127.0.0.1, and the gateway may call it at its
// registered endpoint.
//
//	POST /orders   {"item": "book", "quantity": 2} → the accepted order
//	GET  /healthz  204
//
// Each order says who called: the dapr-caller-app-id header that the
// caller's sidecar (or the gateway) sets, and the SPIFFE ID of the client
// certificate that the inbound sidecar passes in x-forwarded-client-cert.
//
// Environment: PORT (default 8080), INSTANCE (default the host name).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// order is what POST /orders takes and returns.
type order struct {
	ID       string `json:"id"`
	Item     string `json:"item"`
	Quantity int    `json:"quantity"`
	Status   string `json:"status"`
	ServedBy string `json:"servedBy"`
	Caller   string `json:"caller,omitempty"`
	CallerID string `json:"callerId,omitempty"`
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log); err != nil {
		log.Error("orders stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger) error {
	instance := os.Getenv("INSTANCE")
	if instance == "" {
		instance, _ = os.Hostname()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		var o order
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&o); err != nil || o.Item == "" || o.Quantity < 1 {
			http.Error(w, `want {"item": "...", "quantity": 1 or more}`, http.StatusBadRequest)
			return
		}
		o.ID, o.Status, o.ServedBy = newID(), "accepted", instance
		o.Caller = r.Header.Get("dapr-caller-app-id")
		o.CallerID = xfccURI(r.Header.Get("x-forwarded-client-cert"))
		log.Info("order accepted", "id", o.ID, "item", o.Item, "caller", o.Caller, "callerId", o.CallerID)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(o)
	})
	return serve(ctx, log, mux)
}

// xfccURI is the URI (the SPIFFE ID) of the last element of Envoy's
// x-forwarded-client-cert header, e.g.
// By=spiffe://…/app/orders;Hash=…;URI=spiffe://…/app/checkout.
func xfccURI(h string) string {
	if h == "" {
		return ""
	}
	elems := strings.Split(h, ",")
	for _, kv := range strings.Split(elems[len(elems)-1], ";") {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.EqualFold(strings.TrimSpace(k), "URI") {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// serve runs the app's HTTP server on PORT until ctx is done.
func serve(ctx context.Context, log *slog.Logger, h http.Handler) error {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	srv := &http.Server{Addr: ":" + port, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("orders listening", "addr", srv.Addr)
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
