package evidence_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mailflow/internal/exampletest"
	"mailflow/mailflow"
	"mailflow/mailflow/compose"
	"mailflow/mailflow/evidence"
	"mailflow/storage"
	"mailflow/storage/storagetest"
	"mailflow/templates"
)

const testSecret = "test-secret-0123456789abcdef"

// env is a store with the example catalog, the real composer, flow and
// inbox, and an exporter with a fresh key.
type env struct {
	store  *storage.Store
	flow   *mailflow.Flow
	inbox  *mailflow.Inbox
	tokens *mailflow.Tokens
	exp    *evidence.Exporter
	pub    ed25519.PublicKey
	uid    atomic.Uint32
	// raws are the bytes each received message was processed with, by
	// Message-ID: what the bundle must hold byte for byte.
	raws map[string][]byte
}

var externalSeq atomic.Int64

func newEnv(t testing.TB, driver string) *env {
	t.Helper()
	st := storagetest.Open(t, driver)
	if err := st.ImportCatalog(context.Background(), exampletest.Catalog(t)); err != nil {
		t.Fatal(err)
	}
	tokens, err := mailflow.NewTokens([]string{testSecret})
	if err != nil {
		t.Fatal(err)
	}
	set, err := templates.New()
	if err != nil {
		t.Fatal(err)
	}
	composer, err := compose.New(compose.Config{From: "DVC Bestellservice <bestellungen@example.org>",
		ReplyAddress: "bestellungen@example.org", Coordinator: "koordinierung@example.org", Tokens: tokens, Templates: set})
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := evidence.LoadOrCreateKey(filepath.Join(t.TempDir(), "evidence.key"))
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	e := &env{store: st, tokens: tokens, pub: key.Public().(ed25519.PublicKey), raws: map[string][]byte{}}
	e.flow = &mailflow.Flow{Store: st, Notifier: composer}
	e.inbox = &mailflow.Inbox{Flow: e.flow, Store: st, Tokens: tokens, Alerter: composer, Log: quiet,
		Config: mailflow.InboxConfig{TrustedAuthServID: "mx.example.org"}}
	e.exp = &evidence.Exporter{Store: st, Key: key, Alerter: composer, Version: "test", Log: quiet}
	return e
}

func (e *env) order(t testing.TB, name string) *mailflow.Order {
	t.Helper()
	req := exampletest.Request(t, name)
	req.ExternalID = fmt.Sprintf("%s-%d", req.ExternalID, externalSeq.Add(1))
	o, _, err := e.flow.CreateOrder(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// receive processes a mail from `from` to the party's reply address, with
// extra header lines, as the IMAP watcher would hand it over.
func (e *env) receive(t testing.TB, o *mailflow.Order, party, from, extra, body string) {
	t.Helper()
	n := e.uid.Add(1)
	id := fmt.Sprintf("<%d.%d@client.example>", n, time.Now().UnixNano())
	to := "bestellungen+" + e.tokens.Sign(mailflow.Token{OrderID: o.ID, Party: party, NotificationID: 1}) + "@example.org"
	raw := []byte("Authentication-Results: mx.example.org; dmarc=pass header.from=" + from[strings.IndexByte(from, '@')+1:] + "\r\n" +
		"From: " + from + "\r\nTo: " + to + "\r\nSubject: Re: [Bestellung " + o.Number + "]\r\n" +
		"Date: Fri, 27 Nov 2026 10:00:00 +0100\r\nMessage-ID: " + id + "\r\n" + extra +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
		strings.ReplaceAll(body, "\n", "\r\n"))
	if _, err := e.inbox.Process(context.Background(), mailflow.FetchedMessage{Mailbox: "INBOX", UIDValidity: 1, UID: n, Size: int64(len(raw)), Raw: raw}); err != nil {
		t.Fatal(err)
	}
	e.raws[strings.Trim(id, "<>")] = raw
}

func (e *env) export(t testing.TB, number string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := e.exp.Export(context.Background(), number, "test", &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// dvReviewedThenAccepted is a DV order whose provider answered IN
// PRÜFUNG, sent an out-of-office and a mail without a keyword (held for
// review), then BESTÄTIGT.
func dvReviewedThenAccepted(t testing.TB, e *env) *mailflow.Order {
	o := e.order(t, "order-dv.json")
	from := "bestellungen@dataport.example"
	e.receive(t, o, mailflow.PartyProvider, from, "", "IN PRÜFUNG\n\nWir prüfen die Bestellung.")
	e.receive(t, o, mailflow.PartyProvider, from, "Auto-Submitted: auto-replied\r\n", "Ich bin bis Montag nicht im Büro.")
	e.receive(t, o, mailflow.PartyProvider, from, "", "Danke, wir melden uns.")
	e.receive(t, o, mailflow.PartyProvider, from, "", "BESTÄTIGT\n\nMit freundlichen Grüßen")
	return o
}

// uvRejectedByProvider is a UV order the intermediary accepted and the
// provider rejected with a reason; a forged acceptance in the
// intermediary's name went to review in between.
func uvRejectedByProvider(t testing.TB, e *env) *mailflow.Order {
	o := e.order(t, "order-uv.json")
	e.receive(t, o, mailflow.PartyIntermediary, "auftrag@govdigital.example", "", "BESTÄTIGT")
	e.receive(t, o, mailflow.PartyIntermediary, "mallory@evil.example", "", "BESTÄTIGT")
	e.receive(t, o, mailflow.PartyProvider, "orders@it.nrw.example", "", "ABGELEHNT: Kapazität im Rechenzentrum erschöpft")
	return o
}

// unzip reads every file of a bundle.
func unzip(t testing.TB, bundle []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(bundle), int64(len(bundle)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		out[f.Name] = b
	}
	return out
}

// rezip writes files as a new ZIP, in name order.
func rezip(t testing.TB, files map[string][]byte) []byte {
	t.Helper()
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(files[n])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func verify(t testing.TB, bundle []byte, key ed25519.PublicKey) *evidence.Result {
	t.Helper()
	res, err := evidence.Verify(bytes.NewReader(bundle), int64(len(bundle)), key)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

type mailEntry struct {
	File        string              `json:"file"`
	Direction   string              `json:"direction"`
	ID          int64               `json:"id"`
	MessageID   string              `json:"message_id"`
	SHA256      string              `json:"sha256"`
	Verdict     string              `json:"verdict"`
	NeedsReview bool                `json:"needs_review"`
	Kind        string              `json:"kind"`
	Auth        *mailflow.AuthCheck `json:"auth"`
}

type decisionEntry struct {
	Party  string              `json:"party"`
	Intent string              `json:"intent"`
	Reason string              `json:"reason"`
	Source string              `json:"source"`
	Actor  string              `json:"actor"`
	Mail   string              `json:"mail"`
	Auth   *mailflow.AuthCheck `json:"auth"`
	Effect string              `json:"effect"`
}

func decode[T any](t testing.TB, files map[string][]byte, name string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(files[name], &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// checkBundle checks what every bundle must hold: each received mail
// byte for byte as processed, each sent one as stored in the outbox, the
// terms with the hashes the order recorded, and the timeline's statuses.
func checkBundle(t *testing.T, e *env, o *mailflow.Order, files map[string][]byte, statuses []mailflow.Status) []decisionEntry {
	t.Helper()
	ctx := context.Background()
	mails := decode[[]mailEntry](t, files, "mails.json")
	var in, out int
	for _, m := range mails {
		got, ok := files[m.File]
		if !ok {
			t.Errorf("mails.json names %q, not in the bundle", m.File)
			continue
		}
		var want []byte
		if m.Direction == "in" {
			in++
			want = e.raws[m.MessageID]
		} else {
			out++
			raw, err := e.store.OutboxRaw(ctx, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			want = raw
		}
		if want == nil || !bytes.Equal(got, want) {
			t.Errorf("%s (%s) differs from the mail as %s (%d bytes, want %d)", m.File, m.MessageID, map[string]string{"in": "received", "out": "stored"}[m.Direction], len(got), len(want))
		}
	}
	if in != len(e.raws) {
		t.Errorf("bundle holds %d received mails, %d were received", in, len(e.raws))
	}
	msgs, err := e.store.OrderMessages(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if out != len(msgs) || out == 0 {
		t.Errorf("bundle holds %d sent mails, the outbox %d", out, len(msgs))
	}

	snap := decode[struct {
		Number   string            `json:"number"`
		Status   mailflow.Status   `json:"status"`
		Snapshot mailflow.Snapshot `json:"snapshot"`
	}](t, files, "order.json")
	if snap.Number != o.Number || snap.Snapshot.Customer.LeitwegID != o.Snapshot.Customer.LeitwegID || snap.Snapshot.Price != o.Snapshot.Price {
		t.Errorf("order.json does not hold the order's snapshot: %+v", snap)
	}
	if snap.Status != statuses[len(statuses)-1] {
		t.Errorf("order.json status %s, want %s", snap.Status, statuses[len(statuses)-1])
	}
	terms := decode[[]struct {
		Kind, SHA256, File string
	}](t, files, "terms.json")
	if len(terms) != 2 {
		t.Fatalf("terms.json lists %d documents, want AGB and conditions", len(terms))
	}
	for i, want := range []mailflow.Terms{o.Snapshot.Terms, o.Snapshot.Conditions} {
		if terms[i].SHA256 != want.SHA256 || string(files[terms[i].File]) != want.Text || mailflow.TextSHA256(string(files[terms[i].File])) != want.SHA256 {
			t.Errorf("%s: the text or SHA-256 is not the order's %s %s", terms[i].File, terms[i].Kind, want.Version)
		}
	}
	timeline := decode[[]struct {
		Status mailflow.Status `json:"status"`
	}](t, files, "timeline.json")
	var got []mailflow.Status
	for _, s := range timeline {
		got = append(got, s.Status)
	}
	if fmt.Sprint(got) != fmt.Sprint(statuses) {
		t.Errorf("timeline %v, want %v", got, statuses)
	}
	for _, name := range []string{"README.txt", "manifest.json", "manifest.sig"} {
		if len(files[name]) == 0 {
			t.Errorf("%s missing or empty", name)
		}
	}
	if !strings.Contains(string(files["README.txt"]), "Nachweis") || !strings.Contains(string(files["README.txt"]), "Evidence of an order") {
		t.Error("README.txt is not in German and English")
	}
	return decode[[]decisionEntry](t, files, "decisions.json")
}

// checkTampering changes a bundle in each way the issue names and
// expects verify to fail naming the file, and to pass untouched.
func checkTampering(t *testing.T, e *env, bundle []byte) {
	if res := verify(t, bundle, e.pub); !res.Valid() {
		t.Fatalf("untouched bundle fails: %v", res.Problems)
	}
	if res := verify(t, bundle, nil); !res.Valid() || !res.KeyFromBundle {
		t.Fatalf("untouched bundle without -key: valid=%v problems=%v", res.Valid(), res.Problems)
	}
	files := unzip(t, bundle)
	var eml string
	for name := range files {
		if strings.HasSuffix(name, ".eml") && (eml == "" || name < eml) {
			eml = name
		}
	}
	flip := func(name string) func(map[string][]byte) {
		return func(f map[string][]byte) {
			b := bytes.Clone(f[name])
			b[len(b)/2] ^= 0x01
			f[name] = b
		}
	}
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, c := range []struct {
		name   string
		change func(map[string][]byte)
		key    ed25519.PublicKey
		file   string
		what   string
	}{
		{"one byte of an .eml", flip(eml), e.pub, eml, "changed"},
		{"one byte of the snapshot", flip("order.json"), e.pub, "order.json", "changed"},
		{"one byte of the manifest", flip("manifest.json"), e.pub, "manifest.json", ""},
		{"a file removed", func(f map[string][]byte) { delete(f, eml) }, e.pub, eml, "missing"},
		{"a file added", func(f map[string][]byte) { f["mails/9999-in-1.eml"] = []byte("From: x\r\n\r\nforged") }, e.pub, "mails/9999-in-1.eml", "added"},
		{"the key of another installation", func(map[string][]byte) {}, otherPub, "manifest.json", "not the expected"},
	} {
		t.Run(c.name, func(t *testing.T) {
			changed := map[string][]byte{}
			for k, v := range files {
				changed[k] = v
			}
			c.change(changed)
			res := verify(t, rezip(t, changed), c.key)
			if res.Valid() {
				t.Fatal("verify passes")
			}
			found := false
			for _, p := range res.Problems {
				if p.File == c.file && strings.Contains(p.What, c.what) {
					found = true
				} else if p.File != c.file {
					t.Errorf("also reported: %s", p)
				}
			}
			if !found {
				t.Errorf("problems %v do not name %s (%s)", res.Problems, c.file, c.what)
			}
		})
	}
}

func TestBundleDVReviewedThenAccepted(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			o := dvReviewedThenAccepted(t, e)
			bundle := e.export(t, o.Number)
			files := unzip(t, bundle)
			decisions := checkBundle(t, e, o, files, []mailflow.Status{mailflow.StatusOpen, mailflow.StatusReviewProviderDV, mailflow.StatusOrdered})
			if len(decisions) != 2 {
				t.Fatalf("decisions.json lists %d decisions, want review and accept", len(decisions))
			}
			for i, intent := range []string{"review", "accept"} {
				d := decisions[i]
				if d.Intent != intent || d.Source != "email" || d.Actor != "bestellungen@dataport.example" || d.Effect != "applied" || d.Mail == "" {
					t.Errorf("decision %d: %+v", i, d)
				}
				if d.Auth == nil || d.Auth.Match != "reply token" || d.Auth.Token != "valid" || d.Auth.Sender != "registered for the provider" || d.Auth.DMARC != "pass" ||
					d.Auth.Results != "mx.example.org; dmarc=pass header.from=dataport.example" {
					t.Errorf("decision %d: authentication verdict %+v", i, d.Auth)
				}
			}
			var review, auto bool
			for _, m := range decode[[]mailEntry](t, files, "mails.json") {
				review = review || m.Verdict == mailflow.VerdictNoIntent && m.NeedsReview
				auto = auto || m.Verdict == mailflow.VerdictAutoReply
			}
			if !review || !auto {
				t.Errorf("mails.json lacks the message in review (%v) or the auto-reply (%v)", review, auto)
			}
			checkTampering(t, e, bundle)
		})
	}
}

func TestBundleUVRejectedByProvider(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			o := uvRejectedByProvider(t, e)
			bundle := e.export(t, o.Number)
			files := unzip(t, bundle)
			decisions := checkBundle(t, e, o, files, []mailflow.Status{mailflow.StatusOpen, mailflow.StatusWorkingIntermediary, mailflow.StatusRejectedProviderUV})
			if len(decisions) != 2 || decisions[1].Party != "provider" || decisions[1].Intent != "reject" ||
				decisions[1].Reason != "Kapazität im Rechenzentrum erschöpft" || decisions[1].Auth == nil || decisions[1].Auth.Sender != "registered for the provider" {
				t.Fatalf("decisions.json: %+v", decisions)
			}
			var rejection, forged bool
			for _, m := range decode[[]mailEntry](t, files, "mails.json") {
				rejection = rejection || m.Kind == mailflow.KindRejection
				forged = forged || m.Verdict == mailflow.VerdictUnauthenticated && m.NeedsReview &&
					m.Auth != nil && m.Auth.Sender == "not registered for the intermediary"
			}
			if !rejection {
				t.Error("the rejection sent to the customer and intermediary is not in the bundle")
			}
			if !forged {
				t.Error("the forged acceptance is not in the bundle as in review with its failed sender check")
			}
			checkTampering(t, e, bundle)
		})
	}
}

// A mail changed in the database after it was stored stops the export
// with an error naming it, and the coordinator is alerted; so does a
// missing one. A large received mail (stored in pieces) is checked too.
func TestExportFailsOnAlteredMail(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, driver)
			o := dvReviewedThenAccepted(t, e)
			big := strings.Repeat("Anlage: Leistungsbeschreibung, Zeile für Zeile.\n", 50000) // 2.4 MB: in pieces
			e.receive(t, o, mailflow.PartyProvider, "bestellungen@dataport.example", "", "Danke.\n\n"+big)
			checkBundle(t, e, o, unzip(t, e.export(t, o.Number)), []mailflow.Status{mailflow.StatusOpen, mailflow.StatusReviewProviderDV, mailflow.StatusOrdered})

			mails, err := e.store.OrderMails(ctx, o.ID)
			if err != nil {
				t.Fatal(err)
			}
			var small, large, sent mailflow.StoredMail
			for _, m := range mails {
				switch {
				case m.Inbound != nil && m.Inbound.Size > 1<<20:
					large = m
				case m.Inbound != nil && small.Inbound == nil:
					small = m
				case m.Outbound != nil && sent.Outbound == nil:
					sent = m
				}
			}
			db := e.store.DB()
			for _, c := range []struct {
				name, what string
				alter      string
				args       []any
				undo       string
				undoArgs   []any
			}{
				{"received", fmt.Sprintf("received message %d", small.Inbound.ID),
					`UPDATE inbound SET raw = ? WHERE id = ?`, []any{bytes.Replace(e.raws[small.Inbound.MessageID], []byte("IN PRÜFUNG"), []byte("BESTÄTIGT"), 1), small.Inbound.ID},
					`UPDATE inbound SET raw = ? WHERE id = ?`, []any{e.raws[small.Inbound.MessageID], small.Inbound.ID}},
				{"received in pieces", fmt.Sprintf("received message %d", large.Inbound.ID),
					`UPDATE inbound_raw SET chunk = ? WHERE inbound_id = ? AND seq = 1`, []any{bytes.Repeat([]byte("x"), 1<<20), large.Inbound.ID}, "", nil},
			} {
				t.Run(c.name, func(t *testing.T) {
					if _, err := db.Exec(db.Rebind(c.alter), c.args...); err != nil {
						t.Fatal(err)
					}
					before := countAlerts(t, e, o)
					_, err := e.exp.Export(ctx, o.Number, "test", io.Discard)
					var ierr *evidence.IntegrityError
					if !errors.As(err, &ierr) || !strings.Contains(err.Error(), c.what) {
						t.Fatalf("export: %v, want an integrity error naming %q", err, c.what)
					}
					if countAlerts(t, e, o) != before+1 {
						t.Error("no alert to the coordinator")
					}
					if c.undo != "" {
						if _, err := db.Exec(db.Rebind(c.undo), c.undoArgs...); err != nil {
							t.Fatal(err)
						}
					}
				})
			}
			// The sent mail; earlier changes stay, so repair the pieces first.
			if _, err := db.Exec(db.Rebind(`DELETE FROM inbound_raw WHERE inbound_id = ?`), large.Inbound.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(db.Rebind(`UPDATE inbound SET order_id = NULL WHERE id = ?`), large.Inbound.ID); err != nil {
				t.Fatal(err)
			}
			raw, _ := e.store.OutboxRaw(ctx, sent.Outbound.ID)
			if _, err := db.Exec(db.Rebind(`UPDATE outbox_raw SET raw = ? WHERE outbox_id = ?`), append(bytes.Clone(raw), ' '), sent.Outbound.ID); err != nil {
				t.Fatal(err)
			}
			_, err = e.exp.Export(ctx, o.Number, "test", io.Discard)
			if want := fmt.Sprintf("sent message %d", sent.Outbound.ID); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("export with an altered sent mail: %v, want an error naming %q", err, want)
			}
			if _, err := db.Exec(db.Rebind(`DELETE FROM outbox_raw WHERE outbox_id = ?`), sent.Outbound.ID); err != nil {
				t.Fatal(err)
			}
			_, err = e.exp.Export(ctx, o.Number, "test", io.Discard)
			if err == nil || !strings.Contains(err.Error(), "missing") {
				t.Fatalf("export with a deleted sent mail: %v, want an error saying it is missing", err)
			}
		})
	}
}

func countAlerts(t testing.TB, e *env, o *mailflow.Order) int {
	t.Helper()
	msgs, err := e.store.OrderMessages(context.Background(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range msgs {
		if m.Kind == mailflow.KindAlert && strings.Contains(m.Subject, "Beweismittel") {
			n++
		}
	}
	return n
}

// After the retention job removed the mails' bytes the bundle still lists
// each mail with its recorded hash and when its bytes were deleted, holds
// no .eml, and verifies: deleted by retention is no tampering.
func TestBundleAfterRawMailRetention(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			o := uvRejectedByProvider(t, e)
			rep, err := e.store.DeleteExpired(context.Background(), mailflow.RetentionCutoffs{RawMail: time.Now().Add(time.Hour)})
			if err != nil || rep.InboundRaw == 0 {
				t.Fatalf("retention: %+v %v", rep, err)
			}
			bundle := e.export(t, o.Number)
			if res := verify(t, bundle, e.pub); !res.Valid() {
				t.Fatalf("bundle fails: %v", res.Problems)
			}
			files := unzip(t, bundle)
			var mails []struct {
				File         string     `json:"file"`
				SHA256       string     `json:"sha256"`
				Status       string     `json:"status"`
				RawDeletedAt *time.Time `json:"raw_deleted_at"`
			}
			if err := json.Unmarshal(files["mails.json"], &mails); err != nil {
				t.Fatal(err)
			}
			deleted := 0
			for _, m := range mails {
				if m.RawDeletedAt != nil {
					deleted++
					if m.File != "" || m.SHA256 == "" {
						t.Errorf("a deleted mail: file %q, hash %q", m.File, m.SHA256)
					}
				}
			}
			if deleted != int(rep.InboundRaw+rep.OutboundRaw) {
				t.Errorf("mails.json marks %d mails deleted, retention deleted %d", deleted, rep.InboundRaw+rep.OutboundRaw)
			}
		})
	}
}

// A message a coordinator took from the review queue and attached with a
// decision: the decision is source "review" by the coordinator, and
// points to the .eml and the sender check of the message it came from.
func TestBundleReviewAttached(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, driver)
			o := e.order(t, "order-dv.json")
			e.receive(t, o, mailflow.PartyProvider, "bestellungen@dataport.example", "", "Passt so, danke.")
			mails, err := e.store.OrderMails(ctx, o.ID)
			if err != nil {
				t.Fatal(err)
			}
			var inboundID int64
			for _, m := range mails {
				if m.Inbound != nil && m.Inbound.NeedsReview {
					inboundID = m.Inbound.ID
				}
			}
			if inboundID == 0 {
				t.Fatal("the reply without a keyword is not in review")
			}
			if _, _, err := e.flow.AttachReviewed(ctx, inboundID, o.Number, mailflow.Decision{Party: mailflow.PartyProvider,
				Intent: mailflow.IntentAccept, Actor: "koordinierung"}); err != nil {
				t.Fatal(err)
			}
			files := unzip(t, e.export(t, o.Number))
			decisions := checkBundle(t, e, o, files, []mailflow.Status{mailflow.StatusOpen, mailflow.StatusOrdered})
			if len(decisions) != 1 {
				t.Fatalf("decisions.json: %+v", decisions)
			}
			d := decisions[0]
			if d.Source != mailflow.SourceReview || d.Actor != "koordinierung" || d.Mail == "" || d.Auth == nil || d.Auth.Sender != "registered for the provider" {
				t.Errorf("the attached decision: %+v", d)
			}
		})
	}
}
