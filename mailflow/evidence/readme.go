package evidence

// readme is README.txt of every bundle: what the files are and how to
// check them, in German and English. It names no order, so it is the same
// in every bundle.
const readme = `Nachweis einer Bestellung (mailflow)                       English below
====================================

Dieses Archiv enthält alles, was zu einer Bestellung vereinbart und
geschrieben wurde:

  order.json      die Bestellung, wie sie bei ihrer Anlage eingefroren wurde:
                  Kunde, Leistung, Preis, Eigenschaften, Vertragsmodell,
                  dazu ihr Status zum Zeitpunkt des Exports
  terms/          die AGB und die Leistungsbedingungen, die zum Bestellzeitpunkt
                  galten, im gespeicherten Wortlaut; terms.json nennt Version,
                  Gültigkeit und den SHA-256, der in der Bestellung steht
  mails/          jede E-Mail der Bestellung, ein- und ausgehend, Byte für Byte
                  wie empfangen oder gesendet (.eml, mit jedem E-Mail-Programm
                  zu öffnen), auch Abwesenheitsnotizen und Nachrichten zur
                  Prüfung; mails.json beschreibt jede
  decisions.json  die Erklärungen der Parteien: Quelle (E-Mail oder von Hand),
                  wer, wie der Absender geprüft wurde (Antwort-Token,
                  registrierte Adresse, DMARC/DKIM) und ihre Wirkung
  timeline.json   der Status nach jeder Erklärung
  manifest.json   jede Datei mit Größe und SHA-256, die mailflow-Version, die
                  Zeit des Exports und der öffentliche Schlüssel
  manifest.sig    die Ed25519-Signatur von manifest.json

Prüfen: mailflow evidence verify DATEI.zip -key SCHLÜSSEL
Den Schlüssel der Installation nennt "mailflow evidence key". Ohne -key wird
mit dem Schlüssel im Archiv geprüft; das zeigt, dass nichts verändert wurde,
aber nicht, von wem das Archiv stammt. Ohne mailflow: die SHA-256-Werte in
manifest.json mit sha256sum vergleichen und die Signatur mit einem
Ed25519-Werkzeug über die Bytes von manifest.json prüfen.


Evidence of an order (mailflow)
===============================

This archive holds everything agreed and written about one order:

  order.json      the order as frozen when it was created: customer, service,
                  price, properties, contract model, and its status at export
  terms/          the general terms (AGB) and service conditions valid at the
                  order time, as stored; terms.json gives version, validity
                  and the SHA-256 recorded in the order
  mails/          every mail of the order, in and out, byte for byte as
                  received or sent (.eml, opens in any mail program),
                  including auto-replies and messages held for review;
                  mails.json describes each
  decisions.json  the parties' declarations: source (email or by hand), who,
                  how the sender was checked (reply token, registered address,
                  DMARC/DKIM) and their effect
  timeline.json   the status after each declaration
  manifest.json   every file with size and SHA-256, the mailflow version, the
                  time of export and the public key
  manifest.sig    the Ed25519 signature of manifest.json

Check: mailflow evidence verify FILE.zip -key KEY
"mailflow evidence key" prints the installation's key. Without -key the key
in the archive is used: that shows nothing was changed, not who made the
archive. Without mailflow: compare the SHA-256 values in manifest.json with
sha256sum and check the signature over the bytes of manifest.json with any
Ed25519 tool.
`
