package web_test

import (
	"context"
	"encoding/json"
	"io"
	"mailflow/mailflow/compose"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailflow/internal/xrechnungtest"
	"mailflow/mailflow"
	"mailflow/scheduler"
	"mailflow/storage/storagetest"
	"mailflow/templates"
	"mailflow/web"
)

// GET /api/v1/orders/{number}/invoices lists an order's e-invoices, one
// per billed period and seller, each with its buyer reference and the URL
// of its XML, which passes the official rules.
func TestAPIOrderInvoices(t *testing.T) {
	st := storagetest.Open(t, "sqlite")
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := mailflow.NewTokens([]string{"0123456789abcdef0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	composer, err := compose.New(compose.Config{From: "DVC <bestellungen@example.org>",
		Coordinator: "koordinierung@example.org", Tokens: tokens, Templates: templates.Must(templates.New())})
	if err != nil {
		t.Fatal(err)
	}
	sched := scheduler.New(scheduler.Config{Location: loc, Billing: "0 6 1 * *", Reminders: "0 8 * * 1-5", Digest: "0 7 * * 1-5",
		RemindAfter: 48 * time.Hour, EscalateAfter: 120 * time.Hour}, st, scheduler.NewMailer(composer), nil)
	run := time.Now().In(loc).AddDate(0, 2, 0)
	sched.Now = func() time.Time { return run }
	srv := &web.Server{Flow: &mailflow.Flow{Store: st}, Store: st, Invoices: sched,
		Tokens: []web.Token{{Name: "erika", Role: web.RoleCoordinator, Token: coordToken}, {Name: "portal", Role: web.RolePortal, Token: portalToken}}}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	c := &apiClient{t: t, srv: hs, st: st}
	c.importCatalog()
	for _, f := range []string{"order-dv.json", "order-uv.json"} {
		o := readExample(t, f)
		o["ordered_at"] = time.Now().Add(-time.Hour).Format(time.RFC3339)
		if code, body := c.do("POST", "/api/v1/orders", portalToken, o); code != 201 && code != 200 {
			t.Fatalf("create %s: %d %v", f, code, body)
		}
	}
	for _, d := range []struct{ number, party string }{
		{"2026-000001", "provider"}, {"2026-000002", "provider"}, {"2026-000002", "intermediary"},
	} {
		if code, body := c.do("POST", "/api/v1/orders/"+d.number+"/decisions", coordToken,
			map[string]string{"party": d.party, "intent": "accept"}); code != 200 {
			t.Fatalf("decide: %d %v", code, body)
		}
	}
	get := func(path string) (int, string, []byte) {
		req, _ := http.NewRequest("GET", hs.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+coordToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), b
	}
	if code, _, b := get("/api/v1/orders/2026-000001/invoices"); code != 200 || strings.TrimSpace(string(b)) != "[]" {
		t.Errorf("before billing: %d %s, want an empty list", code, b)
	}
	if _, err := sched.RunBilling(context.Background(), run, false); err != nil {
		t.Fatal(err)
	}
	type entry struct {
		Period, Role, Seller, Buyer, URL string
		BuyerReference                   string `json:"buyer_reference"`
	}
	dir := t.TempDir()
	var files []string
	for _, tt := range []struct {
		number string
		refs   map[string]string // role → buyer reference
	}{
		{"2026-000001", map[string]string{"provider": "04011000-12345-03"}},
		{"2026-000002", map[string]string{"provider": "992-90009-96", "intermediary": "09564000-NUE0001-49"}},
	} {
		code, _, b := get("/api/v1/orders/" + tt.number + "/invoices")
		var list []entry
		if err := json.Unmarshal(b, &list); code != 200 || err != nil || len(list) == 0 {
			t.Fatalf("%s: %d %s (%v)", tt.number, code, b, err)
		}
		for _, e := range list {
			if want := tt.refs[e.Role]; e.BuyerReference != want || e.Period == "" || e.Seller == "" || e.Buyer == "" {
				t.Errorf("%s: entry %+v, want buyer reference %q", tt.number, e, want)
			}
			code, ct, x := get(e.URL)
			if code != 200 || ct != "application/xml" || !strings.Contains(string(x), "<cbc:BuyerReference>"+e.BuyerReference+"<") {
				t.Errorf("%s: %d %s\n%.300s", e.URL, code, ct, x)
				continue
			}
			p := filepath.Join(dir, tt.number+"-"+e.Period+"-"+e.Role+".xml")
			if err := os.WriteFile(p, x, 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, p)
		}
	}
	if code, _, _ := get("/api/v1/orders/2026-000001/invoices/1999-01/provider"); code != 404 {
		t.Errorf("unknown period: %d, want 404", code)
	}
	if code, _, _ := get("/api/v1/orders/2099-999999/invoices"); code != 404 {
		t.Errorf("unknown order: %d, want 404", code)
	}
	xrechnungtest.Validate(t, files...) // skips, saying why, without the validator
}
