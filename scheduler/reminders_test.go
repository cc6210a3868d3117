package scheduler_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/scheduler"
	"mailflow/storage/storagetest"
)

// reminders runs the reminder job at t and returns "order/party" of the
// parties reminded and escalated.
func (e *env) reminders(t time.Time) (reminded, escalated []string) {
	e.t.Helper()
	e.setClock(t)
	rep, err := e.sched.RunReminders(e.ctx, t)
	if err != nil {
		e.t.Fatalf("reminder run at %v: %v", t, err)
	}
	for _, r := range rep.Reminded {
		reminded = append(reminded, r.Order+"/"+r.Party)
	}
	for _, r := range rep.Escalated {
		escalated = append(escalated, r.Order+"/"+r.Party)
	}
	return reminded, escalated
}

func (e *env) checkReminders(t *testing.T, when time.Time, wantReminded, wantEscalated []string) {
	t.Helper()
	r, esc := e.reminders(when)
	if !slices.Equal(r, wantReminded) || !slices.Equal(esc, wantEscalated) {
		t.Errorf("at %s: reminded %v escalated %v, want %v and %v", when.In(e.loc).Format("Mon 02.01. 15:04"), r, esc, wantReminded, wantEscalated)
	}
}

// A party undecided after remind_after (48h) is reminded once per
// interval, "working" and "review" count as undecided, the coordinator is
// alerted once after escalate_after (120h), and both stop when the party
// decides.
func TestConfirmationReminders(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			t0 := at(e.loc, 2026, 11, 23, 10, 0) // Monday
			h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
			e.setClock(t0)
			o := e.order("order-dv.json", "")
			p := o.Number + "/provider"

			e.checkReminders(t, h(47), nil, nil)
			e.checkReminders(t, h(48), []string{p}, nil)
			e.checkReminders(t, h(50), nil, nil) // same interval
			e.checkReminders(t, h(95), nil, nil)
			e.checkReminders(t, h(96), []string{p}, nil)
			e.decide(o, mailflow.PartyProvider, mailflow.IntentWorking, h(97))
			e.decide(o, mailflow.PartyProvider, mailflow.IntentReview, h(98))
			e.checkReminders(t, h(120), nil, []string{p}) // interval 2 was reminded; escalate once
			e.checkReminders(t, h(144), []string{p}, nil) // interval 3; no second escalation
			e.decide(o, mailflow.PartyProvider, mailflow.IntentAccept, h(150))
			e.checkReminders(t, h(192), nil, nil)
			e.checkReminders(t, h(1000), nil, nil)

			mails := e.outbox(mailflow.KindReminder)
			if len(mails) != 3 {
				t.Fatalf("%d reminder mails, want 3", len(mails))
			}
			for _, m := range mails {
				if m.Party != mailflow.PartyProvider || m.OrderNumber != o.Number || !slices.Equal(m.Recipients, []string{"bestellungen@dataport.example"}) {
					t.Errorf("reminder %s to %s %v", m.OrderNumber, m.Party, m.Recipients)
				}
			}
			if alerts := e.outbox(mailflow.KindAlert); len(alerts) != 1 || !slices.Equal(alerts[0].Recipients, []string{"koordinierung@example.org"}) {
				t.Errorf("escalations: %d, want one to the coordinator", len(alerts))
			}
			recs, err := e.store.ReminderRecords(e.ctx, o.ID)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range recs {
				got = append(got, fmt.Sprintf("%s/%d", r.Kind, r.Slot))
			}
			if want := []string{"remind/1", "remind/2", "escalate/0", "remind/3"}; !slices.Equal(got, want) {
				t.Errorf("confirmation_reminders %v, want %v", got, want)
			}
		})
	}
}

// A daemon that was down sends one reminder for the current interval, not
// one for each it missed.
func TestConfirmationRemindersCatchUp(t *testing.T) {
	e := newEnv(t, "sqlite")
	t0 := at(e.loc, 2026, 11, 2, 10, 0)
	e.setClock(t0)
	o := e.order("order-dv.json", "")
	p := o.Number + "/provider"
	e.checkReminders(t, t0.Add(10*24*time.Hour), []string{p}, []string{p})
	e.checkReminders(t, t0.Add(10*24*time.Hour+time.Hour), nil, nil)
	if n := len(e.outbox(mailflow.KindReminder)); n != 1 {
		t.Errorf("%d reminders after ten days down, want 1", n)
	}
}

// UV: both parties are asked at creation and both are reminded; a party
// that accepted or rejected is not. A provider acceptance that arrived
// before the intermediary's counts as decided.
func TestConfirmationRemindersUV(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			t0 := at(e.loc, 2026, 11, 23, 10, 0)
			e.setClock(t0)
			both := e.order("order-uv.json", "")
			intermAccepted := e.order("order-uv.json", "")
			e.decide(intermAccepted, mailflow.PartyIntermediary, mailflow.IntentAccept, t0.Add(time.Hour))
			provEarly := e.order("order-uv.json", "")
			e.decide(provEarly, mailflow.PartyProvider, mailflow.IntentAccept, t0.Add(time.Hour))
			rejected := e.order("order-uv.json", "")
			e.decide(rejected, mailflow.PartyIntermediary, mailflow.IntentReject, t0.Add(time.Hour))

			e.checkReminders(t, t0.Add(48*time.Hour), []string{
				both.Number + "/intermediary", both.Number + "/provider",
				intermAccepted.Number + "/provider",
				provEarly.Number + "/intermediary",
			}, nil)
			got := map[string][]string{}
			for _, m := range e.outbox(mailflow.KindReminder) {
				got[m.OrderNumber+"/"+m.Party] = m.Recipients
			}
			if r := got[both.Number+"/intermediary"]; !slices.Equal(r, []string{"auftrag@govdigital.example"}) {
				t.Errorf("intermediary reminder to %v", r)
			}
			if r := got[both.Number+"/provider"]; !slices.Equal(r, []string{"orders@it.nrw.example"}) {
				t.Errorf("provider reminder to %v", r)
			}
		})
	}
}

func TestUndecidedParties(t *testing.T) {
	d := func(party string, intent mailflow.Intent) mailflow.Decision {
		return mailflow.Decision{Party: party, Intent: intent}
	}
	tests := []struct {
		name    string
		model   string
		history []mailflow.Decision
		want    []string
	}{
		{"DV open", "DV", nil, []string{"provider"}},
		{"DV review is undecided", "DV", []mailflow.Decision{d("provider", "working"), d("provider", "review")}, []string{"provider"}},
		{"DV ordered", "DV", []mailflow.Decision{d("provider", "accept")}, nil},
		{"DV rejected", "DV", []mailflow.Decision{d("provider", "reject")}, nil},
		{"UV open", "UV", nil, []string{"intermediary", "provider"}},
		{"UV intermediary accepted", "UV", []mailflow.Decision{d("intermediary", "accept"), d("provider", "working")}, []string{"provider"}},
		{"UV provider accepted first", "UV", []mailflow.Decision{d("provider", "accept"), d("intermediary", "review")}, []string{"intermediary"}},
		{"UV provider rejected", "UV", []mailflow.Decision{d("provider", "reject")}, nil},
		{"UV ordered", "UV", []mailflow.Decision{d("provider", "accept"), d("intermediary", "accept")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &mailflow.Order{ContractModel: tt.model, History: tt.history}
			if got := scheduler.UndecidedParties(o); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
