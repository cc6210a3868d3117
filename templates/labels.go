package templates

// The one place for the words mailflow shows people: mails, the status page,
// the CLI and the demo all take their labels from here, in German ("de",
// the default) or English ("en").

// Label kinds.
const (
	LabelStatus       = "status"        // order status code
	LabelParty        = "party"         // provider, intermediary, customer, coordinator
	LabelIntent       = "intent"        // a declared intent, short
	LabelIntentLong   = "intent_long"   // a declared intent, as a mail explains it
	LabelModel        = "model"         // contract model, short
	LabelModelLong    = "model_long"    // contract model, as a mail explains it
	LabelInterval     = "interval"      // billing interval
	LabelSource       = "source"        // where a decision came from
	LabelEffect       = "effect"        // what a decision did
	LabelKind         = "kind"          // kind of outbound mail
	LabelOutboxStatus = "outbox_status" // state of an outbound mail
	LabelVerdict      = "verdict"       // what became of a received mail
	// LabelStatusExplanation is what a status means, in the portal's
	// words: the status card's title and the legend on the list page.
	LabelStatusExplanation = "status_explanation"
	// LabelFamily names the five groups of statuses that share a card
	// colour and icon (mailflow.Status.Family).
	LabelFamily = "family"
)

// labels maps a kind and a code to its German and English label.
var labels = map[string]map[string][2]string{
	LabelStatus: {
		"open":                   {"Offen", "open"},
		"working_provider_dv":    {"Bestätigt durch Anbieter (DV)", "acknowledged by the provider (DV)"},
		"review_provider_dv":     {"In Prüfung durch Anbieter (DV)", "in review by the provider (DV)"},
		"working_intermediary":   {"Bestätigt durch Intermediär", "acknowledged by the intermediary"},
		"review_intermediary_uv": {"In Prüfung durch Intermediär (UV)", "in review by the intermediary (UV)"},
		"working_provider_uv":    {"Bestätigt durch Anbieter (UV)", "acknowledged by the provider (UV)"},
		"review_provider_uv":     {"In Prüfung durch Anbieter (UV)", "in review by the provider (UV)"},
		"ordered":                {"Bestellt", "ordered (binding)"},
		"rejected_provider_dv":   {"Abgelehnt durch Anbieter (DV)", "rejected by the provider (DV)"},
		"rejected_intermediary":  {"Abgelehnt durch Intermediär", "rejected by the intermediary"},
		"rejected_provider_uv":   {"Abgelehnt durch Anbieter (UV)", "rejected by the provider (UV)"},
	},
	LabelStatusExplanation: {
		"open": {"Die Bestellung ist eingegangen; weder Anbieter noch Intermediär haben bisher geantwortet.",
			"The order has arrived; neither the provider nor the intermediary has answered yet."},
		"working_provider_dv": {"Der Anbieter hat den Eingang bestätigt und bearbeitet die Bestellung (Direktvertrag). Noch nicht verbindlich.",
			"The provider has acknowledged the order and is working on it (direct contract). Not yet binding."},
		"review_provider_dv": {"Der Anbieter prüft den Vertragsschluss (Direktvertrag). Noch nicht verbindlich.",
			"The provider is checking whether to conclude the contract (direct contract). Not yet binding."},
		"working_intermediary": {"Der Intermediär bearbeitet die Bestellung oder hat sie angenommen, und die Antwort des Anbieters steht noch aus (Umklappvertrag). Noch nicht verbindlich.",
			"The intermediary is working on the order, or has accepted it and the provider's answer is still due (three-party contract). Not yet binding."},
		"review_intermediary_uv": {"Der Intermediär prüft den Vertragsschluss (Umklappvertrag). Noch nicht verbindlich.",
			"The intermediary is checking whether to conclude the contract (three-party contract). Not yet binding."},
		"working_provider_uv": {"Der Intermediär hat angenommen; der Anbieter bearbeitet die Bestellung (Umklappvertrag). Noch nicht verbindlich.",
			"The intermediary has accepted; the provider is working on the order (three-party contract). Not yet binding."},
		"review_provider_uv": {"Der Intermediär hat angenommen; der Anbieter prüft den Vertragsschluss (Umklappvertrag). Noch nicht verbindlich.",
			"The intermediary has accepted; the provider is checking whether to conclude the contract (three-party contract). Not yet binding."},
		"ordered": {"Alle erforderlichen Parteien haben angenommen: Die Bestellung ist verbindlich, die Leistung ist jetzt bereitzustellen.",
			"Every required party has accepted: the order is binding and the service is to be provided now."},
		"rejected_provider_dv": {"Der Anbieter hat die Bestellung mit Begründung abgelehnt (Direktvertrag). Abgeschlossen, es kommt kein Vertrag zustande.",
			"The provider has rejected the order with a reason (direct contract). Closed; no contract is concluded."},
		"rejected_intermediary": {"Der Intermediär hat die Bestellung mit Begründung abgelehnt (Umklappvertrag). Abgeschlossen, es kommt kein Vertrag zustande.",
			"The intermediary has rejected the order with a reason (three-party contract). Closed; no contract is concluded."},
		"rejected_provider_uv": {"Der Anbieter hat die Bestellung mit Begründung abgelehnt (Umklappvertrag). Abgeschlossen, es kommt kein Vertrag zustande.",
			"The provider has rejected the order with a reason (three-party contract). Closed; no contract is concluded."},
	},
	LabelFamily: {
		"open":     {"Offen", "open"},
		"working":  {"In Bearbeitung", "in progress"},
		"review":   {"In Prüfung", "in review"},
		"ordered":  {"Bestellt (verbindlich)", "ordered (binding)"},
		"rejected": {"Abgelehnt", "rejected"},
	},
	LabelParty: {
		"provider":     {"Anbieter", "provider"},
		"intermediary": {"Intermediär", "intermediary"},
		"customer":     {"Kunde", "customer"},
		"coordinator":  {"Koordinierungsstelle", "coordination office"},
	},
	LabelIntent: {
		"accept":  {"Angenommen", "accepted"},
		"review":  {"In Prüfung", "in review"},
		"working": {"In Bearbeitung", "in progress"},
		"reject":  {"Abgelehnt", "rejected"},
	},
	LabelIntentLong: {
		"accept":  {"Bestätigung (verbindliche Annahme)", "confirmation (binding acceptance)"},
		"review":  {"In Prüfung", "in review"},
		"working": {"In Bearbeitung", "in progress"},
		"reject":  {"Ablehnung", "rejection"},
	},
	LabelModel: {
		"DV": {"Direktvertrag (DV)", "direct contract (DV)"},
		"UV": {"Umklappvertrag (UV)", "three-party contract (UV)"},
	},
	LabelModelLong: {
		"DV": {"Direktvertrag (DV)", "direct contract (DV)"},
		"UV": {"Umklappvertrag (UV) über einen Intermediär", "three-party contract via an intermediary (UV, Umklappvertrag)"},
	},
	LabelInterval: {
		"once":      {"einmalig", "one-off"},
		"monthly":   {"monatlich", "per month"},
		"quarterly": {"vierteljährlich", "per quarter"},
		"yearly":    {"jährlich", "per year"},
	},
	LabelSource: {
		"email":  {"E-Mail", "email"},
		"manual": {"manuell", "by hand"},
		"page":   {"Statusseite", "status page"},
		"review": {"geprüfte Nachricht", "reviewed message"},
	},
	LabelEffect: {
		"applied":    {"wirksam", "in effect"},
		"superseded": {"überholt (kein Fortschritt)", "superseded (no progress)"},
		"conflict":   {"Widerspruch nach Abschluss", "conflict after the order was final"},
		"repeat":     {"Wiederholung nach Abschluss", "repeated after the order was final"},
		"ignored":    {"ignoriert (keine Partei der Bestellung)", "ignored (not a party of the order)"},
	},
	LabelKind: {
		"notification": {"Bestellmitteilung", "order notification"},
		"confirmation": {"Verbindliche Bestätigung", "binding confirmation"},
		"rejection":    {"Ablehnung", "rejection"},
		"ack":          {"Eingangsbestätigung", "acknowledgement"},
		"alert":        {"Hinweis an die Koordinierungsstelle", "alert to the coordination office"},
		"reminder":     {"Erinnerung", "reminder"},
		"billing":      {"Abrechnungserinnerung", "billing reminder"},
		"digest":       {"Übersicht", "digest"},
		"signin":       {"Anmeldelink", "sign-in link"},
	},
	LabelOutboxStatus: {
		"pending": {"ausstehend", "pending"},
		"sent":    {"gesendet", "sent"},
		"failed":  {"fehlgeschlagen", "failed"},
	},
	LabelVerdict: {
		"applied":         {"verarbeitet", "processed"},
		"duplicate":       {"Duplikat", "duplicate"},
		"auto-reply":      {"automatische Antwort", "automatic reply"},
		"bounce":          {"Unzustellbarkeitsnachricht", "bounce"},
		"unmatched":       {"nicht zugeordnet", "unmatched"},
		"unauthenticated": {"Absender nicht berechtigt", "sender not authorised"},
		"no intent":       {"keine Erklärung erkannt", "no declaration found"},
		"conflict":        {"Widerspruch", "conflict"},
		"too large":       {"zu groß", "too large"},
		"malformed":       {"fehlerhaft", "malformed"},
		"unprocessable":   {"nicht verarbeitbar", "could not be processed"},
		"processing":      {"in Verarbeitung", "being processed"},
	},
}

// Label returns the label of code in lang ("en", else German); a code
// without a label is returned as it is.
func Label(lang, kind, code string) string {
	l, ok := labels[kind][code]
	if !ok {
		return code
	}
	if lang == "en" {
		return l[1]
	}
	return l[0]
}
