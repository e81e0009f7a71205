// Package auth turns credentials into the tenants.Principal a request acts
// for. The Authenticator checks app tokens with the token authority in
// auth/authjwt (JWTs the gateway signs with rotating keys, published as a
// JWKS) and against the registry's revocation list; the transports carry the
// result in the request context (WithPrincipal) and turn a rejected
// credential into a 401 or Unauthenticated. SPIFFE identities, the
// certificate authority and access policies live beside authjwt in their own
// auth/auth… packages.
package auth
