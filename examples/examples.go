// Package examples embeds the example catalog and orders, so that
// `mailflow demo` runs from any directory and tests need no relative paths.
package examples

import "embed"

//go:embed catalog.json order-dv.json order-uv.json
var files embed.FS

// Catalog returns catalog.json: two providers, an intermediary, the AGB
// versions and two services.
func Catalog() []byte { return read("catalog.json") }

// OrderDV returns order-dv.json: an order in the direct contract model.
func OrderDV() []byte { return read("order-dv.json") }

// OrderUV returns order-uv.json: an order in the Umklappvertrag model,
// through the intermediary.
func OrderUV() []byte { return read("order-uv.json") }

// read returns a fresh copy of an embedded file, which exists by
// construction (go:embed fails the build otherwise).
func read(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("examples: " + err.Error())
	}
	return b
}
