package authca

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// MinMasterKeyLen is the shortest master key accepted, in bytes.
const MinMasterKeyLen = 32

// The HKDF info strings. Changing either makes every stored key unreadable,
// so a new scheme gets a new sealVersion and new strings beside these.
const (
	sealInfo  = "blockgate authca v1: CA private key encryption"
	keyIDInfo = "blockgate authca v1: master key id"
)

// sealVersion is the first byte of a sealed key.
const sealVersion byte = 1

// sealer encrypts the CA's private keys at rest. It keeps only keys derived
// from the master key, never the master key itself. It is safe for
// concurrent use (cipher.AEAD from crypto/aes is).
type sealer struct {
	aead  cipher.AEAD
	keyID string
}

// newSealer derives the key-encryption key (HKDF-SHA256 with a fixed info
// string, no salt: the master key is already uniformly random or a long
// secret, and the derived key must be the same on every node) and a short
// fingerprint that identifies the master key in stored rows and errors.
func newSealer(master []byte) (*sealer, error) {
	if len(master) < MinMasterKeyLen {
		return nil, fmt.Errorf("CA master key is %d bytes; it must be at least %d (for example, 32 random bytes: head -c 32 /dev/urandom > master.key)",
			len(master), MinMasterKeyLen)
	}
	kek, err := hkdf.Key(sha256.New, master, nil, sealInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("deriving CA key-encryption key: %w", err)
	}
	block, err := aes.NewCipher(kek)
	clear(kek)
	if err != nil {
		return nil, fmt.Errorf("deriving CA key-encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("deriving CA key-encryption key: %w", err)
	}
	id, err := hkdf.Key(sha256.New, master, nil, keyIDInfo, 8)
	if err != nil {
		return nil, fmt.Errorf("deriving CA master key id: %w", err)
	}
	return &sealer{aead: aead, keyID: hex.EncodeToString(id)}, nil
}

// seal encrypts plaintext for the generation genID, which is the AEAD's
// additional data.
func (s *sealer) seal(genID string, plaintext []byte) []byte {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	out[0] = sealVersion
	rand.Read(out[1:]) // never fails (crypto/rand)
	return s.aead.Seal(out, out[1:], plaintext, []byte(genID))
}

// open decrypts a key that seal encrypted for genID under the master key
// whose fingerprint is keyID.
func (s *sealer) open(genID, keyID string, sealed []byte) ([]byte, error) {
	if keyID != "" && keyID != s.keyID {
		return nil, wrongMasterKey(genID, keyID, s.keyID)
	}
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() {
		return nil, fmt.Errorf("CA generation %s: stored key is truncated (%d bytes)", genID, len(sealed))
	}
	if sealed[0] != sealVersion {
		return nil, fmt.Errorf("CA generation %s: stored key has unknown format version %d", genID, sealed[0])
	}
	plain, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(genID))
	if err != nil {
		if keyID == "" {
			return nil, wrongMasterKey(genID, "unknown", s.keyID)
		}
		// The master key is the right one, so the row itself is damaged,
		// or its key was copied from another generation.
		return nil, fmt.Errorf("CA generation %s: stored key fails authentication: it is corrupt or belongs to another generation", genID)
	}
	return plain, nil
}

func wrongMasterKey(genID, stored, configured string) error {
	return fmt.Errorf("%w: CA generation %s was encrypted with the master key whose id is %s, but the configured master key's id is %s; "+
		"start the gateway with the master key the CA was created with (the same file or environment variable on every node)",
		ErrWrongMasterKey, genID, stored, configured)
}
