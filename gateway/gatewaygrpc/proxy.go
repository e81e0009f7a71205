package gatewaygrpc

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/blockgate/blockgate/appchannel"
)

// frame is a message the proxy forwards without decoding it.
type frame struct{ payload []byte }

// proxyCodec passes frames through as bytes and encodes every other message
// as protobuf, so that the Dapr service and the proxy share one server.
type proxyCodec struct{}

func (proxyCodec) Marshal(v any) ([]byte, error) {
	if f, ok := v.(*frame); ok {
		return f.payload, nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return nil, status.Errorf(codes.Internal, "cannot marshal %T", v)
	}
	return proto.Marshal(m)
}

func (proxyCodec) Unmarshal(data []byte, v any) error {
	if f, ok := v.(*frame); ok {
		f.payload = append(f.payload[:0], data...)
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "cannot unmarshal into %T", v)
	}
	return proto.Unmarshal(data, m)
}

func (proxyCodec) Name() string { return "proto" }

// proxy is Dapr's gRPC proxying: a call to any service the gateway does not
// serve itself, with dapr-app-id metadata, goes to that app of the caller's
// tenant, unary or streaming, messages forwarded as they are.
func (s *Server) proxy(_ any, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "no method on the stream")
	}
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	md, _ := metadata.FromIncomingContext(ctx)
	appID := ""
	if v := md.Get("dapr-app-id"); len(v) > 0 {
		appID = v[0]
	}
	if appID == "" {
		return status.Errorf(codes.Unimplemented, "unknown service or method %s; to call an app's gRPC service, send dapr-app-id metadata", method)
	}
	caller := principal(ctx)
	app, err := s.cfg.Invoke.Resolve(ctx, caller, appID, method, "")
	if err != nil {
		return err
	}
	if !app.SpeaksGRPC() {
		return status.Errorf(codes.FailedPrecondition, "app %s registered an HTTP endpoint; gRPC proxying needs a grpc:// endpoint", appID)
	}
	conn, err := s.cfg.Channel.Conn(app)
	if err != nil {
		return status.Errorf(codes.Unavailable, "app %s cannot be reached: %v", appID, err)
	}
	cs, err := conn.NewStream(appchannel.Outgoing(ctx, md, caller, app),
		&grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method, grpc.ForceCodec(proxyCodec{}))
	if err != nil {
		return err
	}
	// Caller → app.
	go func() {
		for {
			f := &frame{}
			if err := ss.RecvMsg(f); err != nil {
				if errors.Is(err, io.EOF) {
					cs.CloseSend()
				} else {
					cancel()
				}
				return
			}
			if err := cs.SendMsg(f); err != nil {
				return // the app's side reports why through RecvMsg
			}
		}
	}()
	// App → caller. The app's header goes out with its first message (or
	// with the status when there is none), as one write rather than two.
	for first := true; ; first = false {
		f := &frame{}
		err := cs.RecvMsg(f)
		if first {
			if hdr, herr := cs.Header(); herr == nil {
				ss.SetHeader(hdr)
			}
		}
		if err != nil {
			ss.SetTrailer(cs.Trailer())
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err // the app's status passes through
		}
		if err := ss.SendMsg(f); err != nil {
			return err
		}
	}
}
