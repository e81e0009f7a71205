package authjwt_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/blockgate/blockgate/auth/authjwt"
)

// FuzzVerify feeds arbitrary strings to Verify: it must never panic, and it
// must refuse everything but the one genuine token the test issued, with an
// error that matches ErrInvalid. The seeds are near misses of that token.
func FuzzVerify(f *testing.F) {
	e := newEnv(f, authjwt.Config{})
	genuine := e.issue(f)
	active := e.activeKey(f)
	parts := strings.Split(genuine, ".")
	enc := base64.RawURLEncoding.EncodeToString

	for _, s := range []string{
		"",
		".",
		"..",
		"a.b.c",
		parts[0] + "." + parts[1] + ".",
		parts[0] + "." + parts[1] + "." + flip(parts[2]),
		parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1],
		parts[0] + "." + parts[1],
		genuine + ".",
		genuine + "=",
		enc([]byte(`{"alg":"none","kid":"`+active.ID+`"}`)) + "." + parts[1] + ".",
		enc([]byte(`{"alg":"HS256","kid":"`+active.ID+`"}`)) + "." + parts[1] + "." + parts[2],
		enc([]byte(`{"alg":"ES256"}`)) + "." + parts[1] + "." + parts[2],
		enc([]byte(`{"alg":"ES256","kid":"x"}`)) + "." + parts[1] + "." + parts[2],
		enc([]byte(`{"alg":"ES256","kid":"`+active.ID+`","crit":["b64"]}`)) + "." + parts[1] + "." + parts[2],
		parts[0] + "." + enc([]byte(`{"tenant":"acme","app_id":"orders","exp":1e300}`)) + "." + parts[2],
		parts[0] + "." + enc([]byte(`[]`)) + "." + parts[2],
		parts[0] + "." + enc([]byte(`{"aud":{"a":1},"exp":"x","iat":null}`)) + "." + parts[2],
		sign(f, jwt.SigningMethodHS256, []byte("secret"), active.ID, e.mapClaims(), nil),
	} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, s string) {
		c, err := e.a.Verify(t.Context(), s)
		if err == nil {
			if s != genuine {
				t.Fatalf("Verify accepted %q: %+v", s, c)
			}
			return
		}
		if !errors.Is(err, authjwt.ErrInvalid) {
			t.Fatalf("Verify(%q) error %v does not match ErrInvalid", s, err)
		}
		if c != (authjwt.Claims{}) {
			t.Fatalf("Verify(%q) returned claims %+v with an error", s, c)
		}
	})
}
