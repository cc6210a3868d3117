package main

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The CLI exports a bundle, prints the key that signs it, and verifies
// it: exit 0 untouched, an error (exit 1) naming the file once one is
// changed. The key is generated beside the SQLite database, mode 0600.
func TestCLIEvidence(t *testing.T) {
	c := newCLI(t)
	c.must("catalog", "import", "../../examples/catalog.json")
	c.must("order", "create", "../../examples/order-dv.json")
	c.must("order", "decide", "2026-000001", "-party", "provider", "-intent", "accept")
	dir := t.TempDir()
	file := filepath.Join(dir, "nachweis.zip")
	if out := c.must("order", "evidence", "2026-000001", "-o", file); !strings.Contains(out, "wrote "+file) {
		t.Errorf("order evidence: %q", out)
	}
	fi, err := os.Stat(filepath.Join(filepath.Dir(c.config), "m-evidence.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key beside the database: %v %v", fi, err)
	}
	key := strings.TrimSpace(c.must("evidence", "key"))
	if !strings.HasPrefix(key, "ed25519:") {
		t.Fatalf("evidence key: %q", key)
	}
	if out := c.must("evidence", "verify", file, "-key", key); !strings.HasPrefix(out, "ok: order 2026-000001") {
		t.Errorf("verify: %q", out)
	}

	// One byte of the snapshot changed.
	b, _ := os.ReadFile(file)
	zr, _ := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		rc, _ := f.Open()
		data, _ := io.ReadAll(rc)
		rc.Close()
		if f.Name == "order.json" {
			data = bytes.Replace(data, []byte("Musterstadt"), []byte("Musterstadf"), 1)
		}
		w, _ := zw.Create(f.Name)
		w.Write(data)
	}
	zw.Close()
	tampered := filepath.Join(dir, "changed.zip")
	os.WriteFile(tampered, buf.Bytes(), 0o600)
	out, _, err := c.run("evidence", "verify", tampered, "-key", key)
	if err == nil || errors.Is(err, errUsage) || !strings.Contains(out, "FAIL order.json: changed") {
		t.Errorf("verify of a changed bundle: err=%v out=%q", err, out)
	}
	if _, _, err := c.run("order", "evidence", "2026-000001"); !errors.Is(err, errUsage) {
		t.Errorf("order evidence without -o: %v, want bad usage", err)
	}
	if _, _, err := c.run("order", "evidence", "2026-999999", "-o", filepath.Join(dir, "none.zip")); err == nil {
		t.Error("order evidence of an unknown order succeeds")
	}
	if _, err := os.Stat(filepath.Join(dir, "none.zip.part")); !os.IsNotExist(err) {
		t.Error("a failed export leaves its partial file")
	}
}
