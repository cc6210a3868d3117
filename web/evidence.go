package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"mailflow/mailflow/evidence"
)

// Evidence exports an order's evidence bundle; evidence.Exporter
// implements it.
type Evidence interface {
	Export(ctx context.Context, number, actor string, w io.Writer) (*evidence.Manifest, error)
}

// exportEvidence writes the bundle of an order to a temporary file, so
// that an export that fails half-way (a stored mail no longer matches its
// hash) answers with an error rather than half a ZIP, and memory stays
// flat however large the mails. The caller closes the file; it is
// already unlinked.
func exportEvidence(ctx context.Context, exp Evidence, number, actor string) (*os.File, error) {
	f, err := os.CreateTemp("", "mailflow-evidence-*.zip")
	if err != nil {
		return nil, fmt.Errorf("web: evidence: %w", err)
	}
	os.Remove(f.Name()) // gone when closed, even if the process dies
	if _, err := exp.Export(ctx, number, actor, f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// serveZip sends an exported bundle as a download.
func serveZip(w http.ResponseWriter, r *http.Request, f *os.File, number string) {
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="nachweis-%s.zip"`, number))
	http.ServeContent(w, r, "", time.Time{}, f)
}

// getEvidence is GET /api/v1/orders/{number}/evidence. A portal token
// gets the bundles of the orders it may read (visibleOrder), once they
// are final: the bundle holds the mails byte for byte, and those of an
// open order carry reply tokens with which a reply could still decide it
// (docs/api.md).
func (s *Server) getEvidence(w http.ResponseWriter, r *http.Request) {
	tok := caller(r)
	o, err := s.visibleOrder(r.Context(), r.PathValue("number"), tok)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if tok.Role != RoleCoordinator && !o.Status.Terminal() {
		problem(w, http.StatusConflict, "Conflict", "the order is not final yet: its evidence holds the reply tokens that can still decide it, so a portal token gets it once the order is Bestellt or Abgelehnt", nil)
		return
	}
	f, err := exportEvidence(r.Context(), s.Evidence, o.Number, tok.Role+":"+tok.Name)
	var ierr *evidence.IntegrityError
	switch {
	case errors.As(err, &ierr):
		detail := "stored evidence of the order no longer matches its recorded hash; the coordinator has been alerted"
		if tok.Role == RoleCoordinator {
			detail = ierr.Error() + "; the coordinator has been alerted"
		}
		problem(w, http.StatusInternalServerError, "Evidence Altered", detail, nil)
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	defer f.Close()
	s.Log.Info("evidence exported", "order", o.Number)
	serveZip(w, r, f, o.Number)
}

// evidenceZip is GET /bestellungen/{number}/nachweis.zip: for an order
// the viewer may see (docs/design.md §7), else 404. A provider or
// intermediary gets it once the order is final: until then the bundle's
// notifications carry the other party's reply token, with which a reply
// could still decide for that party (docs/evidence.md).
func (p *Pages) evidenceZip(w http.ResponseWriter, r *http.Request) {
	o := p.visibleOrder(w, r)
	if o == nil {
		return
	}
	if !viewerFrom(r).coordinator() && !o.Status.Terminal() {
		p.errorKey(w, r, http.StatusConflict, "Nachweis noch nicht verfügbar",
			"Den Nachweis erhalten Anbieter und Intermediär, sobald die Bestellung abgeschlossen ist (Bestellt oder Abgelehnt): Bis dahin enthält er die Antwortadressen aller Beteiligten, mit denen sich noch für sie entscheiden ließe.")
		return
	}
	p.serveEvidence(w, r, o.Number)
}

// serveEvidence sends the evidence bundle of one order to the signed-in
// user. It takes the order number alone, so that a check of who may see
// which order can wrap it.
func (p *Pages) serveEvidence(w http.ResponseWriter, r *http.Request, number string) {
	if p.Evidence == nil {
		p.errorKey(w, r, http.StatusServiceUnavailable, "Nachweis nicht verfügbar",
			"Für diese Installation ist kein Signaturschlüssel eingerichtet (evidence.key_path).")
		return
	}
	actor := "page"
	if v := viewerFrom(r); v != nil {
		actor = "page:" + v.Subject
	}
	f, err := exportEvidence(r.Context(), p.Evidence, number, actor)
	var ierr *evidence.IntegrityError
	if errors.As(err, &ierr) {
		p.errorKey(w, r, http.StatusInternalServerError, "Beweismittel verändert",
			"Der Nachweis wurde nicht erstellt: %s stimmt nicht mehr mit dem beim Speichern festgehaltenen SHA-256 überein. Die Koordinierungsstelle wurde benachrichtigt.", ierr.What)
		return
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	defer f.Close()
	p.Log.Info("evidence exported", "order", number)
	serveZip(w, r, f, number)
}
