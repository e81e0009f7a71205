// Package gatewaynatstest starts clusters of embedded NATS servers on
// loopback for the tests of the packages that replicate over JetStream.
package gatewaynatstest

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockgate/blockgate/gateway/gatewaynats"
)

// Cluster starts n clustered servers on loopback, each listing every route
// (its own included) as a deployment does, and waits until JetStream is
// current on all of them and a stream of n replicas can be placed. They
// are closed when the test ends.
func Cluster(tb testing.TB, n int) []*gatewaynats.Server {
	tb.Helper()
	var err error
	for range 3 {
		var servers []*gatewaynats.Server
		// A port found free may be taken before the server binds it.
		if servers, err = start(tb, FreePorts(tb, n)); err == nil {
			WaitCurrent(tb, servers...)
			waitPlacement(tb, servers[0], n)
			return servers
		}
	}
	tb.Fatal(err)
	return nil
}

// start starts one server per route port, closing them all if one fails.
func start(tb testing.TB, ports []int) ([]*gatewaynats.Server, error) {
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("127.0.0.1:%d", p))
	}
	servers := make([]*gatewaynats.Server, len(ports))
	errs := make(chan error, len(ports))
	for i := range ports {
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
	for range ports {
		if err := <-errs; err != nil {
			failed = err
		}
	}
	for _, s := range servers {
		if s == nil {
			continue
		}
		if failed != nil {
			s.Close()
		} else {
			tb.Cleanup(s.Close)
		}
	}
	if failed != nil {
		return nil, failed
	}
	return servers, nil
}

// FreePorts returns n distinct TCP ports that were free on loopback a
// moment ago, below Linux's ephemeral range (32768 and up), as
// nats-server's own cluster tests choose them: a port the kernel hands to
// whoever binds port 0 is likelier to be taken before the test binds it.
func FreePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			tb.Fatal("no free ports between 20000 and 32767")
		}
		p := 20000 + rand.IntN(32768-20000)
		if slices.Contains(ports, p) {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		ports = append(ports, p)
	}
	return ports
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
