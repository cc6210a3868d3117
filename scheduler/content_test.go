package scheduler_test

import (
	"context"
	"fmt"
	"net/mail"
	"strings"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/storage/storagetest"
)

func mustContain(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, s)
		}
	}
}

// billingMail returns the one billing reminder to addr, parsed.
func (e *env) billingMail(t *testing.T, addr string) (*mailflow.OutboxMessage, parsed) {
	t.Helper()
	var found []sent
	for _, m := range e.outbox(mailflow.KindBilling) {
		if len(m.Recipients) == 1 && m.Recipients[0] == addr {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d billing mails to %s, want 1", len(found), addr)
	}
	raw, err := e.store.OutboxRaw(e.ctx, found[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	return found[0].OutboxMessage, parseMail(t, raw)
}

// DV: the provider is reminded, in its language, to invoice the customer,
// with the customer's name, address, Leitweg-ID and customer number, the
// order number, the period, net, VAT and gross.
func TestBillingReminderContentDV(t *testing.T) {
	e := newEnv(t, "sqlite")
	o := e.bound("order-dv.json", "basis-monat", at(e.loc, 2026, 1, 15, 9, 0))
	e.billing(at(e.loc, 2026, 2, 1, 6, 0), false)
	m, p := e.billingMail(t, "bestellungen@dataport.example")
	if m.OrderID != o.ID || m.Party != mailflow.PartyProvider {
		t.Errorf("outbox row: order %d, party %s", m.OrderID, m.Party)
	}
	if want := "[Bestellung " + o.Number + "] Abrechnung: 1 Position in Rechnung stellen"; p.subject != want {
		t.Errorf("subject %q, want %q", p.subject, want)
	}
	if rt := p.header.Get("Reply-To"); !strings.Contains(rt, testCoordinator) {
		t.Errorf("Reply-To %q, want the coordinator", rt)
	}
	if p.header.Get("Auto-Submitted") != "auto-generated" {
		t.Errorf("Auto-Submitted %q", p.header.Get("Auto-Submitted"))
	}
	// 120000 ct × 17/31 = 65806.45 → 658,06; × 19 % = 125,03; 783,09.
	mustContain(t, "text part", p.text,
		"Bestellung "+o.Number+", Abrechnungszeitraum 2026-01: Verwaltungs-Mail, Basis (monatlich)",
		"Zeitraum:     15.01.2026 bis 31.01.2026, anteilig 17 von 31 Tagen",
		"Rechnung an:  Stadt Musterstadt, Markt 1, 12345 Musterstadt",
		"Kundennummer: K-1001",
		"Leitweg-ID:   04011000-12345-03",
		"Netto 658,06 EUR, USt 19 % 125,03 EUR, Brutto 783,09 EUR",
		"Summe (1 Position): Netto 658,06 EUR, USt 125,03 EUR, Brutto 783,09 EUR",
		"kaufmännisch gerundet", "XRechnung", "\n-- \n")
	mustContain(t, "HTML part", p.html, o.Number, "2026-01: 15.01.2026 bis 31.01.2026", "anteilig 17/31 Tage", "Stadt Musterstadt",
		"Markt 1, 12345 Musterstadt", "Kundennummer K-1001", "Leitweg-ID 04011000-12345-03", "658,06 EUR", "125,03 EUR", "783,09 EUR")
	if strings.Contains(p.text, "Umklappvertrag") {
		t.Error("a DV reminder explains UV")
	}
}

// UV: the provider is reminded to invoice the intermediary (its address
// and Leitweg-ID), the intermediary to invoice the customer; each in its
// own language.
func TestBillingReminderContentUV(t *testing.T) {
	e := newEnv(t, "sqlite")
	o := e.bound("order-uv.json", "", at(e.loc, 2026, 11, 21, 14, 30))
	e.billing(at(e.loc, 2027, 1, 1, 6, 0), false)

	// IT.NRW writes English. 45000 × 41/92 = 200,54; VAT 38,10; 238,64.
	_, p := e.billingMail(t, "orders@it.nrw.example")
	if want := "[Bestellung " + o.Number + "] Billing: 1 item to invoice"; p.subject != want {
		t.Errorf("subject %q, want %q", p.subject, want)
	}
	mustContain(t, "provider's text", p.text,
		"Order "+o.Number+", billing period 2026-Q4: Kollaboration, Team (per quarter)",
		"Period:           21 November 2026 to 31 December 2026, prorated 41 of 92 days",
		"Invoice to:       govdigital eG, Alt-Moabit 91, 10559 Berlin",
		"Leitweg-ID:       992-90009-96",
		"Net EUR 200.54, VAT 19% EUR 38.10, gross EUR 238.64",
		"the provider invoices the intermediary")
	if strings.Contains(p.text, "Landkreis") || strings.Contains(p.text, "Customer number") {
		t.Errorf("the provider's UV reminder names the customer:\n%s", p.text)
	}

	_, p = e.billingMail(t, "auftrag@govdigital.example")
	mustContain(t, "intermediary's text", p.text,
		"Bitte stellen Sie diese Beträge\nals Intermediär dem Kunden in Rechnung.",
		"Bestellung "+o.Number+", Abrechnungszeitraum 2026-Q4: Kollaboration, Team (vierteljährlich)",
		"Rechnung an:  Landkreis Beispielkreis, Schlossplatz 3, 90403 Nürnberg",
		"Kundennummer: K-2002",
		"Leitweg-ID:   09564000-NUE0001-49",
		"Netto 200,54 EUR, USt 19 % 38,10 EUR, Brutto 238,64 EUR")
}

// A party with several orders gets one mail listing them all, with totals;
// the subject carries no single order's tag.
func TestBillingReminderSeveralOrders(t *testing.T) {
	e := newEnv(t, "sqlite")
	a := e.bound("order-dv.json", "basis-monat", at(e.loc, 2026, 1, 1, 9, 0))
	b := e.bound("order-dv.json", "einrichtung", at(e.loc, 2026, 1, 20, 9, 0))
	e.billing(at(e.loc, 2026, 3, 1, 6, 0), false)
	m, p := e.billingMail(t, "bestellungen@dataport.example")
	if m.OrderID != 0 || p.subject != "Abrechnung: 3 Positionen in Rechnung stellen" {
		t.Errorf("order %d, subject %q", m.OrderID, p.subject)
	}
	mustContain(t, "text", p.text,
		"Bestellung "+a.Number+", Abrechnungszeitraum 2026-01:",
		"Bestellung "+a.Number+", Abrechnungszeitraum 2026-02:",
		"Bestellung "+b.Number+", Abrechnungszeitraum einmalig: Verwaltungs-Mail, Einrichtung (einmalig)",
		"Zeitraum:     20.01.2026 bis 20.01.2026\n",
		// 2 × 1.200,00 + 500,00 = 2.900,00; VAT 551,00.
		"Summe (3 Positionen): Netto 2.900,00 EUR, USt 551,00 EUR, Brutto 3.451,00 EUR")
}

// The reminder carries the notification's reply token: a party that
// answers the reminder with BESTÄTIGT decides the order, and the
// reminders stop.
func TestReminderReplyDecides(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			t0 := at(e.loc, 2026, 11, 23, 10, 0)
			e.setClock(t0)
			o := e.order("order-dv.json", "")
			e.checkReminders(t, t0.Add(48*time.Hour), []string{o.Number + "/provider"}, nil)
			rem := e.outbox(mailflow.KindReminder)
			if len(rem) != 1 {
				t.Fatalf("%d reminders", len(rem))
			}
			raw, err := e.store.OutboxRaw(e.ctx, rem[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			p := parseMail(t, raw)
			if want := "[Bestellung " + o.Number + "] Erinnerung: Ihre Entscheidung zur Bestellung steht aus"; p.subject != want {
				t.Errorf("subject %q, want %q", p.subject, want)
			}
			mustContain(t, "reminder text", p.text, "am 23.11.2026 zugesandt und wartet\nseit 2 Tagen auf Ihre Entscheidung als Anbieter", "als Anbieter",
				"Bestellung bestätigen: <mailto:bestellungen+", "Bestellung ablehnen:   <mailto:bestellungen+",
				"Leitweg-ID:      04011000-12345-03", "SHA-256: "+o.Snapshot.Terms.SHA256)
			replyTo, err := mail.ParseAddress(p.header.Get("Reply-To"))
			if err != nil || !strings.HasPrefix(replyTo.Address, "bestellungen+") {
				t.Fatalf("Reply-To %q: %v", p.header.Get("Reply-To"), err)
			}

			// Dataport answers the reminder.
			inbox := &mailflow.Inbox{Flow: e.flow, Store: e.store, Tokens: e.tokens}
			reply := fmt.Sprintf("From: Dataport <bestellungen@dataport.example>\r\nTo: %s\r\nSubject: Re: %s\r\n"+
				"Message-ID: <reply-1@dataport.example>\r\nIn-Reply-To: <%s>\r\nDate: Thu, 26 Nov 2026 09:00:00 +0100\r\n"+
				"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"+
				"BESTÄTIGT\r\n\r\nMit freundlichen Grüßen\r\n", replyTo.Address, p.subject, rem[0].MessageID)
			e.setClock(t0.Add(50 * time.Hour))
			if _, err := inbox.Process(context.Background(), mailflow.FetchedMessage{Raw: []byte(reply), Size: int64(len(reply))}); err != nil {
				t.Fatal(err)
			}
			got, err := e.store.Order(e.ctx, o.Number)
			if err != nil || got.Status != mailflow.StatusOrdered {
				t.Fatalf("after the reply the order is %v (%v), want ordered", got.Status, err)
			}
			e.checkReminders(t, t0.Add(200*time.Hour), nil, nil)
		})
	}
}

// The escalation tells the coordinator who has not decided, since when,
// and what was declared so far.
func TestEscalationContent(t *testing.T) {
	e := newEnv(t, "sqlite")
	t0 := at(e.loc, 2026, 11, 16, 9, 0)
	e.setClock(t0)
	o := e.order("order-uv.json", "")
	e.decide(o, mailflow.PartyIntermediary, mailflow.IntentAccept, t0.Add(time.Hour))
	e.decide(o, mailflow.PartyProvider, mailflow.IntentReview, t0.Add(2*time.Hour))
	e.checkReminders(t, t0.Add(6*24*time.Hour), []string{o.Number + "/provider"}, []string{o.Number + "/provider"})
	alerts := e.outbox(mailflow.KindAlert)
	if len(alerts) != 1 || alerts[0].Recipients[0] != testCoordinator || alerts[0].OrderNumber != o.Number {
		t.Fatalf("escalations: %+v", alerts)
	}
	mustContain(t, "escalation", alerts[0].Text,
		"[Bestellung "+o.Number+"] Überfällig: Anbieter hat seit 6 Tagen nicht entschieden",
		"IT.NRW (Anbieter, orders@it.nrw.example) hat die Bestellung seit\n6 Tagen weder bestätigt noch abgelehnt",
		"Status:      In Prüfung durch Anbieter (UV)",
		"Intermediär: Bestätigung (verbindliche Annahme)", "Anbieter: In Prüfung")
}
