package authca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"time"
)

// backdate is how far before now a certificate's NotBefore is set, so that
// a peer whose clock is a little behind does not find it not yet valid.
const backdate = time.Minute

// Root is an operator-supplied root CA. When Config.Root is set, the
// gateway creates each generation's intermediate under it instead of
// making a self-signed root; its private key is used for that only and is
// never stored.
type Root struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// LoadRoot reads an operator's root certificate and private key from PEM
// files (see ParseRoot).
func LoadRoot(certFile, keyFile string) (*Root, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("reading CA root certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("reading CA root key: %w", err)
	}
	r, err := ParseRoot(certPEM, keyPEM)
	clear(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA root %s, %s: %w", certFile, keyFile, err)
	}
	return r, nil
}

// ParseRoot parses an operator's root: exactly one CERTIFICATE block, and
// its private key as PKCS #8 ("PRIVATE KEY"), SEC 1 ("EC PRIVATE KEY") or
// PKCS #1 ("RSA PRIVATE KEY"), unencrypted. The certificate must be a CA
// that may sign an intermediate (basic constraints CA, keyCertSign if key
// usage is present, a path length that allows one more CA), and the key
// must match it. Its validity is checked when a generation is made.
func ParseRoot(certPEM, keyPEM []byte) (*Root, error) {
	var certs []*x509.Certificate
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing root certificate: %w", err)
		}
		certs = append(certs, c)
	}
	switch {
	case len(certs) == 0:
		return nil, errors.New("no CERTIFICATE block in the root certificate PEM")
	case len(certs) > 1:
		return nil, fmt.Errorf("the root certificate PEM holds %d certificates; give only the one the gateway's intermediates are signed by", len(certs))
	}
	cert := certs[0]
	switch {
	case !cert.BasicConstraintsValid || !cert.IsCA:
		return nil, errors.New("the root certificate is not a CA certificate (basic constraints CA:TRUE is required)")
	case cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0:
		return nil, errors.New("the root certificate's key usage lacks keyCertSign")
	case cert.MaxPathLen == 0 && cert.MaxPathLenZero:
		return nil, errors.New("the root certificate has path length 0, so it cannot sign the gateway's intermediate")
	}

	key, err := parsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("the root private key does not match the root certificate")
	}
	return &Root{Cert: cert, Key: key}, nil
}

func parsePrivateKeyPEM(keyPEM []byte) (crypto.Signer, error) {
	for rest := keyPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no private key block in the root key PEM")
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the root key PEM is encrypted; give it unencrypted (protect the file instead)")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parsing root private key: %w", err)
		}
		switch k := k.(type) {
		case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
			return k.(crypto.Signer), nil
		default:
			return nil, fmt.Errorf("root private key of type %T is not supported", k)
		}
	}
}

// generation is a stored generation as the CA uses it.
type generation struct {
	id        string
	root      *x509.Certificate
	inter     *x509.Certificate
	createdAt time.Time
	// until is when the root stops being trusted: the retirement plus the
	// longest lifetime of a certificate it may have signed. Zero while the
	// generation is active.
	until time.Time
}

func (g *generation) trustedAt(now time.Time) bool {
	return g.until.IsZero() || now.Before(g.until)
}

// parseGeneration checks a stored generation's certificates. It does not
// open the key: only the active generation's is needed.
func parseGeneration(sg Generation) (*generation, error) {
	root, err := x509.ParseCertificate(sg.Root)
	if err != nil {
		return nil, fmt.Errorf("parsing root certificate: %w", err)
	}
	inter, err := x509.ParseCertificate(sg.Intermediate)
	if err != nil {
		return nil, fmt.Errorf("parsing intermediate certificate: %w", err)
	}
	if !inter.IsCA {
		return nil, errors.New("intermediate certificate is not a CA")
	}
	if err := inter.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("intermediate is not signed by the root: %w", err)
	}
	return &generation{id: sg.ID, root: root, inter: inter, createdAt: sg.CreatedAt}, nil
}

// openKey decrypts a stored generation's intermediate key and checks that
// it belongs to the intermediate.
func (s *sealer) openKey(sg Generation, inter *x509.Certificate) (crypto.Signer, error) {
	der, err := s.open(sg.ID, sg.MasterKeyID, sg.IntermediateKey)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("CA generation %s: parsing intermediate key: %w", sg.ID, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("CA generation %s: intermediate key of type %T cannot sign", sg.ID, k)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(inter.PublicKey) {
		return nil, fmt.Errorf("CA generation %s: intermediate key does not match the intermediate certificate", sg.ID)
	}
	return signer, nil
}

// newGenerationID is the creation time and 8 random bytes: unique, and
// sorted by age when listed.
func newGenerationID(now time.Time) string {
	var b [8]byte
	rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// serialNumber is a random positive 127-bit serial, as RFC 5280 wants
// serials unpredictable and at most 20 octets.
func serialNumber() *big.Int {
	var b [16]byte
	rand.Read(b[:])
	b[0] &= 0x7f
	n := new(big.Int).SetBytes(b[:])
	if n.Sign() == 0 {
		n.SetInt64(1)
	}
	return n
}

// newGeneration makes a generation as of now: a self-signed root (or
// c.cfg.Root) and an intermediate under it, with the intermediate's key
// sealed for storage. It returns the generation parsed, and the key.
func (c *CA) newGeneration(now time.Time) (Generation, *generation, crypto.Signer, error) {
	id := newGenerationID(now)
	td := c.cfg.TrustDomain.ID().URL()

	var root *x509.Certificate
	var rootKey crypto.Signer
	if r := c.cfg.Root; r != nil {
		if now.Before(r.Cert.NotBefore) || !now.Before(r.Cert.NotAfter) {
			return Generation{}, nil, nil, fmt.Errorf("CA root %q is valid from %s to %s, not now; replace it",
				r.Cert.Subject, r.Cert.NotBefore.Format(time.RFC3339), r.Cert.NotAfter.Format(time.RFC3339))
		}
		root, rootKey = r.Cert, r.Key
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return Generation{}, nil, nil, fmt.Errorf("generating CA root key: %w", err)
		}
		tmpl := &x509.Certificate{
			SerialNumber:          serialNumber(),
			Subject:               pkix.Name{Organization: []string{"blockgate"}, CommonName: "blockgate root " + id},
			NotBefore:             now.Add(-backdate),
			NotAfter:              now.Add(c.cfg.RootTTL),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			BasicConstraintsValid: true,
			IsCA:                  true,
			MaxPathLen:            1,
			URIs:                  []*url.URL{td},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
		if err != nil {
			return Generation{}, nil, nil, fmt.Errorf("creating CA root certificate: %w", err)
		}
		if root, err = x509.ParseCertificate(der); err != nil {
			return Generation{}, nil, nil, fmt.Errorf("creating CA root certificate: %w", err)
		}
		// The root's key signs the intermediate below and is then dropped:
		// nothing needs it again, since a new generation has a new root.
		rootKey = k
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Generation{}, nil, nil, fmt.Errorf("generating CA intermediate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serialNumber(),
		Subject:               pkix.Name{Organization: []string{"blockgate"}, CommonName: "blockgate intermediate " + id},
		NotBefore:             later(now.Add(-backdate), root.NotBefore),
		NotAfter:              earlier(now.Add(c.cfg.RootTTL), root.NotAfter),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{td},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), rootKey)
	if err != nil {
		return Generation{}, nil, nil, fmt.Errorf("creating CA intermediate certificate: %w", err)
	}
	inter, err := x509.ParseCertificate(der)
	if err != nil {
		return Generation{}, nil, nil, fmt.Errorf("creating CA intermediate certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Generation{}, nil, nil, fmt.Errorf("encoding CA intermediate key: %w", err)
	}
	sealed := c.sealer.seal(id, pkcs8)
	clear(pkcs8)

	created := now.UTC().Truncate(time.Microsecond)
	sg := Generation{
		ID:              id,
		Root:            bytes.Clone(root.Raw),
		Intermediate:    bytes.Clone(inter.Raw),
		IntermediateKey: sealed,
		MasterKeyID:     c.sealer.keyID,
		CreatedAt:       created,
	}
	return sg, &generation{id: id, root: root, inter: inter, createdAt: created}, key, nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
