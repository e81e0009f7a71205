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
