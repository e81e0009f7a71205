package e2e

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
)

// endpoint is the cluster's regional endpoint as one client reaches it: a
// TCP (layer 4) load balancer in front of one port of every node, like a
// cloud's network load balancer. Each connection goes to the client's home
// node if it is serving, else to the next serving node in order; a node
// that refuses the connection is skipped, as a passive health check would.
// When the node's side of a connection ends — the node died, or closed it
// while shutting down — the client's side is closed too, and the client
// connects again through the endpoint.
//
// Every client gets an endpoint of its own so that the test knows which
// node serves it; a real balancer serves them all on one address.
type endpoint struct {
	c    *cluster
	port func(*gateway) string // the node's address behind the endpoint
	home int
	ln   net.Listener
	// last is the node of the newest connection; -1 before the first.
	last atomic.Int32

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// grpcPort and httpPort pick a node's port for an endpoint.
func grpcPort(g *gateway) string { return g.grpcAddr() }
func httpPort(g *gateway) string { return strings.TrimPrefix(g.httpURL(), "http://") }

// endpoint starts an endpoint for one client whose home is node home (from
// 0), and closes it when the test ends.
func (c *cluster) endpoint(t *testing.T, home int, port func(*gateway) string) *endpoint {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &endpoint{c: c, port: port, home: home, ln: ln, conns: map[net.Conn]struct{}{}}
	e.last.Store(-1)
	e.wg.Add(1)
	go e.accept()
	t.Cleanup(e.close)
	return e
}

// addr is the endpoint's address.
func (e *endpoint) addr() string { return e.ln.Addr().String() }

// node is the node (from 0) of the newest connection, -1 before the first.
func (e *endpoint) node() int { return int(e.last.Load()) }

func (e *endpoint) accept() {
	defer e.wg.Done()
	for {
		down, err := e.ln.Accept()
		if err != nil {
			return
		}
		if !e.track(down) {
			down.Close()
			return
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer e.untrack(down)
			up := e.dial()
			if up == nil {
				return // no node serves: the client sees its connection closed
			}
			if !e.track(up) {
				up.Close()
				return
			}
			defer e.untrack(up)
			done := make(chan struct{}, 2)
			go func() { io.Copy(up, down); done <- struct{}{} }()
			go func() { io.Copy(down, up); done <- struct{}{} }()
			<-done // either side ended: end both, as the balancer forgets the flow
			up.Close()
			down.Close()
			<-done
		}()
	}
}

// dial connects to the home node or the next one serving.
func (e *endpoint) dial() net.Conn {
	n := len(e.c.nodes)
	for k := range n {
		i := (e.home + k) % n
		g, ok := e.c.serving(i)
		if !ok {
			continue
		}
		up, err := net.DialTimeout("tcp", e.port(g), time.Second)
		if err != nil {
			continue
		}
		e.last.Store(int32(i))
		return up
	}
	return nil
}

func (e *endpoint) track(c net.Conn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.conns[c] = struct{}{}
	return true
}

func (e *endpoint) untrack(c net.Conn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c.Close()
	delete(e.conns, c)
}

func (e *endpoint) close() {
	e.mu.Lock()
	e.closed = true
	e.ln.Close()
	for c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// httpClient is an HTTP client whose connections all go through e; it
// returns the base URL to use with it.
func (e *endpoint) httpClient() (*http.Client, string) {
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{}}, "http://" + e.addr()
}

// sdkClient is a Go SDK client of the endpoint with token; closed when the
// test ends.
func (e *endpoint) sdkClient(t *testing.T, token string) *dapr.GRPCClient {
	t.Helper()
	c, err := dapr.NewClientWithAddressContext(t.Context(), e.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	gc := c.(*dapr.GRPCClient)
	gc.WithAuthToken(token)
	return gc
}

// fromGateway reports whether a gRPC error was answered by a gateway (it
// carries Dapr's ErrorInfo) rather than by the client's transport.
func fromGateway(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == "dapr.io" {
			return true
		}
	}
	return false
}
