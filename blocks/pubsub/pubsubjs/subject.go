package pubsubjs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/blockgate/blockgate/tenants"
)

// maxTokenLen bounds an escaped topic, so that subjects stay far below the
// NATS protocol's control-line limit (4 KiB).
const maxTokenLen = 1024

// unkeyedPart is the <part> token of messages without a partition key.
const unkeyedPart = "_"

const hexDigits = "0123456789ABCDEF"

// unreserved reports whether c stands for itself in a token.
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-'
}

// escapeToken maps s into one NATS subject token, injectively: bytes in
// [A-Za-z0-9-] stay, every other byte becomes '_' and its two upper-case hex
// digits, and the empty string becomes "_", which no other input produces.
// Each byte has its own code word and no code word is a prefix of another,
// so the result decodes uniquely (unescapeToken).
func escapeToken(s string) string {
	if s == "" {
		return "_"
	}
	escapes := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			escapes++
		}
	}
	if escapes == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+2*escapes)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '_', hexDigits[c>>4], hexDigits[c&0xF])
	}
	return string(b)
}

// unescapeToken inverts escapeToken.
func unescapeToken(tok string) (string, error) {
	if tok == "_" {
		return "", nil
	}
	if tok == "" {
		return "", errors.New("empty token")
	}
	var b strings.Builder
	b.Grow(len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case unreserved(c):
			b.WriteByte(c)
		case c == '_' && i+2 < len(tok) && isHex(tok[i+1]) && isHex(tok[i+2]):
			b.WriteByte(unhex(tok[i+1])<<4 | unhex(tok[i+2]))
			i += 2
		default:
			return "", fmt.Errorf("invalid escaped token %q at byte %d", tok, i)
		}
	}
	return b.String(), nil
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

// topicToken escapes a Dapr topic, refusing ones too long for a subject.
func topicToken(topic string) (string, error) {
	tok := escapeToken(topic)
	if len(tok) > maxTokenLen {
		return "", fmt.Errorf("topic of %d bytes is too long: at most %d bytes once escaped", len(topic), maxTokenLen)
	}
	return tok, nil
}

// streamName is the tenant's stream; tenant is a valid tenants.ID.
func streamName(tenant tenants.ID) string { return "T_" + string(tenant) }

// streamSubjects are the subjects the tenant's stream captures.
func streamSubjects(tenant tenants.ID) []string { return []string{"t." + string(tenant) + ".>"} }

// topicScope is "<pubsub>.<topic>" of a topic's subjects.
func topicScope(pubsubName, topicTok string) string {
	return escapeToken(pubsubName) + "." + topicTok
}

// subject is where a message of the topic scope and part is stored.
func subject(tenant tenants.ID, scope, part string) string {
	return "t." + string(tenant) + "." + scope + "." + part
}

// partition returns the <part> token for a partition key.
func partition(key string, partitions int) string {
	if key == "" {
		return unkeyedPart
	}
	return partToken(int(fnv1a(key) % uint32(partitions)))
}

// partToken names partition n.
func partToken(n int) string { return "p" + strconv.Itoa(n) }

// fnv1a is the 32-bit FNV-1a hash; it is stable across processes and
// versions, which the key → partition mapping needs.
func fnv1a(s string) uint32 {
	const offset, prime = 2166136261, 16777619
	h := uint32(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= prime
	}
	return h
}

// consumerName names the durable consumer of one part of a subscription:
// a readable prefix made of the names' safe characters, a hash of the full
// names (so that names differing only in unsafe or truncated characters get
// different consumers) and the part ("u" or "p<N>"). It is at most 92 bytes
// of [A-Za-z0-9_-].
func consumerName(pubsubName, topic, group, part string) string {
	h := sha256.New()
	for _, s := range []string{pubsubName, topic, group} {
		// Length-prefixed, so that the concatenation is unambiguous.
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	sum := hex.EncodeToString(h.Sum(nil)[:10])
	return readable(pubsubName, 16) + "_" + readable(group, 24) + "_" + readable(topic, 24) + "_" + sum + "_" + part
}

// readable keeps the unreserved bytes of s, others becoming '-', cut to n.
func readable(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	b := []byte(s)
	for i, c := range b {
		if !unreserved(c) {
			b[i] = '-'
		}
	}
	return string(b)
}
