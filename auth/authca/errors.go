package authca

import (
	"errors"
	"fmt"
)

var (
	// ErrBadCSR is a certificate signing request that SignCSR refused:
	// not DER, not a CSR, a signature that does not verify, or a key type
	// or size it does not accept. Transports answer it with 400 Bad
	// Request (InvalidArgument); the wrapped detail says what was wrong.
	ErrBadCSR = errors.New("bad certificate signing request")
	// ErrBadTTL is a requested certificate lifetime above
	// Config.MaxSVIDTTL or below a minute. Transports answer it with 400
	// Bad Request.
	ErrBadTTL = errors.New("requested certificate lifetime is out of range")
	// ErrNoAuthority is returned by the signing methods before a
	// successful Load, and when the active generation has expired.
	ErrNoAuthority = errors.New("certificate authority has no usable signing key")
	// ErrWrongMasterKey is returned by Load and Reload when the active
	// generation's key was encrypted with another master key than the one
	// configured. The message names both key ids (fingerprints, never key
	// material) and says what to do.
	ErrWrongMasterKey = errors.New("wrong CA master key")
	// ErrUntrusted is a certificate chain that Verify refused: not an
	// X.509-SVID, not signed by a generation the CA trusts, for another
	// trust domain, or outside its validity period.
	ErrUntrusted = errors.New("certificate not trusted")
)

// ErrConflict is returned (wrapped) by Store.AddCAGeneration when the
// generation it was told to replace is no longer the active one: another
// node added a generation first.
var ErrConflict = errors.New("another CA generation became active first")

func badCSR(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadCSR, fmt.Sprintf(format, args...))
}
