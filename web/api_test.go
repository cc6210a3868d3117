package web_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"mailflow/mailflow"
	"mailflow/storage"
	"mailflow/storage/storagetest"
	"mailflow/web"
)

const (
	portalToken = "portal-token-0123456789"
	coordToken  = "coordinator-token-0123456789"
)

type apiClient struct {
	t   *testing.T
	srv *httptest.Server
	st  *storage.Store
}

func newAPI(t *testing.T, driver string) *apiClient {
	st := storagetest.Open(t, driver)
	srv := &web.Server{
		Flow:  &mailflow.Flow{Store: st},
		Store: st,
		Tokens: []web.Token{
			{Name: "portal", Role: web.RolePortal, Token: portalToken},
			{Name: "erika", Role: web.RoleCoordinator, Token: coordToken},
		},
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &apiClient{t: t, srv: hs, st: st}
}

func (c *apiClient) do(method, path, token string, body any) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, c.srv.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	if resp.StatusCode >= 400 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			c.t.Errorf("%s %s: %d with Content-Type %q, want application/problem+json", method, path, resp.StatusCode, ct)
		}
	}
	json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func readExample(t *testing.T, name string) map[string]any {
	b, err := os.ReadFile("../examples/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (c *apiClient) importCatalog() {
	c.t.Helper()
	cat, _ := os.ReadFile("../examples/catalog.json")
	if code, body := c.do("PUT", "/api/v1/catalog", coordToken, cat); code != 200 {
		c.t.Fatalf("import catalog: %d %v", code, body)
	}
}

func fields(body map[string]any) []string {
	var out []string
	errs, _ := body["errors"].([]any)
	for _, e := range errs {
		out = append(out, e.(map[string]any)["field"].(string))
	}
	return out
}

func countRows(t *testing.T, st *storage.Store, table string) int {
	var n int
	if err := st.DB().Get(&n, "SELECT COUNT(*) FROM "+table); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAPI(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			c := newAPI(t, driver)
			c.importCatalog()

			// Auth.
			if code, _ := c.do("GET", "/api/v1/orders", "", nil); code != 401 {
				t.Errorf("no token: %d, want 401", code)
			}
			if code, _ := c.do("GET", "/api/v1/orders", "wrong-token-0123456789", nil); code != 401 {
				t.Errorf("wrong token: %d, want 401", code)
			}
			if code, _ := c.do("GET", "/api/v1/orders", portalToken, nil); code != 403 {
				t.Errorf("portal lists orders: %d, want 403", code)
			}
			if code, _ := c.do("POST", "/api/v1/orders", coordToken, readExample(t, "order-dv.json")); code != 403 {
				t.Errorf("coordinator creates order: %d, want 403", code)
			}

			code, dv := c.do("POST", "/api/v1/orders", portalToken, readExample(t, "order-dv.json"))
			if code != 201 || dv["number"] != "2026-000001" || dv["status"] != "open" || dv["status_label"] != "Offen" || dv["binding_at"] != nil {
				t.Fatalf("create DV: %d %v", code, dv)
			}
			terms := dv["terms"].(map[string]any)
			if terms["version"] != "2026-1" || terms["sha256"] != mailflow.TextSHA256(readCatalogTerms(t, "agb-2026")) {
				t.Errorf("terms = %v, want AGB 2026-1 valid on 2026-11-20 with its sha256", terms)
			}
			// Idempotent on external_id.
			code, again := c.do("POST", "/api/v1/orders", portalToken, readExample(t, "order-dv.json"))
			if code != 200 || again["number"] != dv["number"] {
				t.Errorf("duplicate create: %d %v, want 200 and the same number", code, again["number"])
			}
			code, uv := c.do("POST", "/api/v1/orders", portalToken, readExample(t, "order-uv.json"))
			if code != 201 || uv["number"] != "2026-000002" || uv["contract_model"] != "UV" {
				t.Fatalf("create UV: %d %v", code, uv)
			}
			code, list := c.do("GET", "/api/v1/orders?status=open", coordToken, nil)
			if code != 200 || list["total"].(float64) != 2 {
				t.Errorf("list open: %d %v", code, list)
			}
			if code, _ := c.do("GET", "/api/v1/orders/2026-000002", portalToken, nil); code != 200 {
				t.Errorf("portal reads order: %d", code)
			}
			if code, _ := c.do("GET", "/api/v1/orders/2026-999999", coordToken, nil); code != 404 {
				t.Errorf("unknown order: %d, want 404", code)
			}

			// UV through the statuses to Bestellt.
			steps := []struct{ party, intent, want string }{
				{"provider", "accept", "open"}, // recorded, waits for the intermediary
				{"intermediary", "review", "review_intermediary_uv"},
				{"intermediary", "accept", "ordered"},
			}
			for _, s := range steps {
				code, o := c.do("POST", "/api/v1/orders/2026-000002/decisions", coordToken, map[string]string{"party": s.party, "intent": s.intent})
				if code != 200 || o["status"] != s.want {
					t.Fatalf("%s %s: %d status %v, want %s", s.party, s.intent, code, o["status"], s.want)
				}
				if s.want == "ordered" {
					if o["binding_at"] == nil {
						t.Error("binding_at not set when Bestellt")
					}
					h := o["history"].([]any)
					if len(h) != 3 || h[2].(map[string]any)["actor"] != "erika" || h[2].(map[string]any)["source"] != "manual" {
						t.Errorf("history = %v", h)
					}
				}
			}
			// DV rejected; a reject needs a reason.
			code, body := c.do("POST", "/api/v1/orders/2026-000001/decisions", coordToken, map[string]string{"party": "provider", "intent": "reject"})
			if code != 422 || !contains(fields(body), "reason") {
				t.Errorf("reject without reason: %d %v", code, body)
			}
			code, body = c.do("POST", "/api/v1/orders/2026-000001/decisions", coordToken, map[string]string{"party": "intermediary", "intent": "accept"})
			if code != 422 || !contains(fields(body), "party") {
				t.Errorf("intermediary on DV: %d %v", code, body)
			}
			code, o := c.do("POST", "/api/v1/orders/2026-000001/decisions", coordToken, map[string]string{"party": "provider", "intent": "reject", "reason": "Kapazität erschöpft"})
			if code != 200 || o["status"] != "rejected_provider_dv" || o["status_label"] != "Abgelehnt durch Anbieter (DV)" {
				t.Errorf("reject: %d %v", code, o["status"])
			}
			// A later decision is recorded, flagged, and changes nothing.
			code, o = c.do("POST", "/api/v1/orders/2026-000001/decisions", coordToken, map[string]string{"party": "provider", "intent": "accept"})
			if code != 200 || o["status"] != "rejected_provider_dv" || o["conflict"] != true {
				t.Errorf("accept after reject: %d status %v conflict %v", code, o["status"], o["conflict"])
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func readCatalogTerms(t *testing.T, id string) string {
	b, _ := os.ReadFile("../examples/catalog.json")
	var cat mailflow.Catalog
	if err := json.Unmarshal(b, &cat); err != nil {
		t.Fatal(err)
	}
	for _, tm := range cat.Terms {
		if tm.ID == id {
			return tm.Text
		}
	}
	t.Fatalf("no terms %s", id)
	return ""
}

// TestAPIInvalidOrders sends each malformed order and checks the answer
// names the field and nothing is stored.
func TestAPIInvalidOrders(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			c := newAPI(t, driver)
			c.importCatalog()
			mutate := func(base string, f func(m map[string]any)) map[string]any {
				m := readExample(t, base)
				f(m)
				return m
			}
			cust := func(m map[string]any) map[string]any { return m["customer"].(map[string]any) }
			tests := []struct {
				name  string
				body  any
				code  int
				field string
			}{
				{"malformed json", `{"external_id": `, 400, ""},
				{"not an object", `[1,2]`, 422, "(root)"},
				{"missing external_id", mutate("order-dv.json", func(m map[string]any) { delete(m, "external_id") }), 422, "external_id"},
				{"missing ordered_at", mutate("order-dv.json", func(m map[string]any) { delete(m, "ordered_at") }), 422, "ordered_at"},
				{"bad ordered_at", mutate("order-dv.json", func(m map[string]any) { m["ordered_at"] = "20.11.2026" }), 422, "ordered_at"},
				{"bad contract model", mutate("order-dv.json", func(m map[string]any) { m["contract_model"] = "XV" }), 422, "contract_model"},
				{"missing customer name", mutate("order-dv.json", func(m map[string]any) { delete(cust(m), "name") }), 422, "customer.name"},
				{"bad email", mutate("order-dv.json", func(m map[string]any) { cust(m)["email"] = "it@@musterstadt" }), 422, "customer.email"},
				{"bad leitweg format", mutate("order-dv.json", func(m map[string]any) { cust(m)["leitweg_id"] = "0401-" }), 422, "customer.leitweg_id"},
				{"bad leitweg check digits", mutate("order-dv.json", func(m map[string]any) { cust(m)["leitweg_id"] = "991-33333TEST-34" }), 422, "customer.leitweg_id"},
				{"header injection in name", mutate("order-dv.json", func(m map[string]any) { cust(m)["name"] = "Stadt\r\nBcc: x@evil.example" }), 422, "customer.name"},
				{"unknown property", mutate("order-dv.json", func(m map[string]any) { m["properties"].(map[string]any)["farbe"] = "rot" }), 422, "properties.farbe"},
				{"wrong property type", mutate("order-dv.json", func(m map[string]any) { m["properties"].(map[string]any)["nutzer"] = "viele" }), 422, "properties.nutzer"},
				{"property below min", mutate("order-dv.json", func(m map[string]any) { m["properties"].(map[string]any)["nutzer"] = 0 }), 422, "properties.nutzer"},
				{"enum value", mutate("order-dv.json", func(m map[string]any) { m["properties"].(map[string]any)["region"] = "west" }), 422, "properties.region"},
				{"required property missing", mutate("order-dv.json", func(m map[string]any) { delete(m["properties"].(map[string]any), "nutzer") }), 422, "properties.nutzer"},
				{"UV without intermediary", mutate("order-uv.json", func(m map[string]any) { delete(m, "intermediary") }), 422, "intermediary"},
				{"DV with intermediary", mutate("order-dv.json", func(m map[string]any) { m["intermediary"] = "govdigital" }), 422, "intermediary"},
				{"unknown intermediary", mutate("order-uv.json", func(m map[string]any) { m["intermediary"] = "nobody" }), 422, "intermediary"},
				{"unknown service", mutate("order-dv.json", func(m map[string]any) { m["service"] = "dvc-nix" }), 422, "service"},
				{"unknown price", mutate("order-dv.json", func(m map[string]any) { m["price"] = "gratis" }), 422, "price"},
				{"no terms valid", mutate("order-dv.json", func(m map[string]any) { m["ordered_at"] = "2024-05-01T10:00:00+02:00" }), 422, "ordered_at"},
				{"too large", `{"external_id": "` + strings.Repeat("x", 2<<20) + `"}`, 413, ""},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					code, body := c.do("POST", "/api/v1/orders", portalToken, tt.body)
					if code != tt.code {
						t.Fatalf("status %d, want %d: %v", code, tt.code, body)
					}
					if body["status"].(float64) != float64(tt.code) || body["title"] == "" {
						t.Errorf("problem body %v", body)
					}
					if tt.field != "" && !contains(fields(body), tt.field) {
						t.Errorf("errors name %v, want %s", fields(body), tt.field)
					}
				})
			}
			for _, table := range []string{"orders", "decisions", "outbox", "order_counters"} {
				if n := countRows(t, c.st, table); n != 0 {
					t.Errorf("%d rows in %s after only invalid requests", n, table)
				}
			}
		})
	}
}

// TestConcurrentDuplicates fires the same external_id many times at once:
// exactly one order exists afterwards and every caller gets its number.
func TestConcurrentDuplicates(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			c := newAPI(t, driver)
			c.importCatalog()
			body, _ := json.Marshal(readExample(t, "order-dv.json"))
			var wg sync.WaitGroup
			var mu sync.Mutex
			numbers := map[any]int{}
			codes := map[int]int{}
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					code, o := c.do("POST", "/api/v1/orders", portalToken, body)
					mu.Lock()
					numbers[o["number"]]++
					codes[code]++
					mu.Unlock()
				}()
			}
			wg.Wait()
			if len(numbers) != 1 || codes[201] != 1 || codes[200] != 15 {
				t.Errorf("numbers %v codes %v: want one number, one 201 and 15×200", numbers, codes)
			}
			if n := countRows(t, c.st, "orders"); n != 1 {
				t.Errorf("%d orders stored, want 1", n)
			}
			// The next order gets the next number: duplicates used none up.
			m := readExample(t, "order-dv.json")
			m["external_id"] = "csp-other"
			if _, o := c.do("POST", "/api/v1/orders", portalToken, m); o["number"] != "2026-000002" {
				t.Errorf("next number %v, want 2026-000002", o["number"])
			}
		})
	}
}

// TestOrderListQueryLength: a search text beyond 200 characters is
// refused with 422 naming q, by the API and by the status page; 200
// characters (umlauts count as one) are a search like any other.
func TestOrderListQueryLength(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			c := newAPI(t, driver)
			page := newPageEnv(t, driver, false).client()
			page.login()
			tests := []struct {
				name string
				q    string
				code int
			}{
				{"200 characters", strings.Repeat("ä", 200), 200},
				{"201 characters", strings.Repeat("a", 201), 422},
				{"long", strings.Repeat("%_x", 10000), 422},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					code, body := c.do("GET", "/api/v1/orders?q="+url.QueryEscape(tt.q), coordToken, nil)
					if code != tt.code {
						t.Fatalf("API: %d, want %d: %v", code, tt.code, body)
					}
					if code == 422 && !contains(fields(body), "q") {
						t.Errorf("API: errors name %v, want q", fields(body))
					}
					resp, html := page.get("/bestellungen?q=" + url.QueryEscape(tt.q))
					if resp.StatusCode != tt.code {
						t.Fatalf("page: %d, want %d", resp.StatusCode, tt.code)
					}
					if code == 422 && !strings.Contains(html, "Suchbegriff (q)") {
						t.Errorf("page does not name the field: %s", html)
					}
				})
			}
		})
	}
}
