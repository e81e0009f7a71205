// Package gatewaynatstest starts clusters of embedded NATS servers on
// loopback for the tests of the packages that replicate over JetStream.
package gatewaynatstest

import (
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockgate/blockgate/gateway/gatewaynats"
)

// Cluster starts n clustered servers on loopback, each listing every route
// (its own included) as a deployment does, and waits until JetStream is
// current on all of them. They are closed when the test ends.
func Cluster(tb testing.TB, n int) []*gatewaynats.Server {
	tb.Helper()
	ports := make([]int, n)
	var routes []string
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
		routes = append(routes, fmt.Sprintf("127.0.0.1:%d", ports[i]))
	}
	servers := make([]*gatewaynats.Server, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			s, err := gatewaynats.Start(tb.Context(), gatewaynats.Config{
				StoreDir: tb.TempDir(), ServerName: fmt.Sprintf("n%d", i+1), Logger: slog.New(slog.DiscardHandler),
				Cluster: gatewaynats.Cluster{Name: "test", Host: "127.0.0.1", Port: ports[i], Routes: routes},
			})
			servers[i] = s
			errs <- err
		}()
	}
	var failed error
	for range n {
		if err := <-errs; err != nil {
			failed = err
		}
	}
	for _, s := range servers {
		if s != nil {
			tb.Cleanup(s.Close)
		}
	}
	if failed != nil {
		tb.Fatal(failed)
	}
	WaitCurrent(tb, servers...)
	waitPlacement(tb, servers[0], n)
	return servers
}

// waitPlacement waits until a stream of n replicas can be placed: the meta
// leader knows every server.
func waitPlacement(tb testing.TB, s *gatewaynats.Server, n int) {
	tb.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		tb.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := jetstream.StreamConfig{Name: "gatewaynatstest_probe", Subjects: []string{"gatewaynatstest.probe"}, Replicas: min(n, 5)}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err = js.CreateStream(tb.Context(), cfg); err == nil {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("a stream of %d replicas cannot be placed: %v", cfg.Replicas, err)
		}
	}
	if err := js.DeleteStream(tb.Context(), cfg.Name); err != nil {
		tb.Fatal(err)
	}
}

// WaitCurrent waits until JetStream is current on every server, failing
// the test after 30 seconds.
func WaitCurrent(tb testing.TB, servers ...*gatewaynats.Server) {
	tb.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		for _, s := range servers {
			if err = s.Current(); err != nil {
				break
			}
		}
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("JetStream never became current on every server: %v", err)
		}
	}
}
