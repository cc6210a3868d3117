package compose

import (
	"net/mail"
	"time"

	"mailflow/mailflow"
)

// SigninView is the data of the sign-in mail (template "signin"): one
// link per organization the address may sign in for.
type SigninView struct {
	Links   []SigninLink
	Expires time.Time // when the links stop working
	Minutes int       // how long they are valid, for the text
}

// SigninLink is one sign-in link of the mail.
type SigninLink struct {
	Org  string // the organization's name
	Role string // provider or intermediary
	URL  string
}

// Signin composes the mail that carries sign-in links to the status page
// to addr. It belongs to no order; lang is the organization's language.
func (c *Composer) Signin(addr, lang string, v SigninView) (*mailflow.OutboxMessage, error) {
	return c.Compose(Mail{
		Kind: mailflow.KindSignin, Lang: lang, To: []mail.Address{{Address: addr}},
		Template: "signin", View: MailView{Data: &v},
	})
}
