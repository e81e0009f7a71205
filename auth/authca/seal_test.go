package authca_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/auth/authca/authcatest"
)

// TestKeyEncryptedAtRest looks at what the store holds: the intermediate's
// key in no plaintext form, sealed for its own generation only.
func TestKeyEncryptedAtRest(t *testing.T) {
	store := authcatest.NewMemStore()
	master := bytes.Repeat([]byte{0x5a}, 40)
	ca := newCA(t, store, nil, authca.Config{MasterKey: bytes.Clone(master)})
	if _, err := ca.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	key, ok := authca.ActiveSigner(ca).(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("signer is a %T", authca.ActiveSigner(ca))
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	scalar, err := key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	gens, err := store.CAGenerations(t.Context())
	if err != nil || len(gens) != 2 {
		t.Fatalf("%d generations, %v", len(gens), err)
	}
	active := gens[1]
	if active.RetiredAt != nil {
		active = gens[0]
	}
	for _, g := range gens {
		for _, field := range [][]byte{g.Root, g.Intermediate, g.IntermediateKey, []byte(g.MasterKeyID)} {
			for _, secret := range [][]byte{pkcs8, sec1, scalar, master} {
				if bytes.Contains(field, secret) {
					t.Fatalf("generation %s stores key material in the clear", g.ID)
				}
			}
		}
		if _, err := x509.ParsePKCS8PrivateKey(g.IntermediateKey); err == nil {
			t.Fatalf("generation %s stores a parseable private key", g.ID)
		}
	}

	// The key opens for its own generation, and only for it: a sealed key
	// copied into another row is caught.
	if der, err := authca.OpenSealed(ca, active.ID, active.MasterKeyID, active.IntermediateKey); err != nil || !bytes.Equal(der, pkcs8) {
		t.Fatalf("the active generation's key does not open to the signer: %v", err)
	}
	moved := active
	moved.ID = gens[0].ID
	if moved.ID == active.ID {
		moved.ID = gens[1].ID
	}
	_, err = authca.OpenSealed(ca, moved.ID, moved.MasterKeyID, moved.IntermediateKey)
	if err == nil || errors.Is(err, authca.ErrWrongMasterKey) || !strings.Contains(err.Error(), "another generation") {
		t.Fatalf("opening a key under another generation's id = %v", err)
	}

	// With another master key, even when the stored key id is lost, the
	// error says the master key is wrong.
	other := newCA(t, nil, nil, authca.Config{MasterKey: bytes.Repeat([]byte{0xa5}, 32)})
	for _, keyID := range []string{active.MasterKeyID, ""} {
		if _, err := authca.OpenSealed(other, active.ID, keyID, active.IntermediateKey); !errors.Is(err, authca.ErrWrongMasterKey) {
			t.Fatalf("opening with another master key (stored key id %q) = %v, want ErrWrongMasterKey", keyID, err)
		}
	}
	// A tampered ciphertext does not open.
	tampered := bytes.Clone(active.IntermediateKey)
	tampered[len(tampered)-1] ^= 1
	if _, err := authca.OpenSealed(ca, active.ID, active.MasterKeyID, tampered); err == nil {
		t.Fatal("a tampered key opened")
	}
}

func TestMasterKeyDerivation(t *testing.T) {
	a := bytes.Repeat([]byte{1}, 64)
	b := bytes.Clone(a)
	b[63] = 2
	caA := newCA(t, nil, nil, authca.Config{MasterKey: a})
	caB := newCA(t, nil, nil, authca.Config{MasterKey: b})
	if authca.MasterKeyID(caA) == authca.MasterKeyID(caB) {
		t.Fatal("master keys that differ in their last byte have the same key id")
	}
	// The same master key gives the same key id on every node.
	if again := newCA(t, nil, nil, authca.Config{MasterKey: bytes.Clone(a)}); authca.MasterKeyID(again) != authca.MasterKeyID(caA) {
		t.Fatal("one master key, two key ids")
	}
}
