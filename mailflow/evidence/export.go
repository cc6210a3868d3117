// Package evidence writes and checks an order's evidence bundle: one ZIP
// with the order's snapshot, the terms it binds, every mail in and out
// byte for byte, the decisions with how each was authenticated, the
// status timeline, and a manifest of every file's SHA-256 signed with the
// installation's Ed25519 key. docs/evidence.md describes the format.
package evidence

import (
	"archive/zip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"mailflow/mailflow"
)

// Format names the bundle layout in the manifest; a change of layout
// changes it.
const Format = "mailflow-evidence/1"

// Names of the files that hold the signature.
const (
	ManifestName  = "manifest.json"
	SignatureName = "manifest.sig"
)

// Source is what an export reads; storage.Store implements it.
type Source interface {
	// Order returns one order by number with its history.
	Order(ctx context.Context, number string) (*mailflow.Order, error)
	// OrderMails lists every mail of an order, oldest first, without bytes.
	OrderMails(ctx context.Context, orderID int64) ([]mailflow.StoredMail, error)
	// CopyRaw writes one mail's stored bytes to w, without holding the
	// whole mail in memory where the store can avoid it;
	// mailflow.ErrNotFound when none are stored.
	CopyRaw(ctx context.Context, m mailflow.StoredMail, w io.Writer) (int64, error)
	// RecordEvidenceExport keeps a record of an exported bundle.
	RecordEvidenceExport(ctx context.Context, e mailflow.EvidenceExport) error
	// InTx runs fn in a transaction (the alert is enqueued in one).
	InTx(ctx context.Context, fn func(mailflow.Tx) error) error
}

// Exporter writes evidence bundles.
type Exporter struct {
	Store Source
	Key   ed25519.PrivateKey
	// Alerter composes the coordinator's alert when a stored mail no
	// longer matches its hash; nil sends none.
	Alerter mailflow.Alerter
	// Version is the mailflow version named in the manifest; "" takes it
	// from the binary's build information.
	Version string
	Log     *slog.Logger
	Now     func() time.Time
}

// IntegrityError is a stored mail or contract text that no longer
// matches the hash recorded when it was stored: the export stops, since a
// bundle of altered evidence must not be signed.
type IntegrityError struct {
	Order string
	// What names the altered item: "received message 12 <id@host>".
	What   string
	Detail string
}

func (e *IntegrityError) Error() string {
	return fmt.Sprintf("evidence: order %s: %s: %s", e.Order, e.What, e.Detail)
}

// Manifest lists every file of a bundle; manifest.sig signs its bytes.
type Manifest struct {
	Format     string    `json:"format"`
	Order      string    `json:"order"`
	Version    string    `json:"mailflow_version"`
	ExportedAt time.Time `json:"exported_at"`
	// PublicKey is the key that signed the manifest ("ed25519:BASE64").
	// Verify checks the signature with it, or with the key it is given,
	// which is how a reader knows the bundle came from the installation.
	PublicKey string         `json:"public_key"`
	Files     []ManifestFile `json:"files"`
}

// ManifestFile is one file of the bundle.
type ManifestFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Export writes the bundle of order number to w, the manifest last, and
// records the export under actor. It reads one mail at a time and streams
// it into the ZIP. When a stored mail or contract text no longer matches
// its recorded hash it returns an *IntegrityError and alerts the
// coordinator; what was written to w is then no valid bundle.
func (e *Exporter) Export(ctx context.Context, number, actor string, w io.Writer) (*Manifest, error) {
	o, err := e.Store.Order(ctx, number)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	b := &bundle{zw: zip.NewWriter(w), at: now().UTC().Truncate(time.Second)}
	m, err := e.write(ctx, o, b)
	if err != nil {
		var ierr *IntegrityError
		if errors.As(err, &ierr) {
			e.alert(ctx, o, ierr)
		}
		return nil, err
	}
	sum := sha256.Sum256(b.manifestJSON)
	if err := e.Store.RecordEvidenceExport(ctx, mailflow.EvidenceExport{OrderNumber: o.Number, ExportedAt: b.at,
		Actor: actor, ManifestSHA256: hex.EncodeToString(sum[:])}); err != nil {
		return nil, err
	}
	return m, nil
}

func (e *Exporter) write(ctx context.Context, o *mailflow.Order, b *bundle) (*Manifest, error) {
	if err := b.file("README.txt", strings.NewReader(readme)); err != nil {
		return nil, err
	}
	if err := b.json("order.json", orderDoc(o)); err != nil {
		return nil, err
	}
	terms, err := b.terms(o)
	if err != nil {
		return nil, err
	}
	if err := b.json("terms.json", terms); err != nil {
		return nil, err
	}
	mails, err := e.Store.OrderMails(ctx, o.ID)
	if err != nil {
		return nil, err
	}
	docs, byMessageID, err := b.mails(ctx, e.Store, o, mails)
	if err != nil {
		return nil, err
	}
	if err := b.json("mails.json", docs); err != nil {
		return nil, err
	}
	if err := b.json("decisions.json", decisionDocs(o, byMessageID)); err != nil {
		return nil, err
	}
	if err := b.json("timeline.json", timeline(o)); err != nil {
		return nil, err
	}
	version := e.Version
	if version == "" {
		version = Version()
	}
	m := &Manifest{Format: Format, Order: o.Number, Version: version, ExportedAt: b.at,
		PublicKey: PublicKeyText(e.Key.Public().(ed25519.PublicKey)), Files: b.files}
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	b.manifestJSON = append(mj, '\n')
	if err := b.raw(ManifestName, b.manifestJSON); err != nil {
		return nil, err
	}
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(e.Key, b.manifestJSON)) + "\n"
	if err := b.raw(SignatureName, []byte(sig)); err != nil {
		return nil, err
	}
	if err := b.zw.Close(); err != nil {
		return nil, fmt.Errorf("evidence: finish zip: %w", err)
	}
	return m, nil
}

// alert tells the coordinator that evidence was altered. Failing to
// alert is logged: the export's own error already stops the caller.
func (e *Exporter) alert(ctx context.Context, o *mailflow.Order, ierr *IntegrityError) {
	log := e.Log
	if log == nil {
		log = slog.Default()
	}
	log.Error("evidence: stored evidence does not match its hash", "order", o.Number, "item", ierr.What)
	if e.Alerter == nil {
		return
	}
	body := fmt.Sprintf("Der Beweisexport der Bestellung %s ist fehlgeschlagen: Gespeicherte Beweismittel stimmen nicht mehr mit dem SHA-256 überein, der beim Speichern festgehalten wurde.\n\n"+
		"Betroffen: %s\nBefund:    %s\n\n"+
		"Die Datenbank wurde nach dem Speichern verändert (von Hand, durch ein Werkzeug oder einen Fehler). Bitte prüfen Sie die Datenbank und ihre Sicherungen, bevor Sie den Vorgang weitergeben.\n",
		o.Number, ierr.What, ierr.Detail)
	alert, err := e.Alerter.Alert("Beweismittel verändert: Bestellung "+o.Number, body, o.ID, o.Number)
	if err == nil {
		err = e.Store.InTx(context.WithoutCancel(ctx), func(tx mailflow.Tx) error { return tx.Enqueue(alert) })
	}
	if err != nil {
		log.Error("evidence: enqueue alert", "order", o.Number, "err", err)
	}
}

// bundle is a ZIP being written with the manifest entries of its files.
type bundle struct {
	zw           *zip.Writer
	at           time.Time
	files        []ManifestFile
	manifestJSON []byte
}

// create starts a file in the ZIP; the returned writer hashes and counts
// what goes in, and done records it in the manifest.
func (b *bundle) create(name string) (*hashingWriter, error) {
	w, err := b.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: b.at})
	if err != nil {
		return nil, fmt.Errorf("evidence: zip %s: %w", name, err)
	}
	return &hashingWriter{w: w, h: sha256.New(), name: name}, nil
}

func (b *bundle) done(hw *hashingWriter) ManifestFile {
	f := ManifestFile{Name: hw.name, Size: hw.n, SHA256: hex.EncodeToString(hw.h.Sum(nil))}
	b.files = append(b.files, f)
	return f
}

func (b *bundle) file(name string, r io.Reader) error {
	hw, err := b.create(name)
	if err != nil {
		return err
	}
	if _, err := io.Copy(hw, r); err != nil {
		return fmt.Errorf("evidence: zip %s: %w", name, err)
	}
	b.done(hw)
	return nil
}

func (b *bundle) json(name string, v any) error {
	j, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("evidence: %s: %w", name, err)
	}
	return b.file(name, strings.NewReader(string(j)+"\n"))
}

// raw writes a file the manifest does not list: the manifest itself and
// its signature.
func (b *bundle) raw(name string, data []byte) error {
	w, err := b.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: b.at})
	if err == nil {
		_, err = w.Write(data)
	}
	if err != nil {
		return fmt.Errorf("evidence: zip %s: %w", name, err)
	}
	return nil
}

type hashingWriter struct {
	w    io.Writer
	h    hash.Hash
	n    int64
	name string
}

func (hw *hashingWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}

// orderJSON is order.json: the order as frozen at its creation and its
// state at the export. The history is in decisions.json.
type orderJSON struct {
	Number        string            `json:"number"`
	ExternalID    string            `json:"external_id"`
	ContractModel string            `json:"contract_model"`
	OrderedAt     time.Time         `json:"ordered_at"`
	CreatedAt     time.Time         `json:"created_at"`
	Status        mailflow.Status   `json:"status"`
	StatusLabel   string            `json:"status_label"`
	BindingAt     *time.Time        `json:"binding_at"`
	Deadline      *time.Time        `json:"provisioning_deadline,omitempty"`
	Conflict      bool              `json:"conflict"`
	CreatedBy     string            `json:"created_by,omitempty"`
	Snapshot      mailflow.Snapshot `json:"snapshot"`
}

func orderDoc(o *mailflow.Order) orderJSON {
	return orderJSON{Number: o.Number, ExternalID: o.ExternalID, ContractModel: o.ContractModel, OrderedAt: o.OrderedAt,
		CreatedAt: o.CreatedAt, Status: o.Status, StatusLabel: o.Status.Label(), BindingAt: o.BindingAt,
		Deadline: o.ProvisioningDeadline(), Conflict: o.Conflict, CreatedBy: o.CreatedBy, Snapshot: o.Snapshot}
}

// termsJSON is one entry of terms.json.
type termsJSON struct {
	Kind       string         `json:"kind"` // agb or conditions
	Title      string         `json:"title,omitempty"`
	Version    string         `json:"version"`
	ValidFrom  mailflow.Date  `json:"valid_from"`
	ValidUntil *mailflow.Date `json:"valid_until"`
	SHA256     string         `json:"sha256"` // as recorded in the order
	File       string         `json:"file"`
}

// unsafeName are the characters a version may not bring into a file name.
var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// terms writes the texts of the AGB and the service conditions the order
// binds, as stored in its snapshot, and checks each against the SHA-256
// the order recorded.
func (b *bundle) terms(o *mailflow.Order) ([]termsJSON, error) {
	var out []termsJSON
	for _, t := range []struct {
		kind string
		t    mailflow.Terms
	}{{"agb", o.Snapshot.Terms}, {"conditions", o.Snapshot.Conditions}} {
		name := "terms/" + t.kind + "-" + strings.Trim(unsafeName.ReplaceAllString(t.t.Version, "_"), "._") + ".txt"
		hw, err := b.create(name)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(hw, t.t.Text); err != nil {
			return nil, fmt.Errorf("evidence: zip %s: %w", name, err)
		}
		f := b.done(hw)
		if !strings.EqualFold(f.SHA256, t.t.SHA256) {
			return nil, &IntegrityError{Order: o.Number, What: fmt.Sprintf("%s version %s in the order's snapshot", t.kind, t.t.Version),
				Detail: fmt.Sprintf("text has SHA-256 %s, the order recorded %s", f.SHA256, t.t.SHA256)}
		}
		out = append(out, termsJSON{Kind: t.kind, Title: t.t.Title, Version: t.t.Version, ValidFrom: t.t.ValidFrom,
			ValidUntil: t.t.ValidUntil, SHA256: t.t.SHA256, File: name})
	}
	return out, nil
}

// mailJSON is one entry of mails.json.
type mailJSON struct {
	File      string    `json:"file,omitempty"` // "" when no bytes are kept
	Direction string    `json:"direction"`      // in or out
	ID        int64     `json:"id"`
	MessageID string    `json:"message_id"`
	At        time.Time `json:"at"` // received, or queued to be sent
	Subject   string    `json:"subject"`
	SHA256    string    `json:"sha256"` // recorded when stored
	Size      int64     `json:"size"`
	// Received mail.
	From        string              `json:"from,omitempty"`
	Verdict     string              `json:"verdict,omitempty"`
	Reason      string              `json:"reason,omitempty"`
	Party       string              `json:"party,omitempty"`
	Intent      string              `json:"intent,omitempty"`
	NeedsReview bool                `json:"needs_review,omitempty"`
	Auth        *mailflow.AuthCheck `json:"auth,omitempty"`
	// Sent mail.
	Kind       string     `json:"kind,omitempty"`
	Recipients []string   `json:"recipients,omitempty"`
	Status     string     `json:"status,omitempty"`
	SentAt     *time.Time `json:"sent_at,omitempty"`
	// Why File is empty.
	RawDeletedAt *time.Time `json:"raw_deleted_at,omitempty"`
	NotStored    string     `json:"not_stored,omitempty"`
}

// mails writes each mail's bytes as an .eml, one at a time, checking each
// against its recorded hash as it streams. byMessageID maps the
// Message-ID of each received mail to its entry, for decisions.json.
func (b *bundle) mails(ctx context.Context, src Source, o *mailflow.Order, mails []mailflow.StoredMail) ([]mailJSON, map[string]mailJSON, error) {
	docs := make([]mailJSON, 0, len(mails))
	byMessageID := map[string]mailJSON{}
	for i, m := range mails {
		d := mailJSON{At: m.At(), SHA256: m.SHA256(), RawDeletedAt: m.RawDeletedAt}
		var what string
		if in := m.Inbound; in != nil {
			d.Direction, d.ID, d.MessageID, d.Subject, d.Size = "in", in.ID, in.MessageID, in.Subject, in.Size
			d.From, d.Verdict, d.Reason, d.Party, d.Intent, d.NeedsReview, d.Auth = in.From, in.Verdict, in.Reason, in.Party, string(in.Intent), in.NeedsReview, in.Auth
			what = fmt.Sprintf("received message %d <%s>", in.ID, in.MessageID)
		} else {
			out := m.Outbound
			d.Direction, d.ID, d.MessageID, d.Subject = "out", out.ID, out.MessageID, out.Subject
			d.Kind, d.Recipients, d.Status, d.SentAt = out.Kind, out.Recipients, out.Status, out.SentAt
			what = fmt.Sprintf("sent message %d <%s>", out.ID, out.MessageID)
		}
		switch {
		case m.RawDeletedAt != nil:
		case d.Direction == "in" && d.SHA256 == "":
			d.NotStored = "larger than the size limit; never downloaded"
		default:
			name := fmt.Sprintf("mails/%04d-%s-%d.eml", i+1, d.Direction, d.ID)
			hw, err := b.create(name)
			if err != nil {
				return nil, nil, err
			}
			_, err = src.CopyRaw(ctx, m, hw)
			if errors.Is(err, mailflow.ErrNotFound) {
				return nil, nil, &IntegrityError{Order: o.Number, What: what, Detail: "its stored bytes are missing"}
			} else if err != nil {
				return nil, nil, err
			}
			f := b.done(hw)
			if !strings.EqualFold(f.SHA256, d.SHA256) {
				return nil, nil, &IntegrityError{Order: o.Number, What: what,
					Detail: fmt.Sprintf("stored bytes have SHA-256 %s, recorded when stored: %s", f.SHA256, d.SHA256)}
			}
			d.File, d.Size = name, f.Size
		}
		if d.Direction == "in" {
			byMessageID[d.MessageID] = d
		}
		docs = append(docs, d)
	}
	return docs, byMessageID, nil
}

// decisionJSON is one entry of decisions.json.
type decisionJSON struct {
	ID        int64               `json:"id"`
	At        time.Time           `json:"at"`
	Party     string              `json:"party"`
	Intent    mailflow.Intent     `json:"intent"`
	Reason    string              `json:"reason,omitempty"`
	Source    string              `json:"source"` // email, manual or review
	Actor     string              `json:"actor"`  // the sender, or who recorded it by hand
	MessageID string              `json:"message_id,omitempty"`
	Mail      string              `json:"mail,omitempty"` // the .eml that carried it
	Auth      *mailflow.AuthCheck `json:"auth,omitempty"`
	Effect    string              `json:"effect"`
}

// decisionDocs lists the decisions, each by mail with the file and the
// authentication verdict of the mail that carried it.
func decisionDocs(o *mailflow.Order, mails map[string]mailJSON) []decisionJSON {
	out := make([]decisionJSON, 0, len(o.History))
	for _, d := range o.History {
		dj := decisionJSON{ID: d.ID, At: d.At, Party: d.Party, Intent: d.Intent, Reason: d.Reason,
			Source: d.Source, Actor: d.Actor, MessageID: d.MessageID, Effect: d.Effect}
		if m, ok := mails[d.MessageID]; ok && d.MessageID != "" {
			dj.Mail, dj.Auth = m.File, m.Auth
		}
		out = append(out, dj)
	}
	return out
}

// timelineJSON is one step of timeline.json.
type timelineJSON struct {
	At          time.Time       `json:"at"`
	Event       string          `json:"event"`
	Decision    int64           `json:"decision,omitempty"`
	Status      mailflow.Status `json:"status"`
	StatusLabel string          `json:"status_label"`
}

// timeline is the status after the order's creation and after each
// decision, derived as the daemon derives it (mailflow.Evaluate).
func timeline(o *mailflow.Order) []timelineJSON {
	out := []timelineJSON{{At: o.CreatedAt, Event: "created", Status: mailflow.StatusOpen, StatusLabel: mailflow.StatusOpen.Label()}}
	for i, d := range o.History {
		ev := mailflow.Evaluate(o.ContractModel, o.History[:i+1])
		out = append(out, timelineJSON{At: d.At, Event: fmt.Sprintf("%s %s (%s)", d.Party, d.Intent, d.Source),
			Decision: d.ID, Status: ev.Status, StatusLabel: ev.Status.Label()})
	}
	return out
}

// Version is the mailflow version from the binary's build information:
// the module version, else the VCS revision, else "devel".
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if (v == "" || v == "(devel)") && rev != "" {
		return "devel-" + rev[:min(12, len(rev))] + dirty
	}
	if v == "" || v == "(devel)" {
		return "devel"
	}
	return v
}
