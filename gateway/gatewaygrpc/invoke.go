package gatewaygrpc

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/blockgate/blockgate/appchannel"
	"github.com/blockgate/blockgate/blocks"
	"github.com/blockgate/blockgate/blocks/invoke"
	"github.com/blockgate/blockgate/blocks/invoke/invokeresiliency"
	"github.com/blockgate/blockgate/tenants"
)

// maxInvokeResponse bounds a unary InvokeService answer, which must fit one
// gRPC message.
const maxInvokeResponse = 16 << 20

// InvokeService implements runtimev1.DaprServer. An app that speaks HTTP
// gets the call with the verb and query string of the request's
// http_extension (POST when there is none); an app that speaks gRPC gets
// it through its AppCallback service's OnInvoke, as daprd delivers it.
func (s *Server) InvokeService(ctx context.Context, req *runtimev1.InvokeServiceRequest) (*commonv1.InvokeResponse, error) {
	msg := req.GetMessage()
	if msg == nil {
		return nil, blocks.ErrMalformedRequest("InvokeServiceRequest has no message")
	}
	caller := principal(ctx)
	verb := http.MethodPost
	if v := msg.GetHttpExtension().GetVerb(); v != commonv1.HTTPExtension_NONE {
		verb = v.String()
	}
	app, err := s.cfg.Invoke.Resolve(ctx, caller, req.GetId(), msg.GetMethod(), verb)
	if err != nil {
		return nil, err
	}
	if app.SpeaksGRPC() {
		return s.onInvoke(ctx, caller, app, msg)
	}
	query := msg.GetHttpExtension().GetQuerystring()
	header := http.Header{}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		for k, vs := range md {
			if strings.HasPrefix(k, ":") || k == "content-type" || k == "user-agent" || k == "grpc-timeout" {
				continue
			}
			for _, v := range vs {
				header.Add(k, v)
			}
		}
	}
	if ct := msg.GetContentType(); ct != "" {
		header.Set("Content-Type", ct)
	}
	data := msg.GetData().GetValue()
	remote := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		remote = p.Addr.String()
	}
	resp, err := s.cfg.Invoke.Send(ctx, caller, app, invoke.Call{
		Target: req.GetId(), Verb: verb, Method: (&url.URL{Path: msg.GetMethod()}).EscapedPath(), RawQuery: query,
		Header: header, Body: bytes.NewReader(data), ContentLength: int64(len(data)), RemoteAddr: remote,
	})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxInvokeResponse+1))
	if err != nil {
		return nil, blocks.New(blocks.Internal, http.StatusInternalServerError, "ERR_DIRECT_INVOKE",
			"failed to invoke, id: %s, err: reading the app's answer", req.GetId()).WithCause(err)
	}
	if len(body) > maxInvokeResponse {
		return nil, status.Errorf(codes.ResourceExhausted, "the answer of app %s exceeds %d bytes; use HTTP invocation for large bodies", req.GetId(), maxInvokeResponse)
	}
	if resp.Status < 200 || resp.Status > 299 {
		// As daprd does for HTTP apps: the app's status becomes the call's.
		return nil, status.Errorf(httpToCode(resp.Status), "%s", strings.TrimSpace(string(body)))
	}
	return &commonv1.InvokeResponse{Data: &anypb.Any{Value: body}, ContentType: resp.Header.Get("Content-Type")}, nil
}

// onInvoke calls a gRPC app's AppCallback.OnInvoke under the resiliency
// policy of the target. The app's error status is the caller's answer.
func (s *Server) onInvoke(ctx context.Context, caller tenants.Principal, app tenants.App, msg *commonv1.InvokeRequest) (*commonv1.InvokeResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	verb := msg.GetHttpExtension().GetVerb().String()
	if msg.GetHttpExtension() == nil {
		verb = http.MethodPost
	}
	var resp *commonv1.InvokeResponse
	var appErr error
	_, err := s.cfg.Invoke.Protect(ctx, caller, app.ID, func(actx context.Context) (invokeresiliency.Outcome, error) {
		cb, err := s.cfg.Channel.Callback(app)
		if err != nil {
			return invokeresiliency.Outcome{Unsent: true}, err
		}
		resp, appErr = cb.OnInvoke(appchannel.Outgoing(actx, md, caller, app), msg)
		out := invokeresiliency.Outcome{Replayable: invokeresiliency.IdempotentMethod(verb)}
		st, _ := status.FromError(appErr)
		if st.Code() == codes.Unavailable {
			// No answer (grpc-go cannot tell whether the request left):
			// retried only when replayable, and a failure for the breaker.
			return out, appErr
		}
		out.Status = invokeresiliency.GRPCStatus(st.Code())
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	if appErr != nil {
		return nil, appErr // the app's status passes through
	}
	return resp, nil
}

// httpToCode maps an app's HTTP status to a gRPC code.
func httpToCode(status int) codes.Code {
	switch status {
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusConflict:
		return codes.Aborted
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusNotImplemented:
		return codes.Unimplemented
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	case http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	}
	return codes.Unknown
}
