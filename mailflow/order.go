package mailflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound is returned when an order, message or catalog entry does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a request contradicts the recorded state.
var ErrConflict = errors.New("conflict")

// ErrCatalogChanged is returned by Tx.CreateOrder when the catalog was
// imported anew since the revision an order's snapshot was built from.
var ErrCatalogChanged = errors.New("catalog changed")

// FieldError names one invalid field by its JSON path.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every invalid field of a request.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	if len(e.Errors) == 0 {
		return "invalid input"
	}
	msg := fmt.Sprintf("invalid %s: %s", e.Errors[0].Field, e.Errors[0].Message)
	if n := len(e.Errors) - 1; n > 0 {
		msg += fmt.Sprintf(" (and %d more)", n)
	}
	return msg
}

func (e *ValidationError) add(field, format string, args ...any) {
	e.Errors = append(e.Errors, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (e *ValidationError) orNil() error {
	if len(e.Errors) == 0 {
		return nil
	}
	return e
}

// Customer is the ordering public body's master data.
type Customer struct {
	Name           string `json:"name"`
	Street         string `json:"street"`
	PostalCode     string `json:"postal_code"`
	City           string `json:"city"`
	Country        string `json:"country"`
	ContactName    string `json:"contact_name"`
	Email          string `json:"email"`
	Phone          string `json:"phone"`
	CustomerNumber string `json:"customer_number"`
	LeitwegID      string `json:"leitweg_id"`
	// Language of the customer's mails: "de" or "en". Empty in snapshots
	// from before the field existed, which means "de".
	Language string `json:"language,omitempty"`
}

// OrderRequest is an order as the portal submits it.
type OrderRequest struct {
	ExternalID    string                     `json:"external_id"`
	OrderedAt     *time.Time                 `json:"ordered_at"`
	ContractModel string                     `json:"contract_model"`
	Intermediary  *string                    `json:"intermediary"`
	Service       string                     `json:"service"`
	Price         string                     `json:"price"`
	Properties    map[string]json.RawMessage `json:"properties"`
	Customer      Customer                   `json:"customer"`
	// Language is an alias of customer.language, which wins when both
	// are given.
	Language string `json:"language,omitempty"`
}

// ServiceInfo is the product description frozen into an order.
type ServiceInfo struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	Description      string `json:"description"`
	ProvisioningDays int    `json:"provisioning_days"`
	Supplier         string `json:"supplier,omitempty"`
	MaturityLevel    int    `json:"maturity_level,omitempty"`
}

// PropertyValue is one configured property of an order.
type PropertyValue struct {
	Name  string `json:"name"`
	Value any    `json:"value"`
}

// Snapshot is everything contract-relevant, frozen at order creation: it is
// what the notification shows and what becomes binding.
type Snapshot struct {
	Customer     Customer        `json:"customer"`
	Provider     Party           `json:"provider"`
	Intermediary *Party          `json:"intermediary,omitempty"`
	Service      ServiceInfo     `json:"service"`
	Price        Price           `json:"price"`
	Properties   []PropertyValue `json:"properties"`
	Terms        Terms           `json:"terms"`
	Conditions   Terms           `json:"conditions"`
}

// Order is an order with its frozen snapshot and its derived status.
type Order struct {
	ID            int64      `json:"-"`
	Number        string     `json:"number"`
	ExternalID    string     `json:"external_id"`
	OrderedAt     time.Time  `json:"ordered_at"`
	CreatedAt     time.Time  `json:"created_at"`
	ContractModel string     `json:"contract_model"`
	Status        Status     `json:"status"`
	BindingAt     *time.Time `json:"binding_at"`
	Conflict      bool       `json:"conflict"`
	Snapshot      Snapshot   `json:"snapshot"`
	History       []Decision `json:"history,omitempty"`
	// CreatedBy names the API token that created the order; "" when it
	// was created otherwise (CLI) or before the name was recorded.
	CreatedBy string `json:"created_by,omitempty"`
}

// Parties returns the parties that must accept the order.
func (o *Order) Parties() []string {
	if o.ContractModel == ModelUV {
		return []string{PartyIntermediary, PartyProvider}
	}
	return []string{PartyProvider}
}

// Party returns the catalog entry of a party of the order.
func (o *Order) Party(name string) (Party, bool) {
	switch {
	case name == PartyProvider:
		return o.Snapshot.Provider, true
	case name == PartyIntermediary && o.Snapshot.Intermediary != nil:
		return *o.Snapshot.Intermediary, true
	}
	return Party{}, false
}

// ProvisioningDeadline is binding time plus the service's provisioning days.
func (o *Order) ProvisioningDeadline() *time.Time {
	if o.BindingAt == nil {
		return nil
	}
	t := o.BindingAt.AddDate(0, 0, o.Snapshot.Service.ProvisioningDays)
	return &t
}
