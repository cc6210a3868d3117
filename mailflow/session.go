package mailflow

import "time"

// Session is a person signed in to the status page: a coordinator by
// password, or a provider's or intermediary's address by an emailed link.
// The store keeps only the SHA-256 of the session id (docs/design.md §7).
type Session struct {
	IDHash  string // hex SHA-256 of the session cookie's value
	Role    string // RoleCoordinator, PartyProvider or PartyIntermediary
	Org     string // the party's catalog id; "" for a coordinator
	Subject string // the signed-in address, or the coordinator's user name
	CSRF    string
	Created time.Time
	// LastSeen is when a request last used the session (to a minute);
	// IdleUntil is LastSeen plus the idle timeout; Expires is Created
	// plus the absolute lifetime. The session ends at whichever of the
	// two comes first.
	LastSeen  time.Time
	IdleUntil time.Time
	Expires   time.Time
}

// SigninLink is a sign-in link sent by email; the store keeps only the
// SHA-256 of its token. It signs in once, before Expires.
type SigninLink struct {
	TokenHash string // hex SHA-256 of the token in the link
	Role      string // PartyProvider or PartyIntermediary
	Org       string // the party's catalog id
	Email     string // the address it was sent to
	Created   time.Time
	Expires   time.Time
	Used      *time.Time
}
