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
