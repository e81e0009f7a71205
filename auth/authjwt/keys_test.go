package authjwt_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"testing"
	"time"

	"github.com/blockgate/blockgate/auth/authjwt"
)

func TestMarshalParsePrivateKey(t *testing.T) {
	k, err := authjwt.NewKey(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	der, err := authjwt.MarshalPrivateKey(k.Private)
	if err != nil {
		t.Fatalf("MarshalPrivateKey: %v", err)
	}
	// It is plain PKCS #8, readable by anyone.
	if std, err := x509.ParsePKCS8PrivateKey(der); err != nil || !k.Private.Equal(std) {
		t.Fatalf("x509.ParsePKCS8PrivateKey = %v, %v", std, err)
	}
	got, err := authjwt.ParsePrivateKey(der)
	if err != nil {
		t.Fatalf("ParsePrivateKey: %v", err)
	}
	if !got.Equal(k.Private) {
		t.Fatal("key did not round-trip")
	}
}

func TestMarshalPrivateKeyRefuses(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]*ecdsa.PrivateKey{"nil": nil, "P-384": p384} {
		t.Run(name, func(t *testing.T) {
			if _, err := authjwt.MarshalPrivateKey(k); err == nil {
				t.Fatal("MarshalPrivateKey succeeded")
			}
		})
	}
}

func TestParsePrivateKeyRefuses(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p256, err := authjwt.NewKey(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(p256.Private)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := func(k any) []byte {
		t.Helper()
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	tests := []struct {
		name string
		der  []byte
	}{
		{"empty", nil},
		{"garbage", []byte("not a key")},
		{"P-384", pkcs8(p384)},
		{"Ed25519", pkcs8(edKey)},
		{"SEC 1 instead of PKCS #8", sec1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if k, err := authjwt.ParsePrivateKey(tt.der); err == nil {
				t.Fatalf("ParsePrivateKey = %v, want an error", k)
			}
		})
	}
}

func TestNewKey(t *testing.T) {
	created := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	a, err := authjwt.NewKey(created)
	if err != nil {
		t.Fatal(err)
	}
	b, err := authjwt.NewKey(created)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == b.ID || len(a.ID) != 43 {
		t.Errorf("kids %q, %q: want distinct 43-character thumbprints", a.ID, b.ID)
	}
	if want := created.UTC().Truncate(time.Microsecond); !a.CreatedAt.Equal(want) || a.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want %v", a.CreatedAt, want)
	}
	if a.RetiredAt != nil || a.Private.Curve != elliptic.P256() {
		t.Errorf("NewKey = %+v", a)
	}
}
