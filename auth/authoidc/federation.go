package authoidc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"sigs.k8s.io/yaml"

	"github.com/blockgate/blockgate/internal/yamldoc"
	"github.com/blockgate/blockgate/tenants"
)

// APIVersion and Kind name the FederatedIssuer resource.
const (
	APIVersion = "blockgate.io/v1alpha1"
	Kind       = "FederatedIssuer"
)

// DefaultAppIDClaim is the claim that names the app when a federation does
// not say.
const DefaultAppIDClaim = "sub"

// DefaultAlgorithms are the signature algorithms a federation accepts when
// it does not list its own: the asymmetric ones OIDC providers use.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"}

// supportedAlgorithms are those a federation may list. Symmetric (HS*)
// algorithms and "none" are never among them: the gateway holds only the
// issuer's public keys, and an HMAC keyed with a public key is a forgery
// anyone can make.
var supportedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Limits on a federation, so that one resource cannot cost much to store,
// match or apply.
const (
	maxURLLen      = 1024
	maxAudienceLen = 1024
	maxClaimLen    = 256
	// maxClaimDots bounds the dots of an app id claim path; resolving a
	// path tries the ways its dots split it into keys (see lookupClaim).
	maxClaimDots    = 8
	maxMappingLen   = 10000
	maxMappingKey   = 1024
	maxDocumentSize = 1 << 20
)

// Federation is a tenant's trust in an external OIDC issuer: a token that
// issuer signed for Audience acts as an app of Tenant, the app named by the
// token's AppIDClaim (through Mapping, when there is one).
//
// A Federation is plain data. Once handed to a Verifier or a registry it
// belongs to them: the caller must not change its Mapping or Algorithms.
type Federation struct {
	// Tenant trusts the issuer. ParseFederation leaves it empty; the caller
	// sets it, as for tenants.Component.
	Tenant tenants.ID
	// Name is metadata.name, a DNS label unique within the tenant.
	Name string
	// Issuer is spec.issuer, the https URL a token's iss must equal
	// exactly.
	Issuer string
	// JWKSURL is spec.jwksURL, where the issuer publishes its keys. Empty
	// means discovered: the jwks_uri of <Issuer>/.well-known/openid-configuration.
	JWKSURL string
	// Audience is spec.audience, required: a token's aud must contain it.
	// It also decides the tenant (see the package doc).
	Audience string
	// AppIDClaim is spec.appIDClaim, the claim whose string value names
	// the app; a dotted path reaches into objects
	// (kubernetes.io.serviceaccount.name). Empty means DefaultAppIDClaim.
	AppIDClaim string
	// Mapping is spec.mapping: claim value → app id. When it is not empty
	// only the values it lists are accepted; when empty the claim value is
	// the app id itself.
	Mapping map[string]string
	// Algorithms is spec.algorithms, the signature algorithms accepted.
	// Empty means DefaultAlgorithms.
	Algorithms []string
	// Revision increases on every change of the federation in the registry.
	Revision int64
}

// ClaimPath is the app id claim in effect.
func (f Federation) ClaimPath() string {
	if f.AppIDClaim == "" {
		return DefaultAppIDClaim
	}
	return f.AppIDClaim
}

// AllowedAlgorithms are the algorithms in effect.
func (f Federation) AllowedAlgorithms() []string {
	if len(f.Algorithms) == 0 {
		return DefaultAlgorithms
	}
	return f.Algorithms
}

// document is the wire form of a FederatedIssuer resource.
type document struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Issuer     string            `json:"issuer"`
		JWKSURL    string            `json:"jwksURL,omitempty"`
		Audience   string            `json:"audience"`
		AppIDClaim string            `json:"appIDClaim,omitempty"`
		Mapping    map[string]string `json:"mapping,omitempty"`
		Algorithms []string          `json:"algorithms,omitempty"`
	} `json:"spec"`
}

// ParseFederation reads a FederatedIssuer resource in YAML or JSON and
// validates it. Unknown fields, repeated keys and several documents in one
// are refused, so that a typo cannot silently widen what is trusted.
func ParseFederation(data []byte) (Federation, error) {
	if len(data) > maxDocumentSize {
		return Federation{}, fmt.Errorf("federated issuer is larger than %d bytes", maxDocumentSize)
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return Federation{}, fmt.Errorf("federated issuer is neither YAML nor JSON (or repeats a key): %w", err)
	}
	if err := yamldoc.One(data); err != nil {
		return Federation{}, fmt.Errorf("reading federated issuer: %w", err)
	}
	var d document
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return Federation{}, fmt.Errorf("reading federated issuer: %w", err)
	}
	if err := exactFieldNames(js); err != nil {
		return Federation{}, err
	}
	if d.APIVersion != APIVersion {
		return Federation{}, fmt.Errorf("federated issuer apiVersion is %q; want %s", d.APIVersion, APIVersion)
	}
	if d.Kind != Kind {
		return Federation{}, fmt.Errorf("kind is %q; want %s", d.Kind, Kind)
	}
	f := Federation{
		Name:       d.Metadata.Name,
		Issuer:     d.Spec.Issuer,
		JWKSURL:    d.Spec.JWKSURL,
		Audience:   d.Spec.Audience,
		AppIDClaim: d.Spec.AppIDClaim,
		Mapping:    d.Spec.Mapping,
		Algorithms: d.Spec.Algorithms,
	}
	// Empty is the same as absent; keep one form of it.
	if len(f.Mapping) == 0 {
		f.Mapping = nil
	}
	if len(f.Algorithms) == 0 {
		f.Algorithms = nil
	}
	if err := f.Validate(); err != nil {
		return Federation{}, err
	}
	return f, nil
}

// fieldNames are the field names of a FederatedIssuer, by the object that
// holds them.
var fieldNames = map[string][]string{
	"":         {"apiVersion", "kind", "metadata", "spec"},
	"metadata": {"name"},
	"spec":     {"issuer", "jwksURL", "audience", "appIDClaim", "mapping", "algorithms"},
}

// exactFieldNames refuses field names that differ from the resource's in
// case only. encoding/json matches them case-insensitively, so "Audience"
// beside "audience" would otherwise pass the check for repeated keys and
// silently override it.
func exactFieldNames(js []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil {
		return fmt.Errorf("reading federated issuer: %w", err)
	}
	check := func(path string, obj map[string]json.RawMessage) error {
		for k := range obj {
			if !slices.Contains(fieldNames[path], k) {
				return fmt.Errorf("reading federated issuer: unknown field %q; field names are case-sensitive", strings.TrimPrefix(path+"."+k, "."))
			}
		}
		return nil
	}
	if err := check("", top); err != nil {
		return err
	}
	for _, path := range []string{"metadata", "spec"} {
		var obj map[string]json.RawMessage
		if raw, ok := top[path]; ok {
			if err := json.Unmarshal(raw, &obj); err != nil {
				return fmt.Errorf("reading federated issuer: %s: %w", path, err)
			}
		}
		if err := check(path, obj); err != nil {
			return err
		}
	}
	return nil
}

// Document renders f as a FederatedIssuer resource in JSON; ParseFederation
// reads it back as f (without Tenant and Revision).
func (f Federation) Document() []byte {
	var d document
	d.APIVersion = APIVersion
	d.Kind = Kind
	d.Metadata.Name = f.Name
	d.Spec.Issuer = f.Issuer
	d.Spec.JWKSURL = f.JWKSURL
	d.Spec.Audience = f.Audience
	d.Spec.AppIDClaim = f.AppIDClaim
	d.Spec.Mapping = f.Mapping
	d.Spec.Algorithms = f.Algorithms
	out, _ := json.Marshal(d) // strings, a string map and a slice: cannot fail
	return out
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Validate checks what the resource says; it does not check Tenant, which
// ParseFederation leaves empty. Its errors name the field at fault.
func (f Federation) Validate() error {
	if !nameRE.MatchString(f.Name) {
		return fmt.Errorf("federated issuer metadata.name %q is invalid: use 1-63 lowercase letters, digits and '-'", f.Name)
	}
	if err := validateURL(f.Issuer, false); err != nil {
		return fmt.Errorf("federated issuer %s: spec.issuer: %w", f.Name, err)
	}
	if f.JWKSURL != "" {
		if err := validateURL(f.JWKSURL, true); err != nil {
			return fmt.Errorf("federated issuer %s: spec.jwksURL: %w", f.Name, err)
		}
	}
	switch {
	case f.Audience == "":
		return fmt.Errorf("federated issuer %s: spec.audience is required: the aud that tokens for this tenant carry", f.Name)
	case len(f.Audience) > maxAudienceLen || !printable(f.Audience):
		return fmt.Errorf("federated issuer %s: spec.audience must be at most %d printable characters", f.Name, maxAudienceLen)
	}
	if f.AppIDClaim != "" {
		if err := validateClaimPath(f.AppIDClaim); err != nil {
			return fmt.Errorf("federated issuer %s: spec.appIDClaim: %w", f.Name, err)
		}
	}
	if len(f.Mapping) > maxMappingLen {
		return fmt.Errorf("federated issuer %s: spec.mapping has %d entries; at most %d", f.Name, len(f.Mapping), maxMappingLen)
	}
	// In key order, so that the first error is the same every time.
	for _, k := range slices.Sorted(maps.Keys(f.Mapping)) {
		if k == "" || len(k) > maxMappingKey {
			return fmt.Errorf("federated issuer %s: spec.mapping: a claim value must be 1-%d bytes", f.Name, maxMappingKey)
		}
		if err := tenants.ValidateAppID(f.Mapping[k]); err != nil {
			return fmt.Errorf("federated issuer %s: spec.mapping[%q]: %w", f.Name, k, err)
		}
	}
	seen := make(map[string]bool, len(f.Algorithms))
	for _, alg := range f.Algorithms {
		if !slices.Contains(supportedAlgorithms, alg) {
			if alg == "none" || strings.HasPrefix(strings.ToUpper(alg), "HS") {
				return fmt.Errorf("federated issuer %s: spec.algorithms: %q is not allowed: federated tokens must be signed with the issuer's private key", f.Name, alg)
			}
			return fmt.Errorf("federated issuer %s: spec.algorithms: %q is not supported; use some of %s", f.Name, alg, strings.Join(supportedAlgorithms, ", "))
		}
		if seen[alg] {
			return fmt.Errorf("federated issuer %s: spec.algorithms: %q appears twice", f.Name, alg)
		}
		seen[alg] = true
	}
	return nil
}

// validateURL checks an issuer (query not allowed) or JWKS URL: absolute
// https with a host, no credentials, no fragment. OIDC requires https for
// both, and a JWKS fetched in clear text could be replaced on the way.
func validateURL(s string, queryAllowed bool) error {
	if s == "" {
		return errors.New("is required")
	}
	if len(s) > maxURLLen {
		return fmt.Errorf("is longer than %d bytes", maxURLLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("is not a URL")
	}
	switch {
	case u.Scheme != "https":
		return fmt.Errorf("%q must be an https URL", s)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%q has no host", s)
	case u.User != nil:
		return fmt.Errorf("%q must not carry credentials", s)
	case u.Fragment != "" || strings.Contains(s, "#"):
		return fmt.Errorf("%q must not have a fragment", s)
	case !queryAllowed && (u.RawQuery != "" || strings.Contains(s, "?")):
		return fmt.Errorf("%q must not have a query", s)
	case !printable(s):
		return fmt.Errorf("%q holds unprintable characters", s)
	}
	return nil
}

func validateClaimPath(p string) error {
	if len(p) > maxClaimLen || !printable(p) {
		return fmt.Errorf("%q must be at most %d printable characters", p, maxClaimLen)
	}
	if strings.Count(p, ".") > maxClaimDots {
		return fmt.Errorf("%q has more than %d dots", p, maxClaimDots)
	}
	for seg := range strings.SplitSeq(p, ".") {
		if seg == "" {
			return fmt.Errorf("%q has an empty segment: a dot starts or ends it, or two are adjacent", p)
		}
	}
	return nil
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == unicode.ReplacementChar {
			return false
		}
	}
	return true
}

// lookupClaim finds the value at path in claims. A claim name may itself
// contain dots (Kubernetes puts its claims under "kubernetes.io"), so each
// dot may separate two levels or belong to a name: at every level the
// longest name that exists is tried first, and shorter ones if that fails.
// A name equal to the whole remaining path always wins. Validate bounds
// the dots, and so the splits tried.
func lookupClaim(claims map[string]any, path string) (any, bool) {
	if v, ok := claims[path]; ok {
		return v, true
	}
	for i := strings.LastIndexByte(path, '.'); i > 0; i = strings.LastIndexByte(path[:i], '.') {
		child, ok := claims[path[:i]].(map[string]any)
		if !ok {
			continue
		}
		if v, ok := lookupClaim(child, path[i+1:]); ok {
			return v, true
		}
	}
	return nil, false
}
