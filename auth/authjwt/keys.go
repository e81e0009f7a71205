package authjwt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// Key is one signing key.
type Key struct {
	// ID is the key's kid: the RFC 7638 JWK thumbprint of its public key
	// (see NewKey). Keys whose ID does not match their public key are refused
	// when loaded.
	ID      string
	Private *ecdsa.PrivateKey
	// CreatedAt orders keys: the newest unretired key is the active signer.
	CreatedAt time.Time
	// RetiredAt is when a newer key took over signing; nil for a key that
	// still signs. A retired key keeps verifying for Config.RetiredKeyGrace.
	RetiredAt *time.Time
}

// KeyStore persists signing keys for every node of the gateway. It is
// implemented over Postgres elsewhere; authjwttest has an in-memory one and a
// conformance suite. Its methods may be called concurrently.
type KeyStore interface {
	// SigningKeys returns every stored key, retired or not, in any order.
	// The slice and the keys in it belong to the caller.
	SigningKeys(ctx context.Context) ([]Key, error)
	// AddSigningKey stores k and, in the same transaction, retires every
	// older unretired key (setting its RetiredAt to the store's now).
	AddSigningKey(ctx context.Context, k Key) error
}

// NewKey generates a P-256 signing key created at createdAt, with its
// thumbprint as ID. createdAt is kept to the microsecond, the precision of a
// Postgres timestamptz, so that the key reads back from a store unchanged.
func NewKey(createdAt time.Time) (Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("generating signing key: %w", err)
	}
	kid, err := thumbprint(&priv.PublicKey)
	if err != nil {
		return Key{}, err
	}
	return Key{ID: kid, Private: priv, CreatedAt: createdAt.UTC().Truncate(time.Microsecond)}, nil
}

// MarshalPrivateKey encodes a P-256 signing key for storage as PKCS #8 DER.
func MarshalPrivateKey(k *ecdsa.PrivateKey) ([]byte, error) {
	if k == nil || k.Curve != elliptic.P256() {
		return nil, errors.New("marshaling signing key: not an ECDSA P-256 key")
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("marshaling signing key: %w", err)
	}
	return der, nil
}

// ParsePrivateKey decodes a signing key stored by MarshalPrivateKey. It
// refuses anything but an ECDSA P-256 key.
func ParsePrivateKey(der []byte) (*ecdsa.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parsing signing key: %w", err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("parsing signing key: %T is not an ECDSA P-256 key", k)
	}
	return ec, nil
}

// coordinates returns the base64url (unpadded) x and y of a P-256 public key,
// as a JWK spells them: each 32 bytes, big-endian, zero-padded.
func coordinates(pub *ecdsa.PublicKey) (x, y string, err error) {
	if pub == nil || pub.Curve != elliptic.P256() {
		return "", "", errors.New("not an ECDSA P-256 public key")
	}
	point, err := pub.Bytes() // 0x04 || X || Y
	if err != nil {
		return "", "", fmt.Errorf("encoding public key: %w", err)
	}
	if len(point) != 65 || point[0] != 4 {
		return "", "", errors.New("encoding public key: unexpected point encoding")
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(point[1:33]), enc.EncodeToString(point[33:]), nil
}

// thumbprint is the RFC 7638 JWK thumbprint of pub: SHA-256 over the JSON of
// the key's required members in lexicographic order without whitespace,
// base64url-encoded without padding.
func thumbprint(pub *ecdsa.PublicKey) (string, error) {
	x, y, err := coordinates(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// jwk is the JSON object of pub in a JWKS. x and y are base64url, so they
// need no JSON escaping; kid is a thumbprint, likewise.
func jwk(kid, x, y string) []byte {
	return []byte(`{"kty":"EC","crv":"P-256","x":"` + x + `","y":"` + y +
		`","kid":"` + kid + `","alg":"ES256","use":"sig"}`)
}
