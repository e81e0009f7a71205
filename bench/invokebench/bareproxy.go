package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// The bare proxy is the second baseline: the smallest Go proxy process
// that carries the same calls to the same target app, with nothing of the
// gateway (no authentication, policies, quotas, resiliency or metrics).
// Gateway minus bare proxy is what the gateway's own work adds; bare proxy
// minus direct is what any extra process hop costs on this machine.
//
// It runs in a child process, this benchmark's own binary started with
// -bare-proxy HTTP_TARGET,GRPC_TARGET: net/http/httputil.ReverseProxy for
// HTTP, and for gRPC a server that passes every call's frames, unparsed, to
// the target over one client connection. The child prints its two
// listening addresses on one line and serves until its stdin closes.

// bareProxy is the running child.
type bareProxy struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	httpAddr string
	grpcAddr string
}

// startBareProxy starts the child in front of the app's two servers.
func startBareProxy(httpTarget, grpcTarget string) (*bareProxy, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-bare-proxy", httpTarget+","+grpcTarget)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the bare proxy: %w", err)
	}
	p := &bareProxy{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if _, serr := fmt.Sscan(line, &p.httpAddr, &p.grpcAddr); err != nil || serr != nil {
		p.Close()
		return nil, fmt.Errorf("the bare proxy did not report its addresses (got %q): %v", line, errors.Join(err, serr))
	}
	return p, nil
}

// PID is the child's process id.
func (p *bareProxy) PID() int { return p.cmd.Process.Pid }

// Close ends the child by closing its stdin, and kills it if it lingers.
func (p *bareProxy) Close() {
	p.stdin.Close()
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// serveBareProxy is the child's main: targets is "HTTP_ADDR,GRPC_ADDR".
func serveBareProxy(targets string) error {
	httpTarget, grpcTarget, ok := strings.Cut(targets, ",")
	if !ok {
		return fmt.Errorf("-bare-proxy wants HTTP_ADDR,GRPC_ADDR, got %q", targets)
	}
	bp, err := listenBareProxy(httpTarget, grpcTarget)
	if err != nil {
		return err
	}
	defer bp.close()
	fmt.Printf("%s %s\n", bp.httpAddr, bp.grpcAddr)
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it
	return nil
}

// bareServers are the bare proxy's two servers, serving.
type bareServers struct {
	hs                 *http.Server
	gs                 *grpc.Server
	upstream           *grpc.ClientConn
	httpAddr, grpcAddr string
}

// listenBareProxy starts the bare proxy's servers on loopback ports.
func listenBareProxy(httpTarget, grpcTarget string) (*bareServers, error) {
	upstream, err := grpc.NewClient(grpcTarget, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		return nil, err
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		upstream.Close()
		return nil, err
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		upstream.Close()
		hl.Close()
		return nil, err
	}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: httpTarget})
	rp.Transport = &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	b := &bareServers{
		hs:       &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second},
		gs:       grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(passThrough(upstream))),
		upstream: upstream,
		httpAddr: hl.Addr().String(),
		grpcAddr: gl.Addr().String(),
	}
	go func() { _ = b.hs.Serve(hl) }()
	go func() { _ = b.gs.Serve(gl) }()
	return b, nil
}

func (b *bareServers) close() {
	b.gs.Stop()
	_ = b.hs.Close()
	_ = b.upstream.Close()
}

// passThrough proxies every call, whatever its method, to upstream with
// the caller's metadata, and carries the messages both ways unparsed.
func passThrough(upstream *grpc.ClientConn) grpc.StreamHandler {
	return func(_ any, ss grpc.ServerStream) error {
		method, ok := grpc.MethodFromServerStream(ss)
		if !ok {
			return errors.New("no method")
		}
		ctx := ss.Context()
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			out := metadata.MD{}
			for k, v := range md {
				if !strings.HasPrefix(k, ":") && k != "content-type" && k != "user-agent" && k != "te" {
					out[k] = v
				}
			}
			ctx = metadata.NewOutgoingContext(ctx, out)
		}
		cs, err := upstream.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method)
		if err != nil {
			return err
		}
		// Caller to app, in the background; its errors show on the way back.
		go func() {
			for {
				var f frame
				if err := ss.RecvMsg(&f); err != nil {
					_ = cs.CloseSend()
					return
				}
				if err := cs.SendMsg(f); err != nil {
					return
				}
			}
		}()
		if hdr, err := cs.Header(); err == nil {
			_ = ss.SendHeader(hdr)
		}
		for {
			var f frame
			if err := cs.RecvMsg(&f); err != nil {
				ss.SetTrailer(cs.Trailer())
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err // the app's status, as it sent it
			}
			if err := ss.SendMsg(f); err != nil {
				return err
			}
		}
	}
}

// frame is one gRPC message, unparsed.
type frame []byte

// rawCodec moves frames as they are.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	f, ok := v.(frame)
	if !ok {
		return nil, fmt.Errorf("bare proxy: cannot marshal %T", v)
	}
	return f, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("bare proxy: cannot unmarshal into %T", v)
	}
	*f = append((*f)[:0], data...)
	return nil
}
