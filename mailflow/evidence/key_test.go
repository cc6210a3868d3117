package evidence_test

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mailflow/mailflow/evidence"
)

// The key is generated once with mode 0600 and read back the same; a key
// file others may read, or one that is no Ed25519 key, is refused; the
// public key reads back from its text and its PEM form.
func TestSigningKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "evidence.key")
	key, created, err := evidence.LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("first load: created=%v err=%v", created, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v, want mode 0600", fi, err)
	}
	again, created, err := evidence.LoadOrCreateKey(path)
	if err != nil || created || !again.Equal(key) {
		t.Fatalf("second load: created=%v err=%v same=%v", created, err, again.Equal(key))
	}
	os.Chmod(path, 0o644)
	if _, _, err := evidence.LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable key: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.key")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	if _, _, err := evidence.LoadOrCreateKey(bad); err == nil {
		t.Error("a file that is no key is accepted")
	}

	pub := key.Public()
	text := evidence.PublicKeyText(key.Public().(ed25519.PublicKey))
	der, _ := x509.MarshalPKIXPublicKey(pub)
	for _, form := range []string{text, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))} {
		got, err := evidence.ParsePublicKey(form)
		if err != nil || evidence.PublicKeyText(got) != text {
			t.Errorf("ParsePublicKey(%q) = %v, %v", form, got, err)
		}
	}
	for _, bad := range []string{"", "ed25519:", "ed25519:AAAA", "rsa:" + strings.TrimPrefix(text, "ed25519:")} {
		if _, err := evidence.ParsePublicKey(bad); err == nil {
			t.Errorf("ParsePublicKey(%q) accepted", bad)
		}
	}
}
