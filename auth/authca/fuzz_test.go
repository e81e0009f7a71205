package authca_test

import (
	"crypto"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/blockgate/blockgate/auth/authca"
)

// FuzzSignCSR feeds arbitrary bytes to SignCSR as a request: it must never
// panic, every refusal must match ErrBadCSR, and it must sign only requests
// that parse and whose signature verifies, for the request's own key, with
// the caller's SPIFFE ID as the only name. The seeds are good requests of
// every accepted key type, near misses of them, and junk.
func FuzzSignCSR(f *testing.F) {
	ca := newCA(f, nil, nil, authca.Config{})
	id := appID(f, "acme", "orders")
	for _, key := range []crypto.Signer{ecKey(f, elliptic.P256()), ecKey(f, elliptic.P384()), rsaKey(f, 2048), edKey(f), ecKey(f, elliptic.P521())} {
		der := csr(f, key)
		f.Add(der)
		f.Add(der[:len(der)/2])
		flipped := append([]byte(nil), der...)
		flipped[len(flipped)-1] ^= 0x80
		f.Add(flipped)
	}
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x80, 0x00, 0x00})
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})

	f.Fuzz(func(t *testing.T, der []byte) {
		chain, err := ca.SignCSR(t.Context(), der, id, 0)
		if err != nil {
			if !errors.Is(err, authca.ErrBadCSR) {
				t.Fatalf("SignCSR refused with %v, which does not match ErrBadCSR", err)
			}
			if chain != nil {
				t.Fatal("SignCSR returned certificates with an error")
			}
			return
		}
		req, perr := x509.ParseCertificateRequest(der)
		if perr != nil {
			t.Fatalf("SignCSR signed bytes that do not parse as a CSR: %v", perr)
		}
		if err := req.CheckSignature(); err != nil {
			t.Fatalf("SignCSR signed a CSR whose signature does not verify: %v", err)
		}
		leaf := chain[0]
		pub, ok := req.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !pub.Equal(leaf.PublicKey) {
			t.Fatal("the certificate is not for the request's key")
		}
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id.String() || len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
			t.Fatalf("the certificate names %v %v %v %v, want only %s", leaf.URIs, leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses, id)
		}
		if got, err := ca.Verify(chain); err != nil || got != id {
			t.Fatalf("the signed chain does not verify: %v, %v", got, err)
		}
	})
}
