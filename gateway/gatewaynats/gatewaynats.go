// Package gatewaynats runs the NATS server with JetStream that every gateway
// node embeds, the way NATS's own tests do: NewServer, Start,
// ReadyForConnections, and Shutdown when the node stops.
package gatewaynats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config configures the embedded server.
type Config struct {
	// Host is the client listen address; default 127.0.0.1 (loopback only).
	Host string
	// Port is the client port; default 4222, 0 picks a free port.
	Port int
	// StoreDir holds JetStream's file store; required.
	StoreDir string
	// ServerName names this node in a NATS cluster; default "blockgate".
	ServerName string
	// ReadyTimeout bounds the wait for the server to accept clients; default 10s.
	ReadyTimeout time.Duration
	Logger       *slog.Logger
}

// Server is a running embedded NATS server.
type Server struct {
	ns        *server.Server
	closeOnce sync.Once
}

// Start starts the server and waits until it accepts connections.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("nats: StoreDir is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "blockgate"
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	port := cfg.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: cfg.ServerName,
		Host:       cfg.Host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true, // only main handles signals
		// Dapr accepts 4 MiB bodies; their CloudEvent envelope (base64 for
		// binary data) is larger still.
		MaxPayload: 8 << 20,
		// Keep HTTP monitoring off: the gateway has its own metrics endpoint.
		HTTPPort: 0,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("configuring embedded NATS: %w", err)
	}
	ns.SetLoggerV2(slogAdapter{cfg.Logger.With("component", "nats")}, false, false, false)
	go ns.Start()
	deadline := time.Now().Add(cfg.ReadyTimeout)
	for !ns.ReadyForConnections(100 * time.Millisecond) {
		if ctx.Err() != nil || time.Now().After(deadline) {
			ns.Shutdown()
			ns.WaitForShutdown()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("embedded NATS did not accept connections on %s within %s; is the port in use? (--nats-port)",
				net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)), cfg.ReadyTimeout)
		}
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		return nil, errors.New("embedded NATS started without JetStream; check the store directory is writable")
	}
	return &Server{ns: ns}, nil
}

// ClientURL is the nats:// URL clients connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Healthy reports whether the server and JetStream are serving.
func (s *Server) Healthy() error {
	st := s.ns.Healthz(&server.HealthzOptions{JSEnabledOnly: true})
	if st.Status != "ok" {
		return fmt.Errorf("nats: %s", st.Error)
	}
	return nil
}

// Close shuts the server down and waits for it; safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	})
}

// slogAdapter sends the server's log lines to slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
