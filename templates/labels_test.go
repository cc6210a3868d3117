package templates_test

import (
	"testing"

	"mailflow/mailflow"
	"mailflow/templates"
)

// The German status labels are the portal's own words, which the domain
// also carries (Status.Label); mails and pages must show the same ones,
// and every status needs an English label.
func TestStatusLabels(t *testing.T) {
	for _, s := range mailflow.Statuses {
		if got := templates.Label("de", templates.LabelStatus, string(s)); got != s.Label() {
			t.Errorf("%s: German label %q, domain says %q", s, got, s.Label())
		}
		if got := templates.Label("en", templates.LabelStatus, string(s)); got == s.Label() {
			t.Errorf("%s: no English label (%q)", s, got)
		}
	}
}

func TestLabelFallsBackToCode(t *testing.T) {
	if got := templates.Label("de", templates.LabelParty, "somebody"); got != "somebody" {
		t.Errorf("unknown code: %q", got)
	}
	if got := templates.Label("en", templates.LabelParty, "intermediary"); got != "intermediary" {
		t.Errorf("en intermediary: %q", got)
	}
	if got := templates.Label("", templates.LabelParty, "intermediary"); got != "Intermediär" {
		t.Errorf("default language: %q", got)
	}
}

// Every status has an explanation and every family a name, in both
// languages: the status page shows them as the card's title and legend.
func TestStatusExplanations(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range mailflow.Statuses {
		de := templates.Label("de", templates.LabelStatusExplanation, string(s))
		en := templates.Label("en", templates.LabelStatusExplanation, string(s))
		if de == string(s) || en == string(s) || de == en || seen[de] {
			t.Errorf("%s: explanation de %q en %q (missing, untranslated or shared)", s, de, en)
		}
		seen[de] = true
	}
	for _, f := range mailflow.Families {
		if templates.Label("de", templates.LabelFamily, f) == f && f != "open" || templates.Label("en", templates.LabelFamily, f) == templates.Label("de", templates.LabelFamily, f) {
			t.Errorf("family %s has no label in both languages", f)
		}
	}
}
