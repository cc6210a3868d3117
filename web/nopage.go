package web

import (
	"net/http"
)

// NoPagesHandler answers in place of the status page when none is
// configured, so that a person who opens the daemon's address in a
// browser learns what runs there and how to turn the page on, instead of
// a bare 404. Mount it at "/" like Pages.Handler.
func NoPagesHandler() http.Handler {
	return securityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lang := langFrom(r)
		status := http.StatusOK
		if r.URL.Path != "/" {
			status = http.StatusNotFound
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Language", lang)
		w.Header().Add("Vary", "Accept-Language")
		w.WriteHeader(status)
		if status == http.StatusNotFound {
			w.Write([]byte(msg(lang, "Diese Seite gibt es nicht.") + "\n\n"))
		}
		w.Write([]byte(msg(lang, noPagesText) + "\n"))
	}))
}

// noPagesText is what NoPagesHandler says: the keys that turn the page
// on, and where the API and health checks are.
const noPagesText = `mailflow läuft. Die Statusseite „Eingegangene Bestellungen“ ist nicht eingerichtet: Setzen Sie in der Konfiguration coordinator.username und coordinator.password (mindestens 12 Zeichen) für die Koordinierungsstelle oder http.public_url für Anmeldelinks an Anbieter und Intermediäre und starten Sie den Dienst neu; die Seite steht dann unter /bestellungen.

Die Programmierschnittstelle liegt unter /api/v1/ (Bearer-Token), der Zustand unter /healthz und /readyz.`

// noPagesTextEN is noPagesText in English.
const noPagesTextEN = `mailflow is running. The status page "Incoming orders" is not configured: set coordinator.username and coordinator.password (at least 12 characters) for the coordination office, or http.public_url for sign-in links to providers and intermediaries, in the configuration and restart; the page is then at /bestellungen.

The API is at /api/v1/ (bearer token), health at /healthz and /readyz.`
