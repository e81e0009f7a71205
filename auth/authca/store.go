package authca

import (
	"context"
	"time"
)

// Generation is one CA generation as a Store keeps it: a root certificate,
// the issuing intermediate it signed, and the intermediate's private key
// encrypted with a key derived from the master key. The root's private key
// is not part of it (see the package documentation).
type Generation struct {
	// ID names the generation: its creation time and random bytes,
	// "20260102T150405Z-1a2b3c4d5e6f7a8b". It is the additional data of the
	// key's encryption, so a sealed key copied to another generation does
	// not open.
	ID string
	// Root is the root certificate, DER: self-signed by the gateway, or the
	// operator's (Config.Root).
	Root []byte
	// Intermediate is the issuing certificate, DER, signed by Root.
	Intermediate []byte
	// IntermediateKey is the intermediate's PKCS #8 private key sealed with
	// AES-256-GCM: a version byte, the 12-byte nonce, then the ciphertext
	// and tag. It never holds plaintext key material.
	IntermediateKey []byte
	// MasterKeyID is the fingerprint of the master key that sealed
	// IntermediateKey (HKDF output, not the key), so that a wrong master
	// key is reported as such rather than as corrupt data.
	MasterKeyID string
	// CreatedAt orders generations. Kept to the microsecond, the precision
	// of a Postgres timestamptz.
	CreatedAt time.Time
	// RetiredAt is when a newer generation replaced this one; nil for the
	// active generation. A retired generation signs nothing, but its root
	// stays trusted until every certificate it can have signed has expired.
	RetiredAt *time.Time
}

// Store persists CA generations for every node of the gateway. It is
// implemented over Postgres in tenants/tenantspg; authcatest has an
// in-memory one and the conformance suite. Its methods may be called
// concurrently, by any number of nodes.
type Store interface {
	// CAGenerations returns every stored generation, retired or not, in any
	// order. The slice and everything in it belong to the caller.
	CAGenerations(ctx context.Context) ([]Generation, error)
	// AddCAGeneration stores g as the active generation, provided that the
	// active generation is the one named replaces ("" for none), and in the
	// same transaction retires that one at g.CreatedAt. Otherwise it stores
	// nothing and returns an error matching ErrConflict. So at most one
	// generation is ever active, and of several nodes that race to add one
	// in the place of the same predecessor, exactly one succeeds.
	AddCAGeneration(ctx context.Context, g Generation, replaces string) error
}
