package gatewaycluster

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockgate/blockgate/gateway/gatewaynats"
	"github.com/blockgate/blockgate/gateway/gatewaynats/gatewaynatstest"
)

// member is a Membership running on its own connection.
type member struct {
	m    *Membership
	nc   *nats.Conn
	stop func()

	mu      sync.Mutex
	changes [][]string // names passed to OnChange
}

func (mb *member) lastChange() []string {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if len(mb.changes) == 0 {
		return nil
	}
	return mb.changes[len(mb.changes)-1]
}

func startMember(t *testing.T, srv *gatewaynats.Server, name string, replicas int) *member {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	mb := &member{nc: nc}
	mb.m, err = New(js, Config{
		Self:     Node{Name: name, HTTP: name + ":3500", Version: "test", StartedAt: time.Now()},
		Replicas: replicas, Interval: 100 * time.Millisecond, TTL: 600 * time.Millisecond,
		OnChange: func(nodes []Node) {
			mb.mu.Lock()
			defer mb.mu.Unlock()
			mb.changes = append(mb.changes, names(nodes))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- mb.m.Run(ctx) }()
	var once sync.Once
	mb.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(mb.stop)
	return mb
}

func names(nodes []Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Name
	}
	return out
}

func waitMembers(t *testing.T, mb *member, want ...string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got := names(mb.m.Members())
		if slices.Equal(got, want) && slices.Equal(mb.lastChange(), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s sees members %v (last OnChange %v), want %v", mb.m.cfg.Self.Name, got, mb.lastChange(), want)
		}
	}
}

// TestMembership: three nodes on three servers see each other; one that
// stops cleanly is gone from the others' lists at once, one that dies
// after its heartbeats' TTL.
func TestMembership(t *testing.T) {
	servers := gatewaynatstest.Cluster(t, 3)
	a := startMember(t, servers[0], "a", 3)
	b := startMember(t, servers[1], "b", 3)
	c := startMember(t, servers[2], "c", 3)
	for _, mb := range []*member{a, b, c} {
		waitMembers(t, mb, "a", "b", "c")
	}
	for _, n := range a.m.Members() {
		if n.Name == "b" && (n.HTTP != "b:3500" || n.Version != "test" || n.StartedAt.IsZero() || n.LastSeen.IsZero()) {
			t.Fatalf("a's record of b: %+v", n)
		}
	}

	// A clean stop deletes the heartbeat: gone well within the TTL.
	c.stop()
	stopped := time.Now()
	waitMembers(t, a, "a", "b")
	if d := time.Since(stopped); d > 500*time.Millisecond {
		t.Errorf("a clean leave took %s to be seen", d)
	}
	waitMembers(t, b, "a", "b")

	// A node that loses JetStream keeps counting itself, and the nodes it
	// knew: it cannot tell their silence from its own outage. The others
	// drop it when its last heartbeat is older than the TTL.
	b.nc.Close()
	waitMembers(t, a, "a")
	if got := names(b.m.Members()); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("b without JetStream sees %v; it must count itself and keep a", got)
	}
}

// TestBucketReplicasGrow: SetReplicas raises the bucket's replicas at the
// next heartbeat, and a node asking for fewer leaves them.
func TestBucketReplicasGrow(t *testing.T) {
	servers := gatewaynatstest.Cluster(t, 3)
	a := startMember(t, servers[0], "a", 1)
	waitMembers(t, a, "a")
	js, _ := jetstream.New(a.nc)
	replicas := func() int {
		kv, err := js.KeyValue(t.Context(), "blockgate_nodes")
		if err != nil {
			return 0
		}
		st, err := kv.Status(t.Context())
		if err != nil {
			return 0
		}
		return st.Config().Replicas
	}
	if r := replicas(); r != 1 {
		t.Fatalf("replicas %d, want 1", r)
	}
	a.m.SetReplicas(3)
	a.m.SetReplicas(2)
	for deadline := time.Now().Add(10 * time.Second); replicas() != 3; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("replicas %d after SetReplicas(3), want 3", replicas())
		}
	}
	b := startMember(t, servers[1], "b", 1)
	waitMembers(t, b, "a", "b")
	if r := replicas(); r != 3 {
		t.Fatalf("a node with Replicas 1 changed the bucket to %d replicas", r)
	}
}

func TestNewRefuses(t *testing.T) {
	nc := &nats.Conn{}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no name", Config{}},
		{"name with a space", Config{Self: Node{Name: "node 1"}}},
		{"name with a wildcard", Config{Self: Node{Name: "node*"}}},
		{"leading dot", Config{Self: Node{Name: ".node"}}},
		{"TTL under two intervals", Config{Self: Node{Name: "n"}, Interval: time.Second, TTL: time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(js, tc.cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	for _, name := range []string{"node-1", "gw_2", "blockgate-0.blockgate.svc", fmt.Sprint(42)} {
		if _, err := New(js, Config{Self: Node{Name: name}}); err != nil {
			t.Errorf("%q refused: %v", name, err)
		}
	}
}

// entry is a heartbeat as the watch delivers it.
type entry struct {
	key     string
	value   []byte
	created time.Time
}

func (e entry) Bucket() string                  { return "blockgate_nodes" }
func (e entry) Key() string                     { return e.key }
func (e entry) Value() []byte                   { return e.value }
func (e entry) Revision() uint64                { return 1 }
func (e entry) Created() time.Time              { return e.created }
func (e entry) Delta() uint64                   { return 0 }
func (e entry) Operation() jetstream.KeyValueOp { return jetstream.KeyValuePut }

func TestOutageDoesNotAgePeers(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	m := &Membership{cfg: Config{Self: Node{Name: "a"}, TTL: 10 * time.Second, Now: clock}, nodes: map[string]Node{}}
	m.logger = slog.New(slog.DiscardHandler)
	heard := func(name string) {
		m.apply(entry{key: name, value: fmt.Appendf(nil, `{"name":%q}`, name), created: now}, true)
	}
	at := func(d time.Duration) { now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(d) }
	want := func(what string, live ...string) {
		t.Helper()
		if got := names(m.Members()); !slices.Equal(got, live) {
			t.Fatalf("%s: members %v, want %v", what, got, live)
		}
	}

	m.heartbeatPut()
	heard("b")
	heard("c")
	at(5 * time.Second)
	want("both peers fresh", "a", "b", "c")

	// The bucket stops taking heartbeats at 2 s (the last put was at 0):
	// for as long as it lasts, nobody ages.
	at(2 * time.Second)
	m.heartbeatPut()
	at(4 * time.Second)
	m.heartbeatFailed()
	at(40 * time.Second)
	m.heartbeatFailed()
	want("during the outage", "a", "b", "c")

	// Back at 41 s: b's heartbeat comes through, c's never does.
	at(41 * time.Second)
	m.heartbeatPut()
	heard("b")
	// c has been silent for 2 s before the outage and 7 s after it.
	at(41*time.Second + 7*time.Second)
	want("c silent for 9 s of working bucket", "a", "b", "c")
	at(41*time.Second + 9*time.Second)
	want("c silent for 11 s of working bucket", "a", "b")

	// Without an outage, silence over the TTL drops a node.
	heard("c")
	at(41*time.Second + 22*time.Second)
	m.heartbeatPut()
	want("both silent for 11 s while the bucket works", "a")
}
