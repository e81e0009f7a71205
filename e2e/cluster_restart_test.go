package e2e

import (
	"testing"
	"time"
)

// TestClusterRollingRestart restarts every node of a three-node cluster in
// turn — SIGTERM, wait for a clean exit, start again, wait until it is
// ready and rejoined — under a steady load of publishes and state writes
// spread over the nodes and a Go SDK subscriber streaming the topic. The
// load balancer (endpoint) takes a node out of rotation before it is
// stopped, as a deployment's readiness checks or deregistration would. No
// acknowledged publish or write is lost, and the only failures are the
// connections of the node being restarted, which the clients make again
// through the endpoint.
func TestClusterRollingRestart(t *testing.T) {
	c := startCluster(t, 3)
	l := startLoad(t, c, loadConfig{httpPublishers: 2, sdkPublishers: 1, writers: 3, every: 50 * time.Millisecond, subscriberHome: 0})
	for i := range c.nodes {
		l.advance(t, "the load before the restart", 30)
		start := time.Now()
		c.terminate(t, i)
		stopped := time.Since(start)
		c.restart(t, i)
		t.Logf("node %d stopped in %s and rejoined %s later, at %+v", i+1, stopped.Round(10*time.Millisecond),
			(time.Since(start) - stopped).Round(10*time.Millisecond), l.progress())
	}
	l.advance(t, "the load after the restarts", 30)
	l.stopClients()
	t.Logf("load stopped at %+v", l.progress())
	l.waitDelivered(t, 45*time.Second)
	l.checkSaved(t, c.node(0))
	l.checkFailures(t)
}
