package authjwt

import "errors"

// Every error Verify returns for a token it refuses matches ErrInvalid with
// errors.Is; the ones below refine it. Callers answer all of them with 401
// Unauthenticated and keep the detail for the log.
var (
	// ErrInvalid is any refused token: malformed, badly signed, wrong
	// algorithm, wrong issuer or audience, missing or inconsistent claims.
	ErrInvalid = errors.New("invalid app token")
	// ErrExpired is a genuine token past its exp.
	ErrExpired = errors.New("app token expired")
	// ErrNotYetValid is a genuine token whose nbf or iat is in the future
	// beyond the leeway.
	ErrNotYetValid = errors.New("app token not yet valid")
	// ErrUnknownKey is a token whose kid names no key that still verifies,
	// even after reloading the key store.
	ErrUnknownKey = errors.New("app token signed by an unknown key")
)

// ErrNoSigningKey is returned by Issue before a successful Load, or when the
// store holds no unretired key.
var ErrNoSigningKey = errors.New("no active signing key")

// rejection is the error Verify returns: a family (one of the sentinels
// above) and the detail of what was wrong.
type rejection struct {
	kind   error
	detail error
}

func reject(kind, detail error) error { return &rejection{kind: kind, detail: detail} }

func (r *rejection) Error() string { return r.kind.Error() + ": " + r.detail.Error() }

// Is makes every rejection match ErrInvalid as well as its own family.
func (r *rejection) Is(target error) bool { return target == ErrInvalid || target == r.kind }

// Unwrap exposes the detail, so errors.Is also finds, say, a store error that
// made a reload fail.
func (r *rejection) Unwrap() error { return r.detail }

// shortKID bounds an attacker-chosen kid before it goes, quoted with %q, into
// an error message or a log line.
func shortKID(kid string) string {
	const maxLen = 64
	if len(kid) > maxLen {
		return kid[:maxLen] + "..."
	}
	return kid
}
