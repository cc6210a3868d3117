package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"mailflow/internal/xrechnungtest"
)

// cli runs mailflow with a config on a fresh SQLite file.
type cli struct {
	t      *testing.T
	config string
}

func newCLI(t *testing.T) *cli {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailflow.toml")
	os.WriteFile(cfg, []byte("[database]\ndsn = \""+filepath.Join(dir, "m.db")+"\"\n[replies]\nsecret = \"reply-secret-0123456789\"\n"), 0o600)
	return &cli{t: t, config: cfg}
}

func (c *cli) run(args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	err := run(context.Background(), append([]string{"-config", c.config}, args...), &out, &errb)
	return out.String(), errb.String(), err
}

func (c *cli) must(args ...string) string {
	c.t.Helper()
	out, stderr, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("mailflow %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

func TestCLIOrderLifecycle(t *testing.T) {
	c := newCLI(t)
	if out := c.must("check-config"); !strings.Contains(out, "ok") {
		t.Errorf("check-config: %q", out)
	}
	c.must("catalog", "import", "../../examples/catalog.json")
	if out := c.must("order", "create", "../../examples/order-dv.json"); !strings.Contains(out, "created 2026-000001") {
		t.Errorf("create: %q", out)
	}
	if out := c.must("order", "create", "../../examples/order-dv.json"); !strings.Contains(out, "exists 2026-000001") {
		t.Errorf("create again: %q", out)
	}
	// The same external_id with other content is refused, naming the field.
	changed := filepath.Join(t.TempDir(), "changed.json")
	b, _ := os.ReadFile("../../examples/order-dv.json")
	os.WriteFile(changed, bytes.Replace(b, []byte(`"nutzer": 250`), []byte(`"nutzer": 300`), 1), 0o600)
	if _, stderr, err := c.run("order", "create", changed); err == nil || !strings.Contains(stderr, "properties.nutzer: differs") {
		t.Errorf("create with other content: %v, %q", err, stderr)
	}
	c.must("order", "create", "../../examples/order-uv.json")
	if out := c.must("order", "list", "-status", "open"); strings.Count(out, " open") != 2 || !strings.Contains(out, "NUMBER") {
		t.Errorf("list: %q", out)
	}
	c.must("order", "decide", "2026-000001", "-party", "provider", "-intent", "working")
	if out := c.must("order", "decide", "2026-000001", "-party", "provider", "-intent", "accept"); !strings.Contains(out, "2026-000001: ordered (binding) [ordered]") {
		t.Errorf("decide: %q", out)
	}
	out := c.must("-json", "order", "show", "2026-000001")
	var o struct {
		Status    string
		BindingAt *string `json:"binding_at"`
		History   []struct{ Source, Actor string }
	}
	if err := json.Unmarshal([]byte(out), &o); err != nil {
		t.Fatalf("show -json: %v\n%s", err, out)
	}
	if o.Status != "ordered" || o.BindingAt == nil || len(o.History) != 2 || o.History[0].Source != "manual" || !strings.HasPrefix(o.History[0].Actor, "cli") {
		t.Errorf("show: %+v", o)
	}
	// A reject without reason fails with the field named, exit status 1.
	_, stderr, err := c.run("order", "decide", "2026-000002", "-party", "intermediary", "-intent", "reject")
	if err == nil || errors.Is(err, errUsage) || !strings.Contains(stderr, "reason") {
		t.Errorf("reject without reason: %v %q", err, stderr)
	}
}

func TestCLIUsage(t *testing.T) {
	c := newCLI(t)
	for _, args := range [][]string{{}, {"frobnicate"}, {"order"}, {"order", "show"}, {"order", "decide"}, {"catalog", "import"}, {"outbox", "retry", "x"}} {
		if _, _, err := c.run(args...); !errors.Is(err, errUsage) {
			t.Errorf("mailflow %v: %v, want usage error (exit 2)", args, err)
		}
	}
	if _, _, err := c.run("order", "show", "2026-999999"); err == nil || errors.Is(err, errUsage) {
		t.Errorf("unknown order: %v, want a failure (exit 1)", err)
	}
}

// TestCLIInboxExplain: explain shows the verdict and changes nothing; a
// reply matched by its subject tag alone needs a person unless our MX
// authenticated the sender.
func TestCLIInboxExplain(t *testing.T) {
	c := newCLI(t)
	c.must("catalog", "import", "../../examples/catalog.json")
	c.must("order", "create", "../../examples/order-dv.json")
	eml := filepath.Join(t.TempDir(), "reply.eml")
	reply := "From: Anna <anna@dataport.example>\r\nTo: bestellungen@example.org\r\n" +
		"Subject: AW: [Bestellung 2026-000001] Neue Bestellung\r\nMessage-ID: <r1@dataport.example>\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\nBestätigt.\r\n\r\nAm 20.11.2026 schrieb DVC:\r\n> ABGELEHNT\r\n"
	os.WriteFile(eml, []byte(reply), 0o600)
	out := c.must("inbox", "explain", eml)
	for _, want := range []string{"unauthenticated", "subject tag only", "needs a person", "review", "nothing"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain of a subject-tag reply lacks %q:\n%s", want, out)
		}
	}

	f, _ := os.OpenFile(c.config, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("trusted_authserv_id = \"mx.example.org\"\n")
	f.Close()
	os.WriteFile(eml, []byte("Authentication-Results: mx.example.org; dmarc=pass header.from=dataport.example\r\n"+reply), 0o600)
	out = c.must("inbox", "explain", eml)
	for _, want := range []string{"applied", "2026-000001", "accept", "ordered (binding) [ordered]", "nothing"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain of a DMARC-authenticated reply lacks %q:\n%s", want, out)
		}
	}
	show := c.must("order", "show", "2026-000001")
	if !strings.Contains(show, "open [open]") {
		t.Errorf("explain changed the order:\n%s", show)
	}
	// The command line speaks English only: no German heading above
	// English columns.
	for _, german := range []string{"Verlauf", "Nachrichten", "Bestellt am", "Vertragsmodell", "Kunde", "Anbieter", "Offen"} {
		if strings.Contains(show, german) {
			t.Errorf("order show mixes in German %q:\n%s", german, show)
		}
	}
	for _, want := range []string{"contract model", "direct contract (DV)", "History:", "TIME"} {
		if !strings.Contains(show, want) {
			t.Errorf("order show lacks %q:\n%s", want, show)
		}
	}
}

func TestCLIBillingRun(t *testing.T) {
	c := newCLI(t)
	c.must("catalog", "import", "../../examples/catalog.json")
	c.must("order", "create", "../../examples/order-dv.json")
	c.must("order", "decide", "2026-000001", "-party", "provider", "-intent", "accept")
	before := c.must("outbox", "list")
	future := time.Now().AddDate(0, 3, 0).Format(time.DateOnly)
	out := c.must("billing", "run", "-dry-run", "-at", future)
	if !strings.Contains(out, "2026-000001") {
		t.Errorf("dry run three months ahead lists no reminder for the bound order:\n%s", out)
	}
	if after := c.must("outbox", "list"); after != before {
		t.Errorf("a dry run changed the outbox:\nbefore\n%s\nafter\n%s", before, after)
	}
	if _, _, err := c.run("billing", "run", "-at", "tomorrow"); !errors.Is(err, errUsage) {
		t.Errorf("bad -at: %v, want usage error", err)
	}
	if _, _, err := c.run("billing", "run", "-xrechnung", t.TempDir()); !errors.Is(err, errUsage) {
		t.Errorf("-xrechnung without -dry-run: %v, want usage error", err)
	}
}

// A dry run with -xrechnung writes the e-invoice each reminder would
// carry, and they pass the official rules; the outbox is untouched.
func TestCLIBillingDryRunXRechnung(t *testing.T) {
	xrechnungtest.Validator(t)
	c := newCLI(t)
	c.must("catalog", "import", "../../examples/catalog.json")
	c.must("order", "create", "../../examples/order-dv.json")
	c.must("order", "decide", "2026-000001", "-party", "provider", "-intent", "accept")
	c.must("order", "create", "../../examples/order-uv.json")
	c.must("order", "decide", "2026-000002", "-party", "provider", "-intent", "accept")
	c.must("order", "decide", "2026-000002", "-party", "intermediary", "-intent", "accept")
	before := c.must("outbox", "list")
	dir := filepath.Join(t.TempDir(), "xr")
	future := time.Now().AddDate(1, 0, 0).Format(time.DateOnly)
	c.must("billing", "run", "-dry-run", "-at", future, "-xrechnung", dir)
	files, err := filepath.Glob(filepath.Join(dir, "*.xml"))
	if err != nil {
		t.Fatal(err)
	}
	// DV: provider → customer; UV: provider → intermediary, intermediary → customer.
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	for _, prefix := range []string{"provider-dataport-XRechnung-ENTWURF-", "provider-itnrw-XRechnung-ENTWURF-", "intermediary-govdigital-XRechnung-ENTWURF-"} {
		if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, prefix) }) {
			t.Errorf("no %s… among %q", prefix, names)
		}
	}
	if len(files) != 3 {
		t.Errorf("%d files, want 3: %q", len(files), names)
	}
	if after := c.must("outbox", "list"); after != before {
		t.Errorf("a dry run changed the outbox")
	}
	xrechnungtest.Validate(t, files...)
}
