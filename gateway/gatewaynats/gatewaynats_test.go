package gatewaynats

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/auth/authca/authcatest"
)

func TestStartJetStreamClose(t *testing.T) {
	s, err := Start(t.Context(), Config{Port: 0, StoreDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Healthy(); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "probe", Subjects: []string{"probe.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), "probe.x", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close() // idempotent
	if err := s.Healthy(); err == nil {
		t.Fatal("healthy after Close")
	}
}

func TestStartNeedsStoreDir(t *testing.T) {
	if _, err := Start(t.Context(), Config{Logger: slog.Default()}); err == nil {
		t.Fatal("started without a store dir")
	}
}

// freePorts returns n distinct TCP ports free on loopback a moment ago,
// below the ephemeral range as gatewaynatstest.FreePorts (which this
// package's tests cannot import) picks them.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for len(ports) < n {
		p := 20000 + rand.IntN(32768-20000)
		if slices.Contains(ports, p) {
			continue
		}
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			l.Close()
			ports = append(ports, p)
		}
	}
	return ports
}

// startCluster starts n clustered servers on loopback, each listing every
// route (its own included), as a deployment would.
func startCluster(t *testing.T, n int, secret string) []*Server {
	t.Helper()
	ports := freePorts(t, n)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("127.0.0.1:%d", p))
	}
	servers := make([]*Server, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			var err error
			servers[i], err = Start(t.Context(), Config{
				StoreDir: t.TempDir(), ServerName: fmt.Sprintf("n%d", i+1), Logger: slog.New(slog.DiscardHandler),
				Cluster: Cluster{Name: "test", Host: "127.0.0.1", Port: ports[i], Routes: routes, Secret: secret},
			})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range servers {
		t.Cleanup(s.Close)
	}
	return servers
}

func waitCurrent(t *testing.T, servers []*Server) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
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
			t.Fatalf("JetStream never became current on every server: %v", err)
		}
	}
}

func TestClusterReplicatesStreams(t *testing.T) {
	servers := startCluster(t, 3, "s3cret")
	for _, s := range servers {
		if !s.Clustered() || s.SeedSize() != 3 {
			t.Fatalf("clustered %v, seed size %d; want true, 3", s.Clustered(), s.SeedSize())
		}
	}
	waitCurrent(t, servers)

	nc, err := nats.Connect(servers[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var st jetstream.Stream
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		// Stream placement needs every server known to the meta leader.
		st, err = js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "r3", Subjects: []string{"r3.>"}, Replicas: 3})
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), "r3.x", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream cluster info %+v", info.Cluster)
	}

	// A message published through another server is read through a third.
	nc3, err := nats.Connect(servers[2].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc3.Close()
	js3, _ := jetstream.New(nc3)
	st3, err := js3.Stream(t.Context(), "r3")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := st3.GetLastMsgForSubject(t.Context(), "r3.x")
	if err != nil || string(msg.Data) != "hi" {
		t.Fatalf("read through server 3: %v %v", msg, err)
	}
}

// A server with a secret accepts routes that present it and no others.
func TestClusterRefusesRoutesWithoutSecret(t *testing.T) {
	ports := freePorts(t, 3)
	start := func(i int, secret string, routes ...string) *Server {
		s, err := Start(t.Context(), Config{
			StoreDir: t.TempDir(), ServerName: fmt.Sprintf("n%d", i), Logger: slog.New(slog.DiscardHandler),
			Cluster: Cluster{Name: "test", Host: "127.0.0.1", Port: ports[i], Routes: routes, Secret: secret},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	seed := fmt.Sprintf("127.0.0.1:%d", ports[0])
	a := start(0, "right", seed)
	intruder := start(1, "", seed)
	friend := start(2, "right", seed)
	for deadline := time.Now().Add(10 * time.Second); friend.ns.NumRoutes() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the route with the secret never formed")
		}
	}
	if n := intruder.ns.NumRoutes(); n != 0 {
		t.Fatalf("the route without the secret formed (%d routes); a has %d", n, a.ns.NumRoutes())
	}
}

func TestSeedSize(t *testing.T) {
	self := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 6222}
	for _, tc := range []struct {
		name   string
		routes []string
		want   int
	}{
		{"none", nil, 1},
		{"self listed", []string{"127.0.0.1:6222", "127.0.0.1:6223", "127.0.0.1:6224"}, 3},
		{"self not listed", []string{"127.0.0.1:6223", "127.0.0.1:6224"}, 3},
		{"duplicates", []string{"127.0.0.1:6223", "127.0.0.1:6223"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var us []*url.URL
			for _, r := range tc.routes {
				u, err := routeURL(r, "")
				if err != nil {
					t.Fatal(err)
				}
				us = append(us, u)
			}
			if got := seedSize(us, self); got != tc.want {
				t.Fatalf("seedSize = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestClusterConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Cluster
	}{
		{"dotted name", Cluster{Name: "a.b"}},
		{"peer without port", Cluster{Name: "c", Routes: []string{"node1"}}},
		{"no peers", Cluster{Name: "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Start(t.Context(), Config{StoreDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler), Cluster: tc.c}); err == nil {
				t.Fatal("started")
			}
		})
	}
}

// A route port in use fails the start at once, saying why.
func TestClusterPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	self := fmt.Sprintf("127.0.0.1:%d", port)
	_, err = Start(t.Context(), Config{StoreDir: t.TempDir(), ServerName: "n1", Logger: slog.New(slog.DiscardHandler),
		Cluster: Cluster{Name: "test", Host: "127.0.0.1", Port: port, Routes: []string{self}}})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("err = %v, want one saying the address is in use", err)
	}
}

// routeCA is a gateway CA over store, as a node loads it from Postgres.
func routeCA(t *testing.T, store authca.Store) *authca.CA {
	t.Helper()
	ca, err := authca.New(authca.Config{
		TrustDomain: spiffeid.RequireTrustDomainFromString("example.org"),
		MasterKey:   bytes.Repeat([]byte("0123456789abcdef"), 2),
		Store:       store,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	return ca
}

// With route TLS, servers whose certificates come from the cluster's CA
// route to each other and replicate; a server of another CA and one
// without TLS never get a route.
func TestClusterRouteTLS(t *testing.T) {
	shared := authcatest.NewMemStore()
	ports := freePorts(t, 5)
	seeds := []string{fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("127.0.0.1:%d", ports[2])}
	start := func(i int, tlsConfig *tls.Config) *Server {
		s, err := Start(t.Context(), Config{
			StoreDir: t.TempDir(), ServerName: fmt.Sprintf("n%d", i), Logger: slog.New(slog.DiscardHandler),
			Cluster: Cluster{Name: "test", Host: "127.0.0.1", Port: ports[i], Routes: seeds, TLS: tlsConfig},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	var members []*Server
	for i := range 3 {
		members = append(members, start(i, routeCA(t, shared).RouteTLSConfig()))
	}
	stranger := start(3, routeCA(t, authcatest.NewMemStore()).RouteTLSConfig())
	plain := start(4, nil)
	waitCurrent(t, members)
	for i, s := range members {
		if s.ns.NumRoutes() == 0 {
			t.Fatalf("member %d has no routes", i)
		}
	}
	// A route is one connection seen from both ends: a stranger with none
	// was refused by every member, and refused every member.
	time.Sleep(500 * time.Millisecond) // the strangers kept retrying meanwhile
	for name, s := range map[string]*Server{"a server of another CA": stranger, "a server without TLS": plain} {
		if n := s.ns.NumRoutes(); n != 0 {
			t.Errorf("%s got %d routes", name, n)
		}
	}
}

func TestClusterRouteTLSMustVerify(t *testing.T) {
	c := Cluster{Name: "test", Routes: []string{"127.0.0.1:6222"}, TLS: &tls.Config{InsecureSkipVerify: true}}
	if err := c.apply(&server.Options{}); err == nil {
		t.Fatal("route TLS that verifies nothing was accepted")
	}
}
