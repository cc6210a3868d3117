package mailflow_test

import (
	"context"
	"slices"
	"testing"

	"mailflow/mailflow"
	"mailflow/storage/storagetest"
)

// TestAckOnlyToOwnAddress: a party that allows a whole domain as reply
// sender gets its acknowledgements at its own registered address, never at
// whichever address of that domain wrote. The answer is delivered over
// SMTP and the envelope recipient is checked.
func TestAckOnlyToOwnAddress(t *testing.T) {
	tests := []struct {
		name, model, party, from, want string
	}{
		// dataport registers bestellungen@dataport.example and @dataport.example.
		{"exact registered sender", "dv", mailflow.PartyProvider, "bestellungen@dataport.example", "bestellungen@dataport.example"},
		{"domain sender gets no ack", "dv", mailflow.PartyProvider, "anna@dataport.example", "bestellungen@dataport.example"},
		// IT.NRW registers only @it.nrw.example.
		{"domain-only party", "uv", mailflow.PartyProvider, "someone@it.nrw.example", "orders@it.nrw.example"},
	}
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			e.start(t)
			inbox := &mailflow.Inbox{Flow: e.flow, Store: e.store, Tokens: e.tokens, OnEnqueue: e.sender.Wake}
			ctx := context.Background()
			for _, tt := range tests {
				o := e.createOrder(t, tt.model)
				addr := "bestellungen+" + e.tokens.Sign(mailflow.Token{OrderID: o.ID, Party: tt.party, NotificationID: 7}) + "@example.org"
				m := rmail{from: tt.from, to: addr, subject: "AW: [Bestellung " + o.Number + "]", body: "IN BEARBEITUNG\n"}
				if _, err := inbox.Process(ctx, mailflow.FetchedMessage{Raw: m.raw()}); err != nil {
					t.Fatal(err)
				}
				rows := e.waitOutbox(t)
				delivered := e.waitMessages(t, len(rows))
				var ack *mailflow.OutboxMessage
				for _, r := range rows {
					if r.OrderID == o.ID && r.Kind == mailflow.KindAck {
						ack = r
					}
				}
				if ack == nil {
					t.Fatalf("%s: no acknowledgement", tt.name)
				}
				if !slices.Equal(ack.Recipients, []string{tt.want}) {
					t.Errorf("%s: ack to %v, want %s", tt.name, ack.Recipients, tt.want)
				}
				for _, d := range delivered {
					if slices.Contains(d.To, tt.from) && tt.from != tt.want {
						t.Errorf("%s: a message was delivered to the unregistered sender %s", tt.name, tt.from)
					}
				}
			}
		})
	}
}
