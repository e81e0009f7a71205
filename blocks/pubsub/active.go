package pubsub

import (
	"sort"
	"sync"

	"github.com/blockgate/blockgate/tenants"
)

// activeSet tracks the subscriptions delivering on this node, for the
// metadata API.
type activeSet struct {
	mu   sync.Mutex
	next int
	subs map[int]Subscriber
}

// add records s and returns the function that forgets it.
func (a *activeSet) add(s Subscriber) (remove func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.subs == nil {
		a.subs = map[int]Subscriber{}
	}
	id := a.next
	a.next++
	a.subs[id] = s
	return func() {
		a.mu.Lock()
		delete(a.subs, id)
		a.mu.Unlock()
	}
}

// Active is a subscription delivering to an app, as the metadata API shows it.
type Active struct {
	Subscription
	// Origin is OriginDeclarative, OriginProgrammatic or OriginStreaming.
	Origin string
}

// Active lists the subscriptions of tenant's app that deliver on this node,
// by pubsub and topic; several streams of one topic are listed once.
func (svc *Service) Active(tenant tenants.ID, appID string) []Active {
	svc.active.mu.Lock()
	seen := map[[3]string]bool{}
	var out []Active
	for _, s := range svc.active.subs {
		k := [3]string{s.Sub.Pubsub, s.Sub.Topic, s.Origin}
		if s.Tenant != tenant || s.AppID != appID || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, Active{Subscription: s.Sub, Origin: s.Origin})
	}
	svc.active.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pubsub != out[j].Pubsub {
			return out[i].Pubsub < out[j].Pubsub
		}
		return out[i].Topic < out[j].Topic
	})
	return out
}
