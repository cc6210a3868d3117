package storage_test

import (
	"context"
	"errors"
	"testing"

	"mailflow/mailflow"
	"mailflow/storage/storagetest"
)

// TestOrderCreator: the name of the token that created an order is
// stored and read back by number and by external_id; an order created
// without one reads back "".
func TestOrderCreator(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := openWithCatalog(t, driver)
			flow := &mailflow.Flow{Store: s}
			byToken, _, err := flow.CreateOrderBy(ctx, loadOrder(t, "order-dv.json"), "portal-a")
			if err != nil {
				t.Fatal(err)
			}
			anonymous, _, err := flow.CreateOrder(ctx, loadOrder(t, "order-uv.json"))
			if err != nil {
				t.Fatal(err)
			}
			for _, tt := range []struct {
				o    *mailflow.Order
				want string
			}{{byToken, "portal-a"}, {anonymous, ""}} {
				got, err := s.Order(ctx, tt.o.Number)
				if err != nil || got.CreatedBy != tt.want {
					t.Errorf("Order(%s).CreatedBy = %q, %v; want %q", tt.o.Number, got.CreatedBy, err, tt.want)
				}
				got, err = s.OrderByExternalID(ctx, tt.o.ExternalID)
				if err != nil || got.Number != tt.o.Number || got.CreatedBy != tt.want {
					t.Errorf("OrderByExternalID(%s) = %+v, %v", tt.o.ExternalID, got, err)
				}
			}
			if _, err := s.OrderByExternalID(ctx, "nobody-knows"); !errors.Is(err, mailflow.ErrNotFound) {
				t.Errorf("unknown external id: %v, want ErrNotFound", err)
			}
		})
	}
}
