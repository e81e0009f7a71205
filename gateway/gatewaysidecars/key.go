package gatewaysidecars

import (
	"errors"
	"fmt"
	"strings"

	"github.com/blockgate/blockgate/tenants"
)

// Sidecar is one Envoy sidecar connected to one gateway node: a key of the
// bucket.
type Sidecar struct {
	Tenant tenants.ID `json:"tenant"`
	App    string     `json:"appId"`
	// Node is the gateway node that holds the sidecar's stream.
	Node     string `json:"node"`
	Instance string `json:"instance"`
}

// Key is s's key in the bucket: "<tenant>.<app>.<node>.<instance>", each
// part escaped with escapePart so that it is one non-empty token of a KV
// key whatever it holds. Every part must be non-empty.
func (s Sidecar) Key() (string, error) {
	parts := [4]string{string(s.Tenant), s.App, s.Node, s.Instance}
	for i, p := range parts {
		if p == "" {
			return "", fmt.Errorf("sidecar %+v: empty %s", s, [4]string{"tenant", "app", "node", "instance"}[i])
		}
		parts[i] = escapePart(p)
	}
	return strings.Join(parts[:], "."), nil
}

// ParseKey is the inverse of Key.
func ParseKey(key string) (Sidecar, error) {
	parts := strings.Split(key, ".")
	if len(parts) != 4 {
		return Sidecar{}, fmt.Errorf("key %q: not <tenant>.<app>.<node>.<instance>", key)
	}
	for i, p := range parts {
		u, err := unescapePart(p)
		if err != nil {
			return Sidecar{}, fmt.Errorf("key %q: %w", key, err)
		}
		parts[i] = u
	}
	return Sidecar{Tenant: tenants.ID(parts[0]), App: parts[1], Node: parts[2], Instance: parts[3]}, nil
}

// escapePart keeps letters, digits, '-' and '_', which KV keys allow
// within a token, and writes every other byte, '.' (the token separator)
// and '=' (the escape) among them, as '=' and two upper-case hex digits.
// App ids may hold '.', and node names '/' and '.'. Tenant ids, DNS
// labels, come out as they are.
func escapePart(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plain(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('=')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xF])
	}
	return b.String()
}

// unescapePart undoes escapePart, refusing anything escapePart would not
// have written, so that a key has one reading only.
func unescapePart(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty part")
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plain(c) {
			b.WriteByte(c)
			continue
		}
		if c != '=' || i+2 >= len(s) {
			return "", fmt.Errorf("bad escape at %d in %q", i, s)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		v := hi<<4 | lo
		if !ok1 || !ok2 || plain(v) {
			return "", fmt.Errorf("bad escape at %d in %q", i, s)
		}
		b.WriteByte(v)
		i += 2
	}
	return b.String(), nil
}

func plain(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// unhex reads an upper-case hex digit, as escapePart writes them.
func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
