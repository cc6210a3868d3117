package main

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mailflow/mailflow"
	"mailflow/mailflow/evidence"
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

// evidenceMatchesWire exports the orders' bundles through the API and
// checks them against the wire: each sent mail's .eml is byte for byte
// what the SMTP server received, each received one's what the IMAP server
// (Dovecot, in TestDaemonEndToEndDovecot) delivered to the watcher, and
// the bundle verifies with the daemon's key.
func (e *e2e) evidenceMatchesWire(numbers ...string) {
	t := e.t
	messageID := func(raw []byte) string {
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("a mail on the wire does not parse: %v", err)
		}
		return strings.Trim(m.Header.Get("Message-ID"), "<>")
	}
	pub := e.d.evidence.Key.Public().(ed25519.PublicKey)
	bundles := map[string][]byte{}
	for _, number := range numbers {
		req, _ := http.NewRequest("GET", e.base+"/api/v1/orders/"+number+"/evidence", nil)
		req.Header.Set("Authorization", "Bearer "+e2eCoord)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		bundle, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("evidence of %s: %d %s", number, resp.StatusCode, bundle)
		}
		if res, err := evidence.Verify(bytes.NewReader(bundle), int64(len(bundle)), pub); err != nil || !res.Valid() {
			t.Fatalf("evidence of %s does not verify: %v %v", number, err, res)
		}
		bundles[number] = bundle
	}
	// The wire after the export: a mail the bundle lists as sent was
	// delivered before it.
	smtpGot := map[string][]byte{}
	for _, m := range e.smtp.Messages() {
		smtpGot[messageID(m.Data)] = m.Data
	}
	imapGot := map[string][]byte{}
	for _, box := range []string{"INBOX", "Processed", "Review"} {
		msgs, err := e.imap.Messages(box)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			imapGot[messageID(m.Raw)] = m.Raw
		}
	}
	var sent, received int
	for _, number := range numbers {
		bundle := bundles[number]
		zr, _ := zip.NewReader(bytes.NewReader(bundle), int64(len(bundle)))
		files := map[string][]byte{}
		for _, f := range zr.File {
			rc, _ := f.Open()
			files[f.Name], _ = io.ReadAll(rc)
			rc.Close()
		}
		var mails []struct {
			File, Direction, Status string
			MessageID               string `json:"message_id"`
		}
		if err := json.Unmarshal(files["mails.json"], &mails); err != nil {
			t.Fatal(err)
		}
		for _, m := range mails {
			wire, got := imapGot[m.MessageID], files[m.File]
			if m.Direction == "out" {
				if m.Status != mailflow.OutboxSent {
					continue // not on the wire (yet)
				}
				wire = smtpGot[m.MessageID]
				sent++
			} else {
				received++
			}
			if wire == nil || !bytes.Equal(got, wire) {
				t.Errorf("%s %s (%s): %d bytes, on the wire %d bytes, not the same", number, m.File, m.MessageID, len(got), len(wire))
			}
		}
	}
	// DV: notification, 2 acks, 3 confirmations, the bounce; UV: 2
	// notifications, the rejection notices, the forged reply in review.
	if sent < 6 || received < 4 {
		t.Errorf("the bundles hold %d sent and %d received mails that were on the wire; want at least 6 and 4", sent, received)
	}
}
