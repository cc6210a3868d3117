// Package exampletest gives tests the examples (package examples) parsed:
// the catalog validated as an import validates it, and the orders as the
// API reads them. mailflow's own internal tests cannot import it (it
// imports mailflow).
package exampletest

import (
	"encoding/json"
	"testing"

	"mailflow/examples"
	"mailflow/mailflow"
)

// Catalog returns the example catalog, validated (which fills in the
// documents' SHA-256).
func Catalog(t testing.TB) *mailflow.Catalog {
	t.Helper()
	var cat mailflow.Catalog
	if err := json.Unmarshal(examples.Catalog(), &cat); err != nil {
		t.Fatal(err)
	}
	if err := mailflow.ValidateCatalog(&cat); err != nil {
		t.Fatal(err)
	}
	return &cat
}

// Request returns an example order: "order-dv.json" or "order-uv.json".
func Request(t testing.TB, name string) *mailflow.OrderRequest {
	t.Helper()
	var raw []byte
	switch name {
	case "order-dv.json":
		raw = examples.OrderDV()
	case "order-uv.json":
		raw = examples.OrderUV()
	default:
		t.Fatalf("exampletest: no example %q", name)
	}
	var req mailflow.OrderRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		t.Fatal(err)
	}
	return &req
}
