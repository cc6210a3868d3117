package mailflow

import (
	"strings"
	"testing"
	"time"
)

// decisions builds a decision list from "party:intent" steps, one minute apart.
func decisions(steps ...string) []Decision {
	base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	var ds []Decision
	for i, s := range steps {
		party, intent, _ := strings.Cut(s, ":")
		if party == "p" {
			party = PartyProvider
		} else if party == "i" {
			party = PartyIntermediary
		}
		ds = append(ds, Decision{Party: party, Intent: Intent(intent), At: base.Add(time.Duration(i+1) * time.Minute)})
	}
	return ds
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name     string
		model    string
		steps    []string
		want     Status
		binding  int    // 1-based index of the decision that made it binding, 0 for none
		conflict bool   // a later decision disagrees with a terminal status
		effects  string // expected effects, one letter each: a applied, s superseded, c conflict, r repeat, i ignored
	}{
		{"dv nothing", ModelDV, nil, StatusOpen, 0, false, ""},
		{"dv working", ModelDV, []string{"p:working"}, StatusWorkingProviderDV, 0, false, "a"},
		{"dv review", ModelDV, []string{"p:working", "p:review"}, StatusReviewProviderDV, 0, false, "aa"},
		{"dv accept", ModelDV, []string{"p:accept"}, StatusOrdered, 1, false, "a"},
		{"dv review then accept", ModelDV, []string{"p:review", "p:accept"}, StatusOrdered, 2, false, "aa"},
		{"dv reject", ModelDV, []string{"p:working", "p:reject"}, StatusRejectedProviderDV, 0, false, "aa"},
		{"dv backwards is ignored", ModelDV, []string{"p:review", "p:working"}, StatusReviewProviderDV, 0, false, "as"},
		{"dv same twice", ModelDV, []string{"p:working", "p:working"}, StatusWorkingProviderDV, 0, false, "as"},
		{"dv reject after review", ModelDV, []string{"p:review", "p:reject"}, StatusRejectedProviderDV, 0, false, "aa"},
		{"dv reject after ordered is a conflict", ModelDV, []string{"p:accept", "p:reject"}, StatusOrdered, 1, true, "ac"},
		{"dv accept after reject is a conflict", ModelDV, []string{"p:reject", "p:accept"}, StatusRejectedProviderDV, 0, true, "ac"},
		{"dv repeated accept is no conflict", ModelDV, []string{"p:accept", "p:accept"}, StatusOrdered, 1, false, "ar"},
		{"dv intermediary decision ignored", ModelDV, []string{"i:accept"}, StatusOpen, 0, false, "i"},
		{"uv nothing", ModelUV, nil, StatusOpen, 0, false, ""},
		{"uv intermediary working", ModelUV, []string{"i:working"}, StatusWorkingIntermediary, 0, false, "a"},
		{"uv intermediary review", ModelUV, []string{"i:review"}, StatusReviewIntermediaryUV, 0, false, "a"},
		{"uv intermediary accepted, provider silent", ModelUV, []string{"i:accept"}, StatusWorkingIntermediary, 0, false, "a"},
		{"uv provider working", ModelUV, []string{"i:accept", "p:working"}, StatusWorkingProviderUV, 0, false, "aa"},
		{"uv provider review", ModelUV, []string{"i:accept", "p:review"}, StatusReviewProviderUV, 0, false, "aa"},
		{"uv ordered", ModelUV, []string{"i:accept", "p:accept"}, StatusOrdered, 2, false, "aa"},
		{"uv provider first stays open", ModelUV, []string{"p:accept"}, StatusOpen, 0, false, "a"},
		{"uv provider first, intermediary reviews", ModelUV, []string{"p:accept", "i:review"}, StatusReviewIntermediaryUV, 0, false, "aa"},
		{"uv provider first takes effect on intermediary accept", ModelUV, []string{"p:accept", "i:working", "i:accept"}, StatusOrdered, 3, false, "aaa"},
		{"uv intermediary rejects", ModelUV, []string{"i:review", "i:reject"}, StatusRejectedIntermediary, 0, false, "aa"},
		{"uv intermediary rejects after provider accepted", ModelUV, []string{"p:accept", "i:reject"}, StatusRejectedIntermediary, 0, false, "aa"},
		{"uv provider rejects", ModelUV, []string{"i:accept", "p:reject"}, StatusRejectedProviderUV, 0, false, "aa"},
		{"uv provider rejects before intermediary", ModelUV, []string{"p:reject"}, StatusRejectedProviderUV, 0, false, "a"},
		{"uv late intermediary answer after provider rejected", ModelUV, []string{"p:reject", "i:accept"}, StatusRejectedProviderUV, 0, true, "ac"},
		{"uv backwards provider", ModelUV, []string{"i:accept", "p:review", "p:working"}, StatusReviewProviderUV, 0, false, "aas"},
		{"uv backwards intermediary", ModelUV, []string{"i:accept", "i:review"}, StatusWorkingIntermediary, 0, false, "as"},
		{"uv conflict after ordered", ModelUV, []string{"i:accept", "p:accept", "i:reject"}, StatusOrdered, 2, true, "aac"},
	}
	seen := map[Status]bool{}
	letter := map[string]byte{EffectApplied: 'a', EffectSuperseded: 's', EffectConflict: 'c', EffectRepeat: 'r', EffectIgnored: 'i'}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := decisions(tt.steps...)
			ev := Evaluate(tt.model, ds)
			seen[ev.Status] = true
			if ev.Status != tt.want {
				t.Errorf("status = %s, want %s", ev.Status, tt.want)
			}
			if ev.Conflict != tt.conflict {
				t.Errorf("conflict = %v, want %v", ev.Conflict, tt.conflict)
			}
			switch {
			case tt.binding == 0 && ev.BindingAt != nil:
				t.Errorf("binding_at = %v, want none", ev.BindingAt)
			case tt.binding > 0 && (ev.BindingAt == nil || !ev.BindingAt.Equal(ds[tt.binding-1].At)):
				t.Errorf("binding_at = %v, want %v", ev.BindingAt, ds[tt.binding-1].At)
			}
			var effects []byte
			for _, d := range ev.Decisions {
				effects = append(effects, letter[d.Effect])
			}
			if string(effects) != tt.effects {
				t.Errorf("effects = %q, want %q", effects, tt.effects)
			}
			if ds != nil && ds[0].Effect != "" {
				t.Error("Evaluate changed its input")
			}
		})
	}
	for _, s := range Statuses {
		if !seen[s] {
			t.Errorf("status %s is reached by no case", s)
		}
		if s.Label() == "" || s.Colour() == "" {
			t.Errorf("status %s has no label or colour", s)
		}
	}
}

// TestStatusFamily: the five families of the status cards follow the
// status model's colours; the terminal statuses are ordered or rejected.
func TestStatusFamily(t *testing.T) {
	want := map[Status]string{
		StatusOpen: "open", StatusWorkingProviderDV: "working", StatusReviewProviderDV: "review",
		StatusWorkingIntermediary: "working", StatusReviewIntermediaryUV: "review",
		StatusWorkingProviderUV: "working", StatusReviewProviderUV: "review", StatusOrdered: "ordered",
		StatusRejectedProviderDV: "rejected", StatusRejectedIntermediary: "rejected", StatusRejectedProviderUV: "rejected",
	}
	for _, s := range Statuses {
		if got := s.Family(); got != want[s] {
			t.Errorf("%s: family %q, want %q", s, got, want[s])
		}
		if f := s.Family(); s.Terminal() != (f == FamilyOrdered || f == FamilyRejected) {
			t.Errorf("%s: terminal %v but family %s", s, s.Terminal(), f)
		}
	}
}
