package mailflow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"mailflow/templates"
)

// Notifications rendered before the order had its number and id
// (PrepareOrderCreated, then Finish) are byte for byte those OrderCreated
// builds for the finished order: in German and English, DV and UV, and
// for a number longer than the placeholder.
func TestPreparedNotificationsAreIdentical(t *testing.T) {
	set, err := templates.New()
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := NewTokens([]string{"test-secret-0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)
	c, err := NewComposer(ComposerConfig{From: "DVC Bestellservice <bestellungen@example.org>", Coordinator: "koordinierung@example.org",
		Tokens: tokens, Templates: set, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	var seq int64
	c.ref = func() (int64, error) { seq++; return 0x1000 + seq, nil }

	cat := exampleCatalog(t)
	cases := []struct {
		file, number string
		id           int64
		parties      int
	}{
		{"order-dv.json", "2026-000123", 123, 1},
		{"order-uv.json", "2026-004711", 4711, 2},
		{"order-dv.json", "2026-1000000", 1000000, 1}, // longer than the placeholder: composed anew
	}
	for _, tc := range cases {
		t.Run(tc.file+"/"+tc.number, func(t *testing.T) {
			b, err := os.ReadFile("../examples/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			var req OrderRequest
			if err := json.Unmarshal(b, &req); err != nil {
				t.Fatal(err)
			}
			snap, err := BuildSnapshot(&req, cat)
			if err != nil {
				t.Fatal(err)
			}
			o := &Order{ExternalID: req.ExternalID, OrderedAt: *req.OrderedAt, CreatedAt: now,
				ContractModel: req.ContractModel, Status: StatusOpen, Snapshot: snap}

			seq = 0
			p, err := c.PrepareOrderCreated(o)
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.number) == numberLen {
				for i, b := range p.(*preparedNotifications).built {
					if b == nil {
						t.Errorf("message %d: a placeholder is not literally in the bytes built ahead", i)
					}
				}
			}
			o.Number, o.ID = tc.number, tc.id
			seq = 0 // the same ids again, should Finish compose anew
			got, err := p.Finish(o)
			if err != nil {
				t.Fatal(err)
			}
			seq = 0
			want, err := c.OrderCreated(o)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.parties || len(want) != tc.parties {
				t.Fatalf("%d prepared and %d composed messages, want %d", len(got), len(want), tc.parties)
			}
			for i := range want {
				g, w := got[i], want[i]
				if !bytes.Contains(g.Raw, []byte("Bestellnummer:   "+tc.number)) && !bytes.Contains(g.Raw, []byte("Order number:    "+tc.number)) {
					t.Errorf("%s: the order number is not in the message", w.Party)
				}
				if gr, wr := sameBoundaries(g.Raw), sameBoundaries(w.Raw); !bytes.Equal(gr, wr) {
					t.Errorf("%s: prepared message differs from the composed one:\n%s\n----\n%s", w.Party, gr, wr)
				}
				g.Raw, w.Raw = nil, nil
				if g.MessageID != w.MessageID || g.Subject != w.Subject || g.Ref != w.Ref || g.OrderID != tc.id || g.OrderNumber != tc.number || g.Party != w.Party {
					t.Errorf("%s: prepared %+v, composed %+v", w.Party, g, w)
				}
			}
		})
	}
}

// Placeholders are found where a quoted-printable soft line break splits
// them; one that an encoded header hides makes the count fall short, and
// Finish then builds anew.
func TestPlaceholdersLocate(t *testing.T) {
	ph := &placeholders{number: "abcdefghijk", token: "lmnopqrstuvwxyzabcdefghijk"}
	d := &draft{token: ph.token}
	d.r.Subject = "[Bestellung " + ph.number + "]"
	d.r.Text = "Bestellnummer: " + ph.number + "\n"
	b := &OutboxMessage{MessageID: ph.number + "." + ph.token + "@example.org"}
	head := "Subject: " + d.r.Subject + "\r\nMessage-ID: <" + b.MessageID + ">\r\nReply-To: <r+" + ph.token + "@example.org>\r\n\r\n"
	for _, tc := range []struct {
		name, raw, want string // want: raw with the values, "" for not located
	}{
		{"literal", head + "Bestellnummer: " + ph.number + "\r\n", "Bestellnummer: 2026-000123\r\n"},
		{"soft line break", head + "Bestellnummer: abcde=\r\nfghijk\r\n", "Bestellnummer: 2026-=\r\n000123\r\n"},
		{"encoded subject", strings.Replace(head, d.r.Subject, "=?utf-8?b?W0Jlc3RlbGx1bmcgYWJjZGVmZ2hpams=?=", 1) +
			"Bestellnummer: " + ph.number + "\r\n", ""},
	} {
		b.Raw = []byte(tc.raw)
		bd := ph.locate(d, b)
		if (bd != nil) != (tc.want != "") {
			t.Errorf("%s: located %v", tc.name, bd != nil)
			continue
		}
		if bd == nil {
			continue
		}
		put(b.Raw, bd.number, "2026-000123")
		put(b.Raw, bd.token, "0123456789abcdefghijklmnop")
		if !strings.HasSuffix(string(b.Raw), tc.want) || !strings.Contains(string(b.Raw), "r+0123456789abcdefghijklmnop@") {
			t.Errorf("%s: %q", tc.name, b.Raw)
		}
	}
}

var boundary = regexp.MustCompile(`boundary=([0-9a-f]+)`)

// sameBoundaries names the MIME boundaries of raw b1, b2, … in order:
// go-mail draws them at random for every message.
func sameBoundaries(raw []byte) []byte {
	for i, m := range boundary.FindAllSubmatch(raw, -1) {
		raw = bytes.ReplaceAll(raw, m[1], []byte(fmt.Sprintf("b%d", i+1)))
	}
	return raw
}
