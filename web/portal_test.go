package web_test

import (
	"context"
	"encoding/json"
	"io"
	"mailflow/mailflow/compose"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"mailflow/mailflow"
	"mailflow/storage/storagetest"
	"mailflow/templates"
	"mailflow/web"
)

const portalBToken = "portal-b-token-0123456789"

// newAPIWithMail is newAPI with a second portal token ("portal-b") and a
// composer, so that orders have outbound messages with Message-IDs that
// carry reply tokens.
func newAPIWithMail(t *testing.T, driver string) (*apiClient, *mailflow.Flow) {
	t.Helper()
	st := storagetest.Open(t, driver)
	tokens, err := mailflow.NewTokens([]string{"reply-secret-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := templates.New()
	if err != nil {
		t.Fatal(err)
	}
	composer, err := compose.New(compose.Config{From: "DVC Bestellservice <bestellungen@example.org>",
		Coordinator: "koordinierung@example.org", Tokens: tokens, Templates: tmpl})
	if err != nil {
		t.Fatal(err)
	}
	flow := &mailflow.Flow{Store: st, Notifier: composer}
	srv := &web.Server{Flow: flow, Store: st, Tokens: []web.Token{
		{Name: "portal", Role: web.RolePortal, Token: portalToken},
		{Name: "portal-b", Role: web.RolePortal, Token: portalBToken},
		{Name: "erika", Role: web.RoleCoordinator, Token: coordToken},
	}}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	c := &apiClient{t: t, srv: hs, st: st}
	c.importCatalog()
	return c, flow
}

// raw is do returning the body as it came.
func (c *apiClient) raw(method, path, token string) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPortalSeesOnlyItsOrders: a portal token reads the orders it
// created, and by external_id those no other token created; any other
// order is 404 to it, as if it did not exist. The coordinator reads all.
func TestPortalSeesOnlyItsOrders(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			c, flow := newAPIWithMail(t, driver)
			code, a := c.do("POST", "/api/v1/orders", portalToken, readExample(t, "order-dv.json"))
			if code != 201 {
				t.Fatalf("portal creates: %d %v", code, a)
			}
			code, b := c.do("POST", "/api/v1/orders", portalBToken, readExample(t, "order-uv.json"))
			if code != 201 {
				t.Fatalf("portal-b creates: %d %v", code, b)
			}
			// An order from the CLI (or from before creators were recorded).
			req := loadRequest(t, "order-dv.json")
			req.ExternalID = "csp-cli"
			cli, _, err := flow.CreateOrder(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			na, nb := a["number"].(string), b["number"].(string)
			tests := []struct {
				token, ref string
				want       int
			}{
				{portalToken, na, 200},
				{portalToken, "csp-4711", 200},
				{portalToken, nb, 404},
				{portalToken, b["external_id"].(string), 404},
				{portalToken, cli.Number, 404},
				{portalToken, "csp-cli", 200},
				{portalToken, "2026-999999", 404},
				{portalBToken, na, 404},
				{portalBToken, "csp-4711", 404},
				{portalBToken, nb, 200},
				{coordToken, na, 200},
				{coordToken, nb, 200},
				{coordToken, cli.Number, 200},
				{coordToken, "csp-cli", 200},
			}
			for _, tt := range tests {
				code, body := c.do("GET", "/api/v1/orders/"+tt.ref, tt.token, nil)
				if code != tt.want {
					t.Errorf("token %.8s… GET %s: %d, want %d", tt.token, tt.ref, code, tt.want)
				}
				if code == 404 && (body["title"] != "Not Found" || strings.Contains(body["detail"].(string), "another")) {
					t.Errorf("404 for %s tells more than an unknown order: %v", tt.ref, body)
				}
			}
		})
	}
}

// TestPortalOrderFields: the portal's view of an order, on creation and
// on GET, carries status, terms and history, but no snapshot, no
// outbound messages, no Message-IDs (they carry reply tokens), no
// recipients, no actors and no creator; the coordinator's view has them.
func TestPortalOrderFields(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			c, _ := newAPIWithMail(t, driver)
			code, created := c.do("POST", "/api/v1/orders", portalToken, readExample(t, "order-dv.json"))
			if code != 201 {
				t.Fatalf("create: %d %v", code, created)
			}
			number := created["number"].(string)
			if code, _ := c.do("POST", "/api/v1/orders/"+number+"/decisions", coordToken,
				map[string]string{"party": "provider", "intent": "review"}); code != 200 {
				t.Fatalf("decide: %d", code)
			}
			code, coord := c.do("GET", "/api/v1/orders/"+number, coordToken, nil)
			msgs, _ := coord["messages"].([]any)
			if code != 200 || len(msgs) == 0 || coord["snapshot"] == nil || coord["created_by"] != "portal" {
				t.Fatalf("coordinator's view: %d %v", code, coord)
			}
			var messageIDs []string
			for _, m := range msgs {
				messageIDs = append(messageIDs, m.(map[string]any)["message_id"].(string))
			}
			if h := coord["history"].([]any); len(h) != 1 || h[0].(map[string]any)["actor"] != "erika" {
				t.Fatalf("coordinator's history: %v", h)
			}

			// Creation (201), repetition (200) and GET, by number and by
			// external_id.
			var bodies []string
			for _, get := range []string{number, "csp-4711"} {
				code, body := c.raw("GET", "/api/v1/orders/"+get, portalToken)
				if code != 200 {
					t.Fatalf("portal GET %s: %d %s", get, code, body)
				}
				bodies = append(bodies, body)
			}
			createdJSON, _ := json.Marshal(created)
			bodies = append(bodies, string(createdJSON))
			for _, body := range bodies {
				var got map[string]any
				if err := json.Unmarshal([]byte(body), &got); err != nil {
					t.Fatal(err)
				}
				for _, k := range []string{"number", "external_id", "contract_model", "ordered_at", "created_at", "status",
					"status_label", "status_colour", "binding_at", "conflict", "terms", "conditions", "history"} {
					if _, ok := got[k]; !ok {
						t.Errorf("portal's view lacks %s: %s", k, body)
					}
				}
				for _, k := range []string{"snapshot", "messages", "created_by"} {
					if _, ok := got[k]; ok {
						t.Errorf("portal's view has %s: %s", k, body)
					}
				}
				for _, secret := range append([]string{"message_id", "actor", "erika", "recipients", "dataport.example", "bestellungen+"}, messageIDs...) {
					if strings.Contains(body, secret) {
						t.Errorf("portal's view contains %q: %s", secret, body)
					}
				}
			}
			h := decodeHistory(t, bodies[0])
			if len(h) != 1 || h[0].Party != "provider" || h[0].Intent != mailflow.IntentReview || h[0].Source != "manual" {
				t.Errorf("portal's history: %+v", h)
			}
		})
	}
}

func decodeHistory(t *testing.T, body string) []mailflow.Decision {
	var o struct{ History []mailflow.Decision }
	if err := json.Unmarshal([]byte(body), &o); err != nil {
		t.Fatal(err)
	}
	return o.History
}

func loadRequest(t *testing.T, name string) *mailflow.OrderRequest {
	m := readExample(t, name)
	b, _ := json.Marshal(m)
	var req mailflow.OrderRequest
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	return &req
}

// TestDuplicateExternalID: the same external_id with the same body is the
// existing order (200); with a different body it is 409 naming the
// fields that differ, and nothing is stored or sent.
func TestDuplicateExternalID(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			c, _ := newAPIWithMail(t, driver)
			code, first := c.do("POST", "/api/v1/orders", portalToken, readExample(t, "order-dv.json"))
			if code != 201 {
				t.Fatalf("create: %d %v", code, first)
			}
			outbox := countRows(t, c.st, "outbox")
			mutate := func(f func(m map[string]any)) map[string]any {
				m := readExample(t, "order-dv.json")
				f(m)
				return m
			}
			cust := func(m map[string]any) map[string]any { return m["customer"].(map[string]any) }
			props := func(m map[string]any) map[string]any { return m["properties"].(map[string]any) }
			tests := []struct {
				name   string
				token  string
				body   map[string]any
				code   int
				fields []string
			}{
				{"same body", portalToken, readExample(t, "order-dv.json"), 200, nil},
				{"same with the defaults spelled out", portalToken, mutate(func(m map[string]any) {
					m["language"] = "DE"
					props(m)["nutzer"] = json.Number("250")
				}), 200, nil},
				{"same instant in another zone", portalToken, mutate(func(m map[string]any) { m["ordered_at"] = "2026-11-20T09:00:00Z" }), 200, nil},
				{"other customer and users", portalToken, mutate(func(m map[string]any) {
					cust(m)["name"] = "Stadt Anderswo"
					props(m)["nutzer"] = 251
				}), 409, []string{"customer.name", "properties.nutzer"}},
				{"property left out", portalToken, mutate(func(m map[string]any) { delete(props(m), "region") }), 409, []string{"properties.region"}},
				{"other price and time", portalToken, mutate(func(m map[string]any) {
					m["price"] = "basis-jahr"
					m["ordered_at"] = "2026-11-21T10:00:00+01:00"
				}), 409, []string{"ordered_at", "price"}},
				{"now UV", portalToken, mutate(func(m map[string]any) {
					m["contract_model"] = "UV"
					m["intermediary"] = "govdigital"
				}), 409, []string{"contract_model", "intermediary"}},
				{"invalid and different", portalToken, mutate(func(m map[string]any) { cust(m)["email"] = "kaputt" }), 409, []string{"customer.email"}},
				{"another portal, same body", portalBToken, readExample(t, "order-dv.json"), 409, []string{"external_id"}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					code, body := c.do("POST", "/api/v1/orders", tt.token, tt.body)
					if code != tt.code {
						t.Fatalf("%d, want %d: %v", code, tt.code, body)
					}
					if code == 200 {
						if body["number"] != first["number"] {
							t.Errorf("number %v, want %v", body["number"], first["number"])
						}
						return
					}
					got := fields(body)
					slices.Sort(got)
					if !slices.Equal(got, tt.fields) || body["status"] != float64(409) || body["title"] != "Conflict" {
						t.Errorf("409 names %v, want %v: %v", got, tt.fields, body)
					}
				})
			}
			if n := countRows(t, c.st, "orders"); n != 1 {
				t.Errorf("%d orders, want 1", n)
			}
			if n := countRows(t, c.st, "outbox"); n != outbox {
				t.Errorf("%d outbox rows, want %d: a duplicate sent mail", n, outbox)
			}
		})
	}
}
