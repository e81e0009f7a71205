package pubsub

import (
	"strings"
	"unicode/utf8"
)

// MaxTopicLen is the longest topic name, in bytes, that the block accepts.
// A broker may need three bytes to carry one (JetStream escapes every byte
// outside [A-Za-z0-9-] as _XX into a subject token of at most 1024 bytes),
// so the limit keeps every valid topic publishable.
const MaxTopicLen = 256

// ValidateTopic checks a topic name as a client sent it. Dapr puts almost no
// rule on topics, so neither does blockgate: any non-empty UTF-8 string up to
// MaxTopicLen bytes without NUL is a topic. Dots, slashes, '*', '>' and
// spaces are all allowed; a Broker escapes whatever its backend cannot carry.
// The error is an *blocks.Error ready to send: ErrTopicEmpty or
// ErrInvalidTopic.
func ValidateTopic(topic string) error {
	switch {
	case topic == "":
		return ErrTopicEmpty()
	case len(topic) > MaxTopicLen:
		return ErrInvalidTopic("a topic is at most 256 bytes long")
	case !utf8.ValidString(topic):
		return ErrInvalidTopic("a topic must be valid UTF-8")
	case strings.IndexByte(topic, 0) >= 0:
		return ErrInvalidTopic("a topic must not contain NUL")
	}
	return nil
}
