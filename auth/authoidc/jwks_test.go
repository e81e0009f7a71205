package authoidc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
)

func TestParseJWKS(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	point, _ := ec.PublicKey.Bytes()
	x, y := enc(point[1:33]), enc(point[33:])
	rsaJWK := func(k *rsa.PublicKey, extra string) string {
		return `{"kty":"RSA","kid":"r","n":"` + enc(k.N.Bytes()) + `","e":"` + enc(big.NewInt(int64(k.E)).Bytes()) + `"` + extra + `}`
	}
	ecJWK := func(x, y, extra string) string {
		return `{"kty":"EC","kid":"e","crv":"P-256","x":"` + x + `","y":"` + y + `"` + extra + `}`
	}
	// y+1 is not on the curve with x.
	yPlus := new(big.Int).Add(new(big.Int).SetBytes(point[33:]), big.NewInt(1)).FillBytes(make([]byte, 32))

	tests := []struct {
		name     string
		key      string
		wantSkip string // "" means the key is kept
	}{
		{"RSA", rsaJWK(&rsaKey.PublicKey, ""), ""},
		{"RSA with alg and use", rsaJWK(&rsaKey.PublicKey, `,"alg":"RS256","use":"sig","key_ops":["verify"]`), ""},
		{"EC", ecJWK(x, y, ""), ""},
		{"Ed25519", `{"kty":"OKP","crv":"Ed25519","kid":"d","x":"` + enc(make([]byte, 32)) + `"}`, ""},
		{"weak RSA", rsaJWK(&weak.PublicKey, ""), "1024 bits"},
		{"even exponent", `{"kty":"RSA","n":"` + enc(rsaKey.N.Bytes()) + `","e":"AAAE"}`, "odd"},
		{"private material", rsaJWK(&rsaKey.PublicKey, `,"d":"AQAB"`), "private"},
		{"encryption key", rsaJWK(&rsaKey.PublicKey, `,"use":"enc"`), "use"},
		{"key_ops without verify", rsaJWK(&rsaKey.PublicKey, `,"key_ops":["encrypt"]`), "key_ops"},
		{"alg of another key type", rsaJWK(&rsaKey.PublicKey, `,"alg":"ES256"`), "does not fit"},
		{"symmetric alg", rsaJWK(&rsaKey.PublicKey, `,"alg":"HS256"`), "not supported"},
		{"symmetric key", `{"kty":"oct","k":"c2VjcmV0"}`, "kty"},
		{"point off the curve", ecJWK(x, enc(yPlus), ""), "point"},
		{"short coordinate", ecJWK(x[:8], y, ""), "bytes"},
		{"unknown curve", `{"kty":"EC","crv":"secp256k1","x":"` + x + `","y":"` + y + `"}`, "crv"},
		{"bad base64", `{"kty":"RSA","n":"!!","e":"AQAB"}`, "base64url"},
		{"Ed448", `{"kty":"OKP","crv":"Ed448","x":"AA"}`, "crv"},
		{"not an object", `[]`, "not a JWK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Beside a good key, which must survive whatever its neighbour is.
			doc := `{"keys":[` + tt.key + `,` + ecJWK(x, y, `,"kid":"good"`) + `]}`
			ks, skipped, err := parseJWKS([]byte(doc), nil)
			if err != nil {
				t.Fatalf("parseJWKS: %v", err)
			}
			if ks.byKID["good"] == nil {
				t.Fatalf("the good key was lost")
			}
			if tt.wantSkip == "" {
				if len(skipped) != 0 || len(ks.all) != 2 {
					t.Fatalf("skipped %v", skipped)
				}
				return
			}
			if len(skipped) != 1 || !strings.Contains(skipped[0], tt.wantSkip) || len(ks.all) != 1 {
				t.Fatalf("skipped %v, want one mentioning %q", skipped, tt.wantSkip)
			}
		})
	}

	for _, doc := range []string{`{}`, `{"keys":{}}`, `null`, `{"keys":[` + strings.Repeat(`{},`, maxKeys) + `{}]}`} {
		if _, _, err := parseJWKS([]byte(doc), nil); err == nil {
			t.Errorf("parseJWKS(%.40s) accepted it", doc)
		}
	}

	// A key that did not change keeps its pointer across fetches.
	doc := []byte(`{"keys":[` + ecJWK(x, y, "") + `]}`)
	first, _, _ := parseJWKS(doc, nil)
	second, _, _ := parseJWKS(doc, first)
	if first.all[0] != second.all[0] {
		t.Error("an unchanged key got a new identity")
	}
}

func TestFind(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	k := &publicKey{kid: "a", key: &ec.PublicKey}
	ks := &keySet{byKID: map[string][]*publicKey{"a": {k}}, all: []*publicKey{k}}
	tests := []struct {
		kid, alg string
		want     bool
	}{
		{"a", "ES384", true},
		{"", "ES384", true},
		{"a", "ES256", false}, // curve does not fit
		{"a", "RS256", false},
		{"b", "ES384", false},
	}
	for _, tt := range tests {
		got, err := ks.find(tt.kid, tt.alg)
		if (got != nil) != tt.want || (err == nil) != tt.want {
			t.Errorf("find(%q, %s) = %v, %v", tt.kid, tt.alg, got, err)
		}
	}
}

func TestLookupClaim(t *testing.T) {
	var claims map[string]any
	err := json.Unmarshal([]byte(`{
		"sub": "s",
		"kubernetes.io": {"serviceaccount": {"name": "orders-sa"}, "namespace": "shop"},
		"a": {"b": {"c": "from a/b/c"}},
		"a.b": {"x": "from a.b/x"},
		"x.y": "flat",
		"x": {"y": "nested"},
		"n": 5
	}`), &claims)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want any
	}{
		{"sub", "s"},
		{"kubernetes.io.serviceaccount.name", "orders-sa"},
		{"kubernetes.io.namespace", "shop"},
		{"a.b.c", "from a/b/c"}, // "a.b" has no c: falls back to a → b → c
		{"a.b.x", "from a.b/x"},
		{"x.y", "flat"}, // a name equal to the whole path wins
		{"n", 5.0},
		{"kubernetes.io.serviceaccount", map[string]any{"name": "orders-sa"}},
		{"missing", nil},
		{"kubernetes.io.serviceaccount.name.more", nil},
		{"sub.x", nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, ok := lookupClaim(claims, tt.path)
			if ok != (tt.want != nil) {
				t.Fatalf("lookupClaim found=%v, want %v", ok, tt.want != nil)
			}
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(tt.want)
			if ok && string(gotJSON) != string(wantJSON) {
				t.Fatalf("lookupClaim = %s, want %s", gotJSON, wantJSON)
			}
		})
	}
}
