package state

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Queryable reports whether the query API looks into value v: v is JSON that
// Postgres' jsonb also accepts (valid UTF-8, no \u0000, no lone surrogates,
// bounded nesting and number size). Every store uses it, so that they agree
// on which values a query can match; statepg's FuzzIsJSON holds it to what
// convert_from(value, 'UTF8')::jsonb parses, since one value Postgres
// rejects would make every query of its component fail.
//
// Limits of what isJSON accepts, chosen well inside what Postgres' jsonb
// input can parse.
const (
	maxJSONDepth     = 1000
	maxNumberLen     = 1000
	maxExponentDigit = 4 // exponents up to ±9999
)

func Queryable(v []byte) bool {
	if !utf8.Valid(v) || !json.Valid(v) {
		return false
	}
	depth := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"':
			for i++; v[i] != '"'; i++ {
				if v[i] != '\\' {
					continue
				}
				i++
				if v[i] != 'u' {
					continue
				}
				r := hex4(v[i+1 : i+5])
				i += 4
				switch {
				case r == 0:
					return false
				case r >= 0xDC00 && r <= 0xDFFF:
					return false // low surrogate without a high one
				case utf16.IsSurrogate(rune(r)):
					if i+6 >= len(v) || v[i+1] != '\\' || v[i+2] != 'u' {
						return false
					}
					if lo := hex4(v[i+3 : i+7]); lo < 0xDC00 || lo > 0xDFFF {
						return false
					}
					i += 6
				}
			}
		case c == '[' || c == '{':
			if depth++; depth > maxJSONDepth {
				return false
			}
		case c == ']' || c == '}':
			depth--
		case c == '-' || (c >= '0' && c <= '9'):
			j := i
			for j < len(v) && bytes.IndexByte([]byte("+-0123456789.eE"), v[j]) >= 0 {
				j++
			}
			num := v[i:j]
			if len(num) > maxNumberLen {
				return false
			}
			if e := bytes.IndexAny(num, "eE"); e >= 0 {
				exp := bytes.TrimLeft(num[e+1:], "+-")
				if len(bytes.TrimLeft(exp, "0")) > maxExponentDigit {
					return false
				}
			}
			i = j - 1
		}
	}
	return true
}

func hex4(b []byte) uint16 {
	n, _ := strconv.ParseUint(string(b), 16, 16) // json.Valid checked the digits
	return uint16(n)
}
