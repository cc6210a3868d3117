package mailflow

import "time"

// Contract models of an order.
const (
	ModelDV = "DV" // Direktvertrag: customer and provider
	ModelUV = "UV" // Umklappvertrag: customer, intermediary and provider
)

// Parties that decide on an order.
const (
	PartyProvider     = "provider"
	PartyIntermediary = "intermediary"
)

// Recipients of an order's mail who never decide on it.
const (
	RoleCustomer    = "customer"
	RoleCoordinator = "coordinator"
)

// Intent is what a party's reply declares.
type Intent string

// The intents of docs/design.md §3.
const (
	IntentWorking Intent = "working"
	IntentReview  Intent = "review"
	IntentAccept  Intent = "accept"
	IntentReject  Intent = "reject"
)

// Valid reports whether i is one of the four intents.
func (i Intent) Valid() bool {
	switch i {
	case IntentWorking, IntentReview, IntentAccept, IntentReject:
		return true
	}
	return false
}

// rank orders the non-terminal intents: progress per party only moves
// forward (none < working < review < accept).
func (i Intent) rank() int {
	switch i {
	case IntentWorking:
		return 1
	case IntentReview:
		return 2
	case IntentAccept:
		return 3
	}
	return 0
}

// Status is an order's status code.
type Status string

// The eleven statuses of docs/design.md §3.
const (
	StatusOpen                 Status = "open"
	StatusWorkingProviderDV    Status = "working_provider_dv"
	StatusReviewProviderDV     Status = "review_provider_dv"
	StatusWorkingIntermediary  Status = "working_intermediary"
	StatusReviewIntermediaryUV Status = "review_intermediary_uv"
	StatusWorkingProviderUV    Status = "working_provider_uv"
	StatusReviewProviderUV     Status = "review_provider_uv"
	StatusOrdered              Status = "ordered"
	StatusRejectedProviderDV   Status = "rejected_provider_dv"
	StatusRejectedIntermediary Status = "rejected_intermediary"
	StatusRejectedProviderUV   Status = "rejected_provider_uv"
)

// Statuses lists every status in the order the status page shows them.
var Statuses = []Status{
	StatusOpen, StatusWorkingProviderDV, StatusReviewProviderDV,
	StatusWorkingIntermediary, StatusReviewIntermediaryUV,
	StatusWorkingProviderUV, StatusReviewProviderUV, StatusOrdered,
	StatusRejectedProviderDV, StatusRejectedIntermediary, StatusRejectedProviderUV,
}

var statusLabels = map[Status]string{
	StatusOpen:                 "Offen",
	StatusWorkingProviderDV:    "Bestätigt durch Anbieter (DV)",
	StatusReviewProviderDV:     "In Prüfung durch Anbieter (DV)",
	StatusWorkingIntermediary:  "Bestätigt durch Intermediär",
	StatusReviewIntermediaryUV: "In Prüfung durch Intermediär (UV)",
	StatusWorkingProviderUV:    "Bestätigt durch Anbieter (UV)",
	StatusReviewProviderUV:     "In Prüfung durch Anbieter (UV)",
	StatusOrdered:              "Bestellt",
	StatusRejectedProviderDV:   "Abgelehnt durch Anbieter (DV)",
	StatusRejectedIntermediary: "Abgelehnt durch Intermediär",
	StatusRejectedProviderUV:   "Abgelehnt durch Anbieter (UV)",
}

// Label is the German label shown verbatim on the status page.
func (s Status) Label() string { return statusLabels[s] }

// Valid reports whether s is a known status code.
func (s Status) Valid() bool { _, ok := statusLabels[s]; return ok }

// Colour is the status card colour: grey, blue, amber, green or red.
func (s Status) Colour() string {
	switch s {
	case StatusOpen:
		return "grey"
	case StatusWorkingProviderDV, StatusWorkingIntermediary, StatusWorkingProviderUV:
		return "blue"
	case StatusReviewProviderDV, StatusReviewIntermediaryUV, StatusReviewProviderUV:
		return "amber"
	case StatusOrdered:
		return "green"
	}
	return "red"
}

// Status families group the statuses that a card shows alike: one colour
// and one icon each, so that colour is never the only carrier.
const (
	FamilyOpen     = "open"
	FamilyWorking  = "working"
	FamilyReview   = "review"
	FamilyOrdered  = "ordered"
	FamilyRejected = "rejected"
)

// Families lists the status families in the order of the status model.
var Families = []string{FamilyOpen, FamilyWorking, FamilyReview, FamilyOrdered, FamilyRejected}

// Family is the status's family: open, working, review, ordered or
// rejected (docs/design.md §3: the grey, blue, amber, green and red rows).
func (s Status) Family() string {
	switch s.Colour() {
	case "grey":
		return FamilyOpen
	case "blue":
		return FamilyWorking
	case "amber":
		return FamilyReview
	case "green":
		return FamilyOrdered
	}
	return FamilyRejected
}

// Terminal reports whether no later decision can change the status.
func (s Status) Terminal() bool {
	switch s {
	case StatusOrdered, StatusRejectedProviderDV, StatusRejectedIntermediary, StatusRejectedProviderUV:
		return true
	}
	return false
}

// Decision is one party's recorded declaration on an order.
type Decision struct {
	ID        int64     `json:"id"`
	Party     string    `json:"party"`
	Intent    Intent    `json:"intent"`
	Reason    string    `json:"reason,omitempty"`
	Source    string    `json:"source"` // "email", "page", "manual" or "review" (SourceReview)
	Actor     string    `json:"actor,omitempty"`
	MessageID string    `json:"message_id,omitempty"`
	At        time.Time `json:"at"`
	// Effect is what the decision did, derived by Evaluate: "applied",
	// "superseded" (not forward progress), "conflict" (after a terminal
	// status) or "repeat" (the same declaration again after a terminal status).
	Effect string `json:"effect,omitempty"`
}

// Decision sources.
const (
	SourceEmail  = "email"
	SourceManual = "manual"
	// SourcePage is a party's own declaration on the status page, signed
	// in by an emailed link: it has the effects and mails of the same
	// answer by email (docs/design.md §7).
	SourcePage = "page"
)

// Decision effects, set by Evaluate.
const (
	EffectApplied    = "applied"
	EffectSuperseded = "superseded"
	EffectConflict   = "conflict"
	EffectRepeat     = "repeat"
	EffectIgnored    = "ignored"
)

// Evaluation is the status that follows from an order's decisions.
type Evaluation struct {
	Status    Status
	BindingAt *time.Time // when the order became Bestellt
	Decisions []Decision // the input, each with its Effect set
	Conflict  bool       // some decision arrived after a terminal status and disagrees
}

// Evaluate derives the status of an order of the given contract model from
// its decisions in the order they were recorded. It is a pure function, so
// replies that arrive out of order are never lost: a UV provider acceptance
// before the intermediary's is kept and takes effect when the intermediary
// accepts.
func Evaluate(model string, decisions []Decision) Evaluation {
	ev := Evaluation{Status: StatusOpen, Decisions: make([]Decision, len(decisions))}
	copy(ev.Decisions, decisions)
	state := map[string]Intent{}
	for i := range ev.Decisions {
		d := &ev.Decisions[i]
		if d.Party != PartyProvider && (model != ModelUV || d.Party != PartyIntermediary) {
			d.Effect = EffectIgnored
			continue
		}
		if ev.Status.Terminal() {
			if state[d.Party] == d.Intent {
				d.Effect = EffectRepeat
			} else {
				d.Effect = EffectConflict
				ev.Conflict = true
			}
			continue
		}
		if d.Intent != IntentReject && d.Intent.rank() <= state[d.Party].rank() {
			d.Effect = EffectSuperseded
			continue
		}
		state[d.Party] = d.Intent
		d.Effect = EffectApplied
		ev.Status = statusOf(model, state)
		if ev.Status == StatusOrdered {
			at := d.At
			ev.BindingAt = &at
		}
	}
	return ev
}

// statusOf maps the parties' current intents to a status.
func statusOf(model string, state map[string]Intent) Status {
	p := state[PartyProvider]
	if model != ModelUV {
		switch p {
		case IntentReject:
			return StatusRejectedProviderDV
		case IntentAccept:
			return StatusOrdered
		case IntentReview:
			return StatusReviewProviderDV
		case IntentWorking:
			return StatusWorkingProviderDV
		}
		return StatusOpen
	}
	switch i := state[PartyIntermediary]; {
	case i == IntentReject:
		return StatusRejectedIntermediary
	case p == IntentReject:
		return StatusRejectedProviderUV
	case i == IntentReview:
		return StatusReviewIntermediaryUV
	case i == IntentWorking:
		return StatusWorkingIntermediary
	case i != IntentAccept:
		return StatusOpen
	}
	switch p {
	case IntentAccept:
		return StatusOrdered
	case IntentReview:
		return StatusReviewProviderUV
	case IntentWorking:
		return StatusWorkingProviderUV
	}
	return StatusWorkingIntermediary
}
