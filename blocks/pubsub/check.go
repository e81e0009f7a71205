package pubsub

import "github.com/blockgate/blockgate/tenants"

// CheckPublish reports whether appID may publish to topic on the pub/sub
// component c, by the rules Publish applies: a valid topic that the
// component's allowedTopics and publishingScopes let the app use. Blocks
// that publish on an app's behalf (the state block's outbox) call it with
// the component they resolved. The error is a *blocks.Error ready to send.
func CheckPublish(c tenants.Component, appID, topic string) error {
	return checkTopic(c, appID, topic, true)
}

// TopicAllowed reports whether appID may publish (publishing) or subscribe
// to topic on c by the component's allowedTopics, publishingScopes and
// subscriptionScopes: the rules Publish and the deliveries apply. With
// listedOnly, an app that the publishing (subscription) scopes do not list
// is refused, for a tenant that denies by default; without it Dapr's rule
// holds and such an app is limited only by allowedTopics. The error reports
// malformed scopes; the topic name is not validated.
func TopicAllowed(c tenants.Component, appID, topic string, publishing, listedOnly bool) (bool, error) {
	sc, err := parseScopes(c)
	if err != nil {
		return false, err
	}
	if !sc.allowed(appID, topic, publishing) {
		return false, nil
	}
	return !listedOnly || sc.lists(appID, publishing), nil
}

// lists reports whether the publishing (subscription) scopes name app.
func (sc scopes) lists(app string, publishing bool) bool {
	m := sc.subscribe
	if publishing {
		m = sc.publish
	}
	_, listed := m[app]
	return listed
}
