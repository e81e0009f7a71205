// Package authca is the gateway cluster's certificate authority, in the
// role of Dapr's Sentry: it issues the short-lived X.509-SVIDs that apps'
// Envoy sidecars present (over SDS), certificates for the gateway's own TLS
// listeners, and the trust bundle every party verifies against; and it
// verifies the SVIDs that clients present to the gateway.
//
// # Identities
//
// An app's SPIFFE ID is spiffe://<trust-domain>/tenant/<tenant>/app/<app-id>
// (AppID, and PrincipalOf for the way back, which refuses every other shape
// and every other trust domain); the gateway's own is
// spiffe://<trust-domain>/gateway (GatewayID). An SVID carries its SPIFFE ID
// as its only URI SAN. The ID to sign always comes from the caller's
// authenticated identity: SignCSR ignores the subject, SANs and extensions
// of the request, which only contributes its public key.
//
// # Generations
//
// The CA's key material is a generation: a root certificate (ECDSA P-256,
// self-signed, valid for Config.RootTTL, one year by default) and an
// issuing intermediate that the root signs, which signs every leaf. A leaf
// chain is [leaf, intermediate]; the bundle holds only roots. The root's
// private key signs the intermediate and is then dropped, never stored:
// nothing needs it again, since the next generation has a new root, and a
// key that is never stored cannot leak from the database. Alternatively
// the operator supplies a root certificate and key (Config.Root, read by
// LoadRoot from PEM files); each generation then gets a new intermediate
// under that root, whose key stays in the operator's file.
//
// # Keys at rest
//
// The intermediate's private key is stored sealed with AES-256-GCM under a
// key derived by HKDF-SHA256 (fixed info string, no salt) from the
// operator's master key, at least 32 bytes, which the caller reads from a
// file or an environment variable; the generation id is the additional
// data, so a sealed key copied into another row does not open. Beside it
// the store keeps a fingerprint of the master key (another HKDF output),
// so that a node started with the wrong master key fails Load with
// ErrWrongMasterKey, naming both fingerprints and what to do, instead of
// reporting corrupt data. Only the active generation's key is ever
// decrypted. Nothing the package logs contains key material.
//
// # Rotation
//
// The store holds every generation; exactly one is active, and it signs.
// Adding a generation retires the active one in the same transaction, and
// only if it is still the one the caller replaces (Store.AddCAGeneration is
// a compare-and-swap): so nodes racing to create the first generation, or
// to renew the same one, end with one new generation, which the losers
// adopt. Rotate makes a new generation the signer at once on its node;
// other nodes switch when they Reload, which the gateway calls on the
// registry's change notification. A retired generation signs nothing, but
// its root stays in the bundle until every certificate it can have signed
// has expired: Config.MaxSVIDTTL after the retirement, plus ten minutes for
// clock skew and for nodes that signed with it until their reload. So old
// certificates keep verifying until they expire, and new ones chain to the
// new root. A peer that verifies with a bundle it fetched before a rotation
// refuses certificates of the new generation until it fetches the bundle
// again; SDS sends the new bundle with the new certificates, so the window
// is one push.
//
// Run renews the active generation when it comes within a tenth of its
// lifetime (at least twice MaxSVIDTTL) of its end, so that leaves are never
// cut short by their intermediate's end; Load does the same check once.
// Under an operator's root, a generation cannot outlive the root: when the
// root itself is about to expire, Run logs that it must be replaced.
//
// # Issuing and verifying
//
// SignCSR accepts ECDSA P-256 and P-384, RSA of 2048 to 8192 bits and
// Ed25519 keys and refuses anything else, any malformed request and any
// request whose signature does not verify with ErrBadCSR, which transports
// answer with 400. Leaves are valid from a minute before issue (for clock
// skew) for the requested lifetime, Config.SVIDTTL by default, at most
// Config.MaxSVIDTTL, and never beyond their intermediate. NewSVID also
// makes the key, for holders that cannot (Envoy over SDS).
//
// Verify checks a presented chain with go-spiffe's x509svid.Verify against
// the bundle at the CA's clock. ServerTLSConfig builds a listener's
// tls.Config on top of it: it asks for a client certificate without
// requiring one, since app tokens remain a valid credential; a certificate
// that is given must verify, or the handshake fails, so that a bad
// certificate is never mistaken for no certificate. The listener's own
// certificate comes from GetCertificate, which renews it at half its
// lifetime and after a rotation. PeerID reads the verified SPIFFE ID of a
// connection, for the HTTP and gRPC adapters.
//
// # Concurrency
//
// Signing, verifying and Bundle take no lock: the generations are an
// immutable snapshot behind an atomic pointer, replaced wholesale by Load,
// Reload, Rotate and Run's renewals, which serialise among themselves on a
// mutex. A retired root whose trust runs out between two reloads is left
// out of the bundle from that moment all the same: the snapshot knows when
// that happens, and the bundle is rebuilt for calls after it.
package authca
