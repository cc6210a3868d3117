package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"mailflow/web"
)

func TestMetrics(t *testing.T) {
	for _, driver := range []string{"sqlite"} {
		t.Run(driver, func(t *testing.T) {
			c := newAPI(t, driver)
			c.importCatalog()
			c.do("POST", "/api/v1/orders", portalToken, readExample(t, "order-dv.json"))
			c.do("POST", "/api/v1/orders", portalToken, readExample(t, "order-uv.json"))
			c.do("POST", "/api/v1/orders/2026-000001/decisions", coordToken, map[string]string{"party": "provider", "intent": "accept"})
			h, err := web.NewMetricsHandler(c.st, nil, web.Metric{Name: "mailflow_test_sent_total", Help: "x", Counter: true, Value: func() float64 { return 7 }})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, want := range []string{
				`mailflow_orders{status="open"} 1`,
				`mailflow_orders{status="ordered"} 1`,
				`mailflow_orders{status="rejected_provider_uv"} 0`,
				`mailflow_outbox_messages{state="pending"} 0`,
				`mailflow_test_sent_total 7`,
				`mailflow_metrics_db_error 0`,
			} {
				if !strings.Contains(string(body), want) {
					t.Errorf("metrics lack %q", want)
				}
			}
		})
	}
}
