package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestClusterNodeLoss kills nodes of a three-node cluster with SIGKILL
// under a steady load of publishes and state writes spread over the nodes,
// with a Go SDK subscriber streaming the topic; first a node the
// subscriber does not stream from, then, once that one is back, the
// subscriber's own. The clients reach the cluster through a load balancer
// (endpoint), which moves those of a dead node to another. No acknowledged
// publish or write is lost, only the dead node's clients see errors, and
// each killed node restarts and rejoins.
func TestClusterNodeLoss(t *testing.T) {
	c := startCluster(t, 3)
	l := startLoad(t, c, loadConfig{httpPublishers: 3, sdkPublishers: 3, writers: 3, every: 25 * time.Millisecond, subscriberHome: 0})

	lose := func(victim int) {
		t.Helper()
		l.advance(t, "the load before the loss", 50)
		c.kill(t, victim)
		killed := time.Now()
		t.Logf("killed node %d at %+v", victim+1, l.progress())
		l.advance(t, "the survivors to serve the load", 150)
		c.restart(t, victim)
		t.Logf("node %d rejoined %s after it was killed, at %+v", victim+1, time.Since(killed).Round(100*time.Millisecond), l.progress())
		// A request through the restarted node works.
		g := c.node(victim)
		if st, _, b := do(t, g, l.token, "POST", "/v1.0/publish/pubsub/"+l.topic, strings.NewReader(`{"id":"after-restart"}`),
			"Content-Type", "application/json"); st != http.StatusNoContent {
			t.Fatalf("publish through the restarted node %d: %d %s", victim+1, st, b)
		}
		l.advance(t, "the load after the restart", 50)
	}
	if l.sub.node() != 0 {
		t.Fatalf("the subscriber streams from node %d, want node 1", l.sub.node()+1)
	}
	lose(2) // not the subscriber's node
	lose(0) // the subscriber's: its stream moves to another node
	if n := l.sub.node(); n == 0 {
		t.Errorf("the subscriber's stream is still on node 1")
	}
	l.stopClients()
	t.Logf("load stopped at %+v", l.progress())

	// What the subscriber's killed node had taken from JetStream but not
	// delivered, or the subscriber had no way to acknowledge, comes back
	// after AckWait (30s).
	l.waitDelivered(t, 45*time.Second)
	l.checkSaved(t, c.node(1))
	l.checkFailures(t)
	l.mu.Lock()
	t.Logf("the subscriber subscribed anew %d times", l.resubscribed)
	l.mu.Unlock()
	c.waitFormed(t)
}
