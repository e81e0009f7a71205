// Package gatewaygrpc serves Dapr's gRPC API, the service
// dapr.proto.runtime.v1.Dapr from Dapr's own generated code. Methods only
// translate protobuf messages to block service calls; authentication and
// the mapping of errors to statuses (with a google.rpc.ErrorInfo carrying
// Dapr's error code) each live in one interceptor.
package gatewaygrpc

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/blockgate/blockgate/appchannel"
	"github.com/blockgate/blockgate/auth"
	"github.com/blockgate/blockgate/blocks"
	"github.com/blockgate/blockgate/blocks/invoke"
	blockmetadata "github.com/blockgate/blockgate/blocks/metadata"
	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/blocks/state"
	"github.com/blockgate/blockgate/tenants"
)

// Quota admits a call or stream of p whose request has size bytes (-1:
// unknown, for streams). It returns the largest request the tenant may
// send (0: no tenant limit) and a release to call when the call ends.
type Quota interface {
	Admit(ctx context.Context, p tenants.Principal, size int64) (maxBytes int64, release func(), err error)
}

// Authenticator turns a call's credential (its app token, else the client
// certificate of a TLS connection, nil for plain ones) into a principal.
type Authenticator interface {
	AuthenticateRequest(ctx context.Context, token string, conn *tls.ConnectionState) (tenants.Principal, error)
}

// Config is what the gRPC API serves.
type Config struct {
	State  *state.Service
	Pubsub *pubsub.Service
	Invoke *invoke.Service
	// Channel reaches apps that speak gRPC, for proxying and InvokeService.
	Channel  *appchannel.Channel
	Metadata *blockmetadata.Service
	Auth     Authenticator
	// Identity issues apps' certificates through Dapr's Sentry API; nil
	// answers Unimplemented.
	Identity Identity
	// Quota admits each authenticated call or stream by its tenant's
	// limits; nil admits everything.
	Quota Quota
	// StreamAckTimeout is how long a streaming subscriber has to settle an
	// event before it is redelivered; default 1m.
	StreamAckTimeout time.Duration
	// MaxRecvBytes limits one request message; default 4 MiB.
	MaxRecvBytes int
	// Stopping, when set, is closed as the node begins to shut down. Open
	// subscription streams then end with Unavailable, so that their clients
	// subscribe again, through the load balancer to another node, at once:
	// a stream never ends by itself, and would hold a graceful stop until
	// its timeout.
	Stopping <-chan struct{}
	Logger   *slog.Logger
}

// Server implements runtimev1.DaprServer. Methods blockgate does not serve
// yet answer codes.Unimplemented through the embedded type.
type Server struct {
	runtimev1.UnimplementedDaprServer
	cfg    Config
	logger *slog.Logger
}

var _ runtimev1.DaprServer = (*Server)(nil)

// New returns a grpc.Server with the Dapr service registered, and its
// interceptors installed.
func New(cfg Config, opts ...grpc.ServerOption) *grpc.Server {
	if cfg.MaxRecvBytes <= 0 {
		cfg.MaxRecvBytes = 4 << 20
	}
	s := &Server{cfg: cfg, logger: cfg.Logger.With("transport", "grpc")}
	opts = append(opts,
		grpc.ForceServerCodec(proxyCodec{}),
		grpc.UnknownServiceHandler(s.proxy),
		grpc.MaxRecvMsgSize(cfg.MaxRecvBytes),
		// A pool of stream workers instead of a goroutine per call: fewer
		// goroutine starts per call.
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
		grpc.ChainUnaryInterceptor(s.unaryErrors, s.unaryAuth),
		grpc.ChainStreamInterceptor(s.streamErrors, s.streamAuth),
	)
	gs := grpc.NewServer(opts...)
	runtimev1.RegisterDaprServer(gs, s)
	sentryv1.RegisterCAServer(gs, sentry{s: s})
	return gs
}

// tokenFrom reads the app token from dapr-api-token or authorization metadata.
func tokenFrom(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("dapr-api-token"); len(v) > 0 && v[0] != "" {
		return v[0]
	}
	if v := md.Get("authorization"); len(v) > 0 && len(v[0]) > 7 && strings.EqualFold(v[0][:7], "bearer ") {
		return strings.TrimSpace(v[0][7:])
	}
	return ""
}

func (s *Server) authenticate(ctx context.Context) (context.Context, error) {
	p, err := s.cfg.Auth.AuthenticateRequest(ctx, tokenFrom(ctx), tlsState(ctx))
	if err != nil {
		return nil, blocks.ErrUnauthenticated("invalid api token: %v", err)
	}
	return auth.WithPrincipal(ctx, p), nil
}

// tlsState is the TLS state of the call's connection; nil for plain ones.
func tlsState(ctx context.Context) *tls.ConnectionState {
	if pr, ok := peer.FromContext(ctx); ok {
		if info, ok := pr.AuthInfo.(credentials.TLSInfo); ok {
			return &info.State
		}
	}
	return nil
}

func (s *Server) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if info.FullMethod == sentryMethod {
		return h(ctx, req) // authenticates with the request's token field
	}
	ctx, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	if s.cfg.Quota != nil {
		maxBytes, release, err := s.cfg.Quota.Admit(ctx, principal(ctx), -1)
		if err != nil {
			return nil, err
		}
		defer release()
		if m, ok := req.(proto.Message); ok && maxBytes > 0 && int64(proto.Size(m)) > maxBytes {
			return nil, blocks.ErrBodyTooLarge(maxBytes)
		}
	}
	return h(ctx, req)
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (a authedStream) Context() context.Context { return a.ctx }

func (s *Server) streamAuth(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := s.authenticate(ss.Context())
	if err != nil {
		return err
	}
	if s.cfg.Quota != nil {
		_, release, err := s.cfg.Quota.Admit(ctx, principal(ctx), -1)
		if err != nil {
			return err
		}
		defer release()
	}
	return h(srv, authedStream{ServerStream: ss, ctx: ctx})
}

func (s *Server) unaryErrors(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = s.toStatus(info.FullMethod, blocks.As(panicError{v}))
		}
	}()
	resp, err = h(ctx, req)
	if err != nil {
		return nil, s.toStatus(info.FullMethod, err)
	}
	return resp, nil
}

func (s *Server) streamErrors(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = s.toStatus(info.FullMethod, blocks.As(panicError{v}))
		}
	}()
	if err := h(srv, ss); err != nil {
		return s.toStatus(info.FullMethod, err)
	}
	return nil
}

type panicError struct{ v any }

func (p panicError) Error() string { return "panic: " + slog.AnyValue(p.v).String() }

var kindCodes = map[blocks.Kind]codes.Code{
	blocks.Internal:           codes.Internal,
	blocks.InvalidArgument:    codes.InvalidArgument,
	blocks.NotFound:           codes.NotFound,
	blocks.Conflict:           codes.Aborted,
	blocks.AlreadyExists:      codes.AlreadyExists,
	blocks.Forbidden:          codes.PermissionDenied,
	blocks.Unauthenticated:    codes.Unauthenticated,
	blocks.ResourceExhausted:  codes.ResourceExhausted,
	blocks.FailedPrecondition: codes.FailedPrecondition,
	blocks.Unavailable:        codes.Unavailable,
	blocks.Unimplemented:      codes.Unimplemented,
	blocks.DeadlineExceeded:   codes.DeadlineExceeded,
	blocks.Canceled:           codes.Canceled,
}

// toStatus is the one place where errors become gRPC statuses.
func (s *Server) toStatus(method string, err error) error {
	if _, ok := status.FromError(err); ok {
		return err // already a status (from grpc itself)
	}
	e := blocks.As(err)
	code := kindCodes[e.Kind]
	msg := e.Message
	if code == codes.Internal || code == codes.Unknown {
		id := errorID()
		msg += " (error id " + id + ")"
		s.logger.Error("request failed", "error_id", id, "code", e.Code, "method", method, "err", err)
	}
	st := status.New(code, msg)
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: e.Code, Domain: "dapr.io", Metadata: e.Metadata}}
	if secs, err := strconv.Atoi(e.Metadata[blocks.MetaRetryAfterSeconds]); err == nil {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(time.Duration(secs) * time.Second)})
	}
	if withInfo, derr := st.WithDetails(details...); derr == nil {
		st = withInfo
	}
	return st.Err()
}

func errorID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func principal(ctx context.Context) tenants.Principal {
	p, _ := auth.PrincipalFrom(ctx)
	return p
}
