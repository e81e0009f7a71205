package authoidc

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// verifiedToken is what the cache keeps of a token that verified.
type verifiedToken struct {
	claims Claims
	fed    *federation
	// key is the key that verified the token, found again by kid and alg
	// on every hit: when the issuer stops publishing it (or a refresh
	// brings a different key under that kid), the hit misses.
	key       *publicKey
	kid, alg  string
	notBefore time.Time // the later of nbf and iat; zero if neither
}

// verifiedCache maps token text to what it verified as. Only tokens that
// passed the full check go in, keyed by their exact text, so a hit is the
// same bytes under the same signature; what can change (the time, the
// issuer's keys) is checked again on every hit. Each snapshot of the
// federations has its own cache, so a change of federations empties it.
//
// As in auth/authjwt, it is a sync.Map, whose reads take no lock, swapped
// for an empty one when it holds about max entries.
type verifiedCache struct {
	m   atomic.Pointer[sync.Map]
	n   atomic.Int64
	max int64
}

func newVerifiedCache(size int) *verifiedCache {
	c := &verifiedCache{max: int64(size)}
	c.m.Store(new(sync.Map))
	return c
}

func (c *verifiedCache) get(token string) *verifiedToken {
	v, _ := c.m.Load().Load(token)
	t, _ := v.(*verifiedToken)
	return t
}

func (c *verifiedCache) put(token string, t *verifiedToken) {
	if c.n.Add(1) > c.max {
		c.m.Store(new(sync.Map))
		c.n.Store(1)
	}
	// Clone: the caller's string may pin a larger buffer it was cut from.
	c.m.Load().Store(strings.Clone(token), t)
}

func (c *verifiedCache) remove(token string) {
	c.m.Load().Delete(token)
}
