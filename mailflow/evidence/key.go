package evidence

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// keyPrefix starts the text form of a public key: "ed25519:" and the 32
// bytes in standard base64, the form `mailflow evidence key` prints and
// `verify -key` takes.
const keyPrefix = "ed25519:"

// LoadOrCreateKey reads the installation's signing key from path, a PEM
// "PRIVATE KEY" (PKCS #8, as `openssl pkey` reads it). When the file does
// not exist it generates a key and writes it with mode 0600, creating
// the directory; created reports that. A key file that others may read
// is refused, as ssh refuses one: whoever reads it can sign bundles in
// the installation's name.
func LoadOrCreateKey(path string) (key ed25519.PrivateKey, created bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKey(path)
		return key, err == nil, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("evidence: signing key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o007 != 0 {
		return nil, false, fmt.Errorf("evidence: signing key %s is readable by others (mode %04o); run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	key, err = parsePrivateKey(b)
	if err != nil {
		return nil, false, fmt.Errorf("evidence: signing key %s: %w", path, err)
	}
	return key, false, nil
}

func createKey(path string) (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("evidence: generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("evidence: encode signing key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("evidence: signing key: %w", err)
	}
	// O_EXCL: two processes starting at once must not each write a key
	// and sign with different ones; the loser reads the winner's.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		k, _, err := LoadOrCreateKey(path)
		return k, err
	}
	if err != nil {
		return nil, fmt.Errorf("evidence: write signing key: %w", err)
	}
	werr := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr != nil {
		os.Remove(path)
		return nil, fmt.Errorf("evidence: write signing key: %w", werr)
	}
	return key, nil
}

func parsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM PRIVATE KEY")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an Ed25519 key", k)
	}
	return key, nil
}

// PublicKeyText is the text form of a public key: "ed25519:BASE64".
func PublicKeyText(pub ed25519.PublicKey) string {
	return keyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads a public key in its text form ("ed25519:BASE64"),
// or a PEM "PUBLIC KEY" (PKIX, as `openssl pkey -pubout` writes it).
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		block, _ := pem.Decode([]byte(s))
		if block == nil || block.Type != "PUBLIC KEY" {
			return nil, errors.New("evidence: not a PEM PUBLIC KEY")
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("evidence: public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("evidence: public key is a %T, not Ed25519", k)
		}
		return pub, nil
	}
	b64, ok := strings.CutPrefix(s, keyPrefix)
	if !ok {
		return nil, fmt.Errorf("evidence: public key must start with %q", keyPrefix)
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("evidence: public key: want %d bytes in base64 after %q", ed25519.PublicKeySize, keyPrefix)
	}
	return ed25519.PublicKey(b), nil
}
