// Package authjwt is the gateway's app-token authority: it issues the JWTs
// that applications present as DAPR_API_TOKEN or as a bearer token, verifies
// them on every request, rotates the keys that sign them and publishes those
// keys as a JWKS for /.well-known/jwks.json.
//
// # Tokens
//
// An app token is a compact JWS signed with ES256 (ECDSA P-256, SHA-256). Its
// header names the signing key by kid, the key's RFC 7638 JWK thumbprint. Its
// claims are iss, aud, sub ("tenant/<tenant>/app/<app-id>", the path of the
// app's SPIFFE ID), jti (the token id the registry revokes by), iat, nbf and
// exp, plus the private claims tenant and app_id. A token lives at most
// [MaxTokenTTL].
//
// Verification trusts nothing in the token before its signature is checked
// against a key the gateway holds: the algorithm is pinned to ES256, so
// "none", HS256 keyed with the public key and every other algorithm are
// refused before a key is even looked up; the kid must name a known key that
// still verifies; and only then are the claims checked (exp is required, and
// exp, nbf and iat get a small leeway for clock skew; iss and aud must match;
// tenant and app_id must be valid names and agree with sub; jti is required).
// Revocation is not checked here: the caller looks [Claims.TokenID] up in the
// token registry, which knows what has been revoked.
//
// # Keys
//
// Signing keys live in a [KeyStore] shared by every gateway node (Postgres in
// production). The newest unretired key signs; adding a key retires the older
// ones, which keep verifying for [Config.RetiredKeyGrace] after retirement
// (by default [MaxTokenTTL], so that no token outlives the key that signed
// it) and then drop out of verification and of the JWKS. A node
// learns of a key that another node added either when the gateway calls
// [Authority.Reload] (on a cluster notification) or when a token names an
// unknown kid: that triggers one reload of the store, rate-limited so that a
// flood of forged kids costs at most one store read per
// [Config.KeyReloadInterval].
//
// # Concurrency
//
// Verify and Issue are the hot path and take no lock: the keys are an
// immutable snapshot behind an atomic pointer, replaced wholesale by Load,
// Reload and Rotate, which serialise among themselves on a mutex. That is an
// RWMutex's semantics without the shared reader count that every RLock
// writes, which matters when every request on every core verifies a token.
//
// An app sends the same token on every request, and an ES256 signature check
// costs tens of microseconds, so Verify keeps the tokens that passed in a
// bounded cache keyed by their exact text ([Config.VerifiedCacheSize]). A hit
// re-checks only what can change for identical bytes: exp and nbf against
// the clock, and whether the signing key still verifies. A hit takes no lock
// and allocates nothing; a miss costs the full check and a cache insert.
package authjwt
