package state

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/blockgate/blockgate/tenants"
)

// prefixMode is a component's keyPrefix option: how Dapr turns the key an app
// sends into the key the store keeps, so that apps sharing a store do not
// collide unless they ask to.
type prefixMode struct {
	kind   string // appid, name, namespace, none, custom
	custom string
}

// maxKeyBytes bounds a key so that it fits a btree index entry with room
// for the prefix (Postgres allows about 2.7 KB per entry).
const maxKeyBytes = 2048

// keySeparator joins a prefix and a key, as in Dapr ("myapp||order-1").
const keySeparator = "||"

func parsePrefixMode(c tenants.Component) (prefixMode, error) {
	v, _ := c.Meta("keyPrefix")
	switch strings.ToLower(v) {
	case "", "appid":
		return prefixMode{kind: "appid"}, nil
	case "name":
		return prefixMode{kind: "name"}, nil
	case "namespace":
		return prefixMode{kind: "namespace"}, nil
	case "none":
		return prefixMode{kind: "none"}, nil
	}
	if strings.Contains(v, keySeparator) {
		return prefixMode{}, fmt.Errorf("component %s: keyPrefix %q must not contain %q", c.Name, v, keySeparator)
	}
	return prefixMode{kind: "custom", custom: v}, nil
}

// apply returns the stored form of key. An empty key is allowed only for
// computing the prefix itself (query).
func (m prefixMode) apply(p tenants.Principal, store, key string) (string, error) {
	if strings.Contains(key, keySeparator) {
		return "", errMalformed("input key %q can't contain %q", key, keySeparator)
	}
	var prefix string
	switch m.kind {
	case "appid":
		prefix = p.AppID
	case "name":
		prefix = store
	case "namespace":
		// A tenant is blockgate's namespace.
		prefix = string(p.Tenant) + "." + p.AppID
	case "custom":
		prefix = m.custom
	case "none":
		return key, nil
	}
	return prefix + keySeparator + key, nil
}

// key returns the stored form of an app's key, refusing an empty one.
func (m prefixMode) key(p tenants.Principal, store, key string) (string, error) {
	switch {
	case key == "":
		return "", errMalformed("state key is empty")
	case !utf8.ValidString(key) || strings.ContainsRune(key, 0):
		return "", errMalformed("state key must be valid UTF-8 without NUL characters")
	case len(key) > maxKeyBytes:
		return "", errMalformed("state key is %d bytes; the limit is %d", len(key), maxKeyBytes)
	}
	return m.apply(p, store, key)
}
