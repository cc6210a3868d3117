// Package mailflow holds the domain of the order loop: catalog, orders,
// statuses and decisions, reply tokens, notification composition, reply
// classification, the IMAP watcher and the outbox sender.
package mailflow

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// Catalog is what the portal offers: providers, intermediaries, general
// terms and services. It is imported as a whole (PUT /api/v1/catalog).
type Catalog struct {
	Providers      []Provider     `json:"providers"`
	Intermediaries []Intermediary `json:"intermediaries"`
	Terms          []Terms        `json:"terms"`
	Services       []Service      `json:"services"`
	// Revision is the store's count of imports when it read the catalog,
	// 0 where it keeps none (Store.Catalog, Tx.CreateOrder).
	Revision int64 `json:"-"`
}

// Party is what providers and intermediaries share: who gets the
// notification and who may answer for them.
type Party struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Email        string   `json:"email"`
	ReplySenders []string `json:"reply_senders"`
	Language     string   `json:"language,omitempty"`
	Street       string   `json:"street,omitempty"`
	PostalCode   string   `json:"postal_code,omitempty"`
	City         string   `json:"city,omitempty"`
	LeitwegID    string   `json:"leitweg_id,omitempty"`
	// Seller is what the party issues e-invoices with; nil in catalogs
	// from before e-invoicing.
	Seller *Seller `json:"seller,omitempty"`
	// SigninDomains lets anyone at a "@domain" entry of ReplySenders ask
	// for a sign-in link to the status page (MaySignIn). Off by default:
	// a domain entry lets a colleague answer an order, but seeing every
	// order of the organization is a decision the catalog makes
	// explicitly.
	SigninDomains bool `json:"signin_domains,omitempty"`
}

// Provider runs a service and confirms or rejects orders for it.
type Provider = Party

// Intermediary is the third contract party in the UV model.
type Intermediary = Party

// OwnAddress reports whether addr is one the party registered by itself:
// its Email or an exact (not "@domain") reply sender. Answers go only to
// such an address: a domain entry lets anyone at that domain declare, but
// must not let a stranger there receive the order's mail.
func (p Party) OwnAddress(addr string) bool {
	addr = strings.ToLower(strings.TrimSpace(addr))
	if addr == "" || !strings.Contains(addr, "@") || strings.HasPrefix(addr, "@") {
		return false
	}
	if strings.EqualFold(strings.TrimSpace(p.Email), addr) {
		return true
	}
	for _, s := range p.ReplySenders {
		if strings.EqualFold(strings.TrimSpace(s), addr) {
			return true
		}
	}
	return false
}

// MaySignIn reports whether addr may sign in to the status page for the
// party: an address the party registered by itself (OwnAddress) or, when
// the catalog sets SigninDomains, any address at one of its "@domain"
// reply senders.
func (p Party) MaySignIn(addr string) bool {
	if p.OwnAddress(addr) {
		return true
	}
	if !p.SigninDomains {
		return false
	}
	addr = strings.ToLower(strings.TrimSpace(addr))
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return false
	}
	for _, s := range p.ReplySenders {
		s = strings.ToLower(strings.TrimSpace(s))
		if strings.HasPrefix(s, "@") && addr[at:] == s {
			return true
		}
	}
	return false
}

// MaySend reports whether addr (an addr-spec) is registered to answer for
// the party: an exact address or a domain entry written as "@domain".
func (p Party) MaySend(addr string) bool {
	addr = strings.ToLower(strings.TrimSpace(addr))
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return false
	}
	senders := p.ReplySenders
	if len(senders) == 0 {
		senders = []string{p.Email}
	}
	for _, s := range senders {
		s = strings.ToLower(strings.TrimSpace(s))
		if s == "" {
			continue
		}
		if strings.HasPrefix(s, "@") {
			if addr[at:] == s {
				return true
			}
		} else if s == addr {
			return true
		}
	}
	return false
}

// Terms is one version of a contract text: the general terms (AGB) or a
// service's specific conditions.
type Terms struct {
	ID         string `json:"id,omitempty"`
	Title      string `json:"title,omitempty"`
	Version    string `json:"version"`
	ValidFrom  Date   `json:"valid_from"`
	ValidUntil *Date  `json:"valid_until"`
	Text       string `json:"text"`
	SHA256     string `json:"sha256,omitempty"`
}

// ValidAt reports whether the terms apply at t; valid_until is inclusive
// (the last day on which the version applies).
func (t Terms) ValidAt(tm time.Time) bool {
	d := DateOf(tm)
	if d.Before(t.ValidFrom) {
		return false
	}
	return t.ValidUntil == nil || !t.ValidUntil.Before(d)
}

// TextSHA256 is the hex SHA-256 of the text, the fingerprint that makes a
// version identifiable in a binding order.
func TextSHA256(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// Service is one orderable product of a provider.
type Service struct {
	ID               string     `json:"id"`
	Provider         string     `json:"provider"`
	Name             string     `json:"name"`
	Description      string     `json:"description"`
	ProvisioningDays int        `json:"provisioning_days"`
	Supplier         string     `json:"supplier,omitempty"`
	MaturityLevel    int        `json:"maturity_level,omitempty"`
	Conditions       []Terms    `json:"conditions"`
	Prices           []Price    `json:"prices"`
	Properties       []Property `json:"properties"`
}

// Price is one plan of a service.
type Price struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	AmountCents int64   `json:"amount_cents"`
	Currency    string  `json:"currency"`
	Interval    string  `json:"interval"`
	VATPercent  float64 `json:"vat_percent"`
}

// Billing intervals of a price.
const (
	IntervalOnce      = "once"
	IntervalMonthly   = "monthly"
	IntervalQuarterly = "quarterly"
	IntervalYearly    = "yearly"
)

// Property is one configurable property of a service.
type Property struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"` // string, integer, boolean, enum
	Values   []string `json:"values,omitempty"`
	Required bool     `json:"required,omitempty"`
	Min      *int64   `json:"min,omitempty"`
	Max      *int64   `json:"max,omitempty"`
}

// Date is a calendar date without time zone, written as YYYY-MM-DD.
type Date struct{ time.Time }

// DateOf returns the calendar date of t in t's own location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
}

// ParseDate parses YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	return Date{t}, err
}

// String returns YYYY-MM-DD.
func (d Date) String() string { return d.Format(time.DateOnly) }

// Before reports whether d is a day before e.
func (d Date) Before(e Date) bool { return d.Time.Before(e.Time) }

// MarshalJSON writes YYYY-MM-DD.
func (d Date) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// UnmarshalJSON reads YYYY-MM-DD.
func (d *Date) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return err
	}
	d.Time = t
	return nil
}
