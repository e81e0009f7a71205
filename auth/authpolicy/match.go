package authpolicy

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
)

// NormalizeOperation returns the canonical form of an invoked method, the
// one access control matches: percent-decoded (HTTP only: gRPC method names
// are not escaped), rooted, with empty, "." and ".." segments resolved as
// path.Clean does, so "a//b/../c" becomes "/a/c" and "../../admin" becomes
// "/admin". It refuses what daprd's NormalizeMethod refuses ('?', '#', NUL
// and other control characters, after decoding) and also a backslash, which
// some servers take for a slash.
//
// The result starts with '/' and is not escaped. A transport that carries
// the call on should send the app this form (escaped again), as daprd does,
// so that the app serves exactly the path that was authorized.
func NormalizeOperation(method string, grpc bool) (string, error) {
	m := method
	if !grpc {
		dec, err := url.PathUnescape(m)
		if err != nil {
			return "", fmt.Errorf("method %q has an invalid percent-escape", method)
		}
		m = dec
	}
	if err := checkPathChars(m); err != nil {
		return "", fmt.Errorf("method %q %w", method, err)
	}
	return path.Clean("/" + m), nil
}

// checkPathChars rejects the characters that must not reach matching.
func checkPathChars(s string) error {
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b < 0x20 || b == 0x7f:
			return errors.New("contains a control character")
		case b == '?' || b == '#':
			return fmt.Errorf("contains %q", b)
		case b == '\\':
			return errors.New(`contains a backslash`)
		}
	}
	return nil
}

// tail is what a pattern does after its last named segment.
type tail uint8

const (
	// tailCover: the pattern names a path and everything under it, as
	// daprd's matcher treats a name without a trailing wildcard.
	tailCover tail = iota
	// tailOne: a trailing "/*" matches zero or one more segment.
	tailOne
	// tailAny: a trailing "/**" matches any number of segments.
	tailAny
)

// pattern is a compiled operation name.
type pattern struct {
	segs []patSeg
	tail tail
}

type patSeg struct {
	text string
	glob bool // text holds '*' matching any run of characters
}

// Scores of what matched one path segment, compared position by position
// to find the most specific rule; higher is more specific.
const (
	scoreCovered byte = iota + 1 // under a name without a trailing wildcard
	scoreAny                     // by a trailing "/**"
	scoreOne                     // by a trailing "/*"
	scoreGlob                    // by a segment with '*' in it
	scoreLiteral                 // by the same text
)

// compileName parses an operation name: segments separated by '/', where
// a segment with '*' in it matches within one segment, and a last segment
// "*" or "**" matches one or any number of segments. fold lowers the case,
// for matching HTTP methods case-insensitively as daprd does.
func compileName(name string, fold bool) (pattern, string, error) {
	if name == "" {
		return pattern{}, "", errors.New("is empty")
	}
	if err := checkPathChars(name); err != nil {
		return pattern{}, "", err
	}
	if strings.Contains(name, "%") {
		return pattern{}, "", errors.New("contains '%': write the name unescaped, since methods are matched after percent-decoding")
	}
	for _, s := range strings.Split(name, "/") {
		if s == "." || s == ".." {
			return pattern{}, "", fmt.Errorf("has a %q segment", s)
		}
	}
	canon := path.Clean("/" + name)
	if fold {
		name = strings.ToLower(canon)
	} else {
		name = canon
	}
	var p pattern
	if name == "/" {
		return p, canon, nil
	}
	parts := strings.Split(name[1:], "/")
	for i, s := range parts {
		last := i == len(parts)-1
		if strings.Trim(s, "*") == "" {
			switch {
			case s == "*" && last:
				p.tail = tailOne
			case s == "**" && last:
				p.tail = tailAny
			case s == "*" || s == "**":
				return pattern{}, "", fmt.Errorf("has %q before its end: a whole-segment wildcard may only end a name, as in /orders/* or /orders/**; inside a name, put '*' within a segment, as in /v*/orders", s)
			default:
				return pattern{}, "", fmt.Errorf("has the segment %q: use * (one segment) or ** (any number)", s)
			}
			continue
		}
		p.segs = append(p.segs, patSeg{text: s, glob: strings.Contains(s, "*")})
	}
	return p, canon, nil
}

// match reports whether the pattern matches the path segments and, if so,
// appends one score per segment to score.
func (p pattern) match(segs []string, score []byte) ([]byte, bool) {
	if len(segs) < len(p.segs) {
		return score, false
	}
	for i, ps := range p.segs {
		switch {
		case !ps.glob && ps.text == segs[i]:
			score = append(score, scoreLiteral)
		case ps.glob && globMatch(ps.text, segs[i]):
			score = append(score, scoreGlob)
		default:
			return score, false
		}
	}
	rest := len(segs) - len(p.segs)
	var s byte
	switch p.tail {
	case tailCover:
		if len(p.segs) == 0 && rest > 0 {
			return score, false // "/" names the root only
		}
		s = scoreCovered
	case tailOne:
		if rest > 1 {
			return score, false
		}
		s = scoreOne
	case tailAny:
		s = scoreAny
	}
	for range rest {
		score = append(score, s)
	}
	return score, true
}

// globMatch reports whether s matches pattern, where '*' matches any run of
// characters (greedy with backtracking to the last star: linear for the
// usual patterns, never worse than len(pattern)*len(s)).
func globMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// splitPath splits a normalized path ("/a/b") into its segments; "/" has
// none.
func splitPath(p string) []string {
	if p == "/" || p == "" {
		return nil
	}
	return strings.Split(p[1:], "/")
}
