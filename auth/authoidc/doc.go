// Package authoidc lets a tenant trust an external OpenID Connect issuer, so
// that a workload presents a token its own platform gave it (a Kubernetes
// service-account token, a CI job's OIDC token) instead of a gateway app
// token. Such a token acts as one app of one tenant.
//
// # Federations
//
// A [Federation] is a tenant's FederatedIssuer resource:
//
//	apiVersion: blockgate.io/v1alpha1
//	kind: FederatedIssuer
//	metadata: {name: k8s-prod}
//	spec:
//	  issuer: https://kubernetes.default.svc
//	  jwksURL: https://kubernetes.default.svc/openid/v1/jwks  # optional
//	  audience: blockgate                                     # required
//	  appIDClaim: kubernetes.io.serviceaccount.name           # default sub
//	  mapping: {orders-sa: orders}                            # optional
//	  algorithms: [RS256]                                     # optional
//
// [ParseFederation] decodes it strictly (unknown fields, repeated keys and
// several documents are refused) and [Federation.Validate] checks it: https
// URLs without credentials or fragment, an audience, a claim path of
// non-empty segments, mapped app ids that are valid, and algorithms among the
// asymmetric ones ([DefaultAlgorithms] when none are listed; "none" and HS*
// are never accepted, since the gateway holds only public keys and an HMAC
// keyed with a public key is a forgery anyone can make).
//
// The app id comes from the claim appIDClaim names. A dotted path reaches
// into objects, and since claim names may contain dots themselves
// (Kubernetes nests its claims under "kubernetes.io"), each level tries the
// longest name that exists first. With a mapping, only the claim values it
// lists are accepted, as the apps they map to; without one, the value is
// the app id and must be a valid one. The principal's TokenID is "oidc:"
// and the token's jti (empty without one); [Claims] also names the
// federation, for logs.
//
// # Which tenant a token acts in
//
// A token is matched to a federation by its issuer and audience: iss must
// equal a federation's issuer exactly and aud must contain its audience.
// The registry keeps (issuer, audience) unique across all tenants (a unique
// constraint), so a token matches at most one federation, in one tenant: a
// token minted for tenant A's audience can never act in tenant B, even when
// both trust the same issuer, and tenant B cannot add a federation that
// would catch tenant A's tokens. A token whose aud names the audiences of two
// federations is refused rather than given to either. [Verifier.SetFederations]
// enforces the same rule on its input, leaving out every federation that
// shares its issuer and audience with another.
//
// Nothing in the URL or the request chooses the tenant, only the token. For
// an issuer many parties use (a public CI provider), the audience is the
// only thing that separates tenants: pick one that names the tenant, and
// use a mapping, since anyone that issuer serves can obtain a token for any
// audience.
//
// # Verification
//
// The federation is chosen from the unverified iss and aud; everything is
// then checked against it. The algorithm is pinned to the federation's list
// before a key is looked up, so alg "none" and HS256 keyed with the public
// key are refused before any key is touched; the key must be one the issuer
// publishes that fits the algorithm (curve and type, and the JWK's own alg
// when it states one); the crit header is refused. Then exp is required,
// exp, nbf and iat get [Config.Leeway] for clock skew, iss must match
// exactly and aud must contain the federation's audience (and, decoded after
// verification, no other federation's). A token without kid is accepted only
// when exactly one of the issuer's keys fits its algorithm.
//
// Every refusal matches [ErrInvalid] with errors.Is, and a more precise
// sentinel where one applies. Messages are short and safe to show a client;
// why a fetch failed stays out of them and is available to the log through
// [LogDetail].
//
// # Keys
//
// Federations that name the same issuer and JWKS URL share one key source,
// whatever their tenant, so an issuer's keys are fetched once. The JWKS URL
// is the federation's jwksURL, or the jwks_uri of the issuer's
// /.well-known/openid-configuration, whose issuer must be the federation's
// (OIDC Discovery 4.3). Fetches have a timeout and a size cap
// ([Config.FetchTimeout], [Config.MaxDocumentBytes]), follow (with the
// default client) at most three redirects, to https only, and never put what
// they fetched in an error.
// Keys are parsed by hand rather than with a JOSE library so that one key
// this package cannot use (another use, an unknown type, an RSA key under
// 2048 bits, private material) is left out and logged without costing the
// issuer its other keys.
//
// Keys are fetched on demand (the first token of an issuer), by [Verifier.Run]
// as federations appear and whenever they are older than
// [Config.RefreshInterval], and when a token names a kid the cached set
// lacks: the issuer may have rotated. That last fetch is rate-limited per
// issuer ([Config.MinFetchInterval], 30s by default), and tokens arriving
// during a fetch wait for it, so a flood of forged kids costs at most one
// fetch per issuer per interval. A key the issuer stops publishing stops
// verifying at the next successful fetch. When a fetch fails the cached keys
// stay in use; with none cached the token is refused with
// [ErrKeysUnavailable].
//
// Every issuer URL is chosen by a tenant, so every fetch is a request a
// tenant chose, inside the operator's network. Fetches are GETs whose
// responses are never shown; an operator who wants to fence them (or trust a
// private CA, as a Kubernetes API server's) supplies [Config.HTTPClient].
//
// # Concurrency
//
// Verify is the hot path and takes no lock: the federations are an immutable
// snapshot behind an atomic pointer, replaced wholesale by SetFederations,
// and each issuer's keys are another, replaced by each successful fetch.
// Tokens that verified are cached by their exact text in a bounded cache per
// snapshot ([Config.VerifiedCacheSize]); a hit re-checks the time and that
// the issuer still publishes the key that verified it.
//
// # Routing
//
// A gateway token and a federated one are told apart by their unverified
// iss ([PeekIssuer]): the gateway's own issuer goes to auth/authjwt, an
// issuer for which [Verifier.HasIssuer] holds comes here. Listing the
// gateway's issuer in [Config.ReservedIssuers] keeps any federation from
// claiming it.
package authoidc
