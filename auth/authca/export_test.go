package authca

import "crypto"

// ActiveSigner is the active generation's private key, for tests that check
// it is not stored in the clear.
func ActiveSigner(c *CA) crypto.Signer { return c.snap.Load().signer }

// OpenSealed decrypts a sealed key with c's master key as Load would.
func OpenSealed(c *CA, genID, keyID string, sealed []byte) ([]byte, error) {
	return c.sealer.open(genID, keyID, sealed)
}

// MasterKeyID is the fingerprint of c's master key.
func MasterKeyID(c *CA) string { return c.sealer.keyID }
