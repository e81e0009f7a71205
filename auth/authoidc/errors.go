package authoidc

import "errors"

// Every error Verify returns for a token it refuses matches ErrInvalid with
// errors.Is; the ones below refine it. Callers answer all of them with 401
// Unauthenticated. Their messages are safe to show the client: they name
// what was wrong with the token, never a key, a fetched document or why a
// fetch failed (that detail is logged, and reachable with errors.Is/As).
var (
	// ErrInvalid is any refused federated token: malformed, badly signed,
	// an algorithm the federation does not allow, missing claims.
	ErrInvalid = errors.New("invalid federated token")
	// ErrUnknownIssuer is a token whose iss no federation trusts.
	ErrUnknownIssuer = errors.New("federated token from an untrusted issuer")
	// ErrAudience is a token from a trusted issuer whose aud names no
	// federation's audience, or the audiences of several.
	ErrAudience = errors.New("federated token for an unknown audience")
	// ErrExpired is a genuine token past its exp.
	ErrExpired = errors.New("federated token expired")
	// ErrNotYetValid is a genuine token whose nbf or iat is in the future
	// beyond the leeway.
	ErrNotYetValid = errors.New("federated token not yet valid")
	// ErrUnknownKey is a token whose kid names no key the issuer publishes,
	// even after fetching its keys again (as often as the rate limit
	// allows).
	ErrUnknownKey = errors.New("federated token signed by an unknown key")
	// ErrKeysUnavailable is a token from an issuer whose keys could not be
	// fetched and none are cached.
	ErrKeysUnavailable = errors.New("federated issuer's keys are unavailable")
	// ErrMissingClaim is a token without the federation's app id claim, or
	// with a value that is not a string.
	ErrMissingClaim = errors.New("federated token lacks the app id claim")
	// ErrUnmapped is a token whose app id claim the federation's mapping
	// does not list.
	ErrUnmapped = errors.New("federated identity is not mapped to an app")
	// ErrInvalidAppID is a token whose app id claim, taken as it is, is not
	// a valid app id.
	ErrInvalidAppID = errors.New("federated token names an invalid app id")
)

// rejection is the error Verify returns: a family (one of the sentinels
// above), the detail of what was wrong, safe for the client, and what only
// the log should see: the federation the token matched and the cause behind
// the refusal (a failed fetch).
type rejection struct {
	kind       error
	detail     error
	cause      error  // nil when there is none
	federation string // "" before a federation matched
}

func reject(kind, detail error) error { return &rejection{kind: kind, detail: detail} }

func rejectCause(kind, detail, cause error) error {
	return &rejection{kind: kind, detail: detail, cause: cause}
}

// Error leaves the cause out, as tailscale's vizerror keeps internal detail
// from the client.
func (r *rejection) Error() string { return r.kind.Error() + ": " + r.detail.Error() }

// Is makes every rejection match ErrInvalid as well as its own family.
func (r *rejection) Is(target error) bool { return target == ErrInvalid || target == r.kind }

// Unwrap exposes the detail and the cause, so errors.Is also finds, say,
// context.DeadlineExceeded behind a fetch that timed out.
func (r *rejection) Unwrap() []error {
	if r.cause == nil {
		return []error{r.detail}
	}
	return []error{r.detail, r.cause}
}

// LogDetail returns what a rejection keeps out of its message, for the
// log: the federation whose issuer and audience the token named ("" if
// none matched) and the internal cause of the refusal (why fetching the
// issuer's keys failed, say; nil when the message says everything).
func LogDetail(err error) (federation string, cause error) {
	var r *rejection
	if errors.As(err, &r) {
		return r.federation, r.cause
	}
	return "", nil
}

// short bounds an attacker-chosen string (a kid, a claim value) before it
// goes, quoted with %q, into an error message or a log line.
func short(s string) string {
	const maxLen = 64
	if len(s) > maxLen {
		return s[:maxLen] + "..."
	}
	return s
}
