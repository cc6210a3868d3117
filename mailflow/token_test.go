package mailflow

import (
	"strings"
	"testing"
)

func TestTokens(t *testing.T) {
	old, _ := NewTokens([]string{"old-secret-0123456789"})
	cur, err := NewTokens([]string{"new-secret-0123456789", "old-secret-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	want := Token{OrderID: 123456, Party: PartyIntermediary, NotificationID: 0xABCDEF1234}
	s := cur.Sign(want)
	if len(s) != TokenLen || strings.ToLower(s) != s {
		t.Fatalf("token %q: want %d lowercase characters", s, TokenLen)
	}
	if got, err := cur.Verify(strings.ToUpper(s)); err != nil || got != want {
		t.Fatalf("Verify = %+v, %v; want %+v", got, err, want)
	}
	if _, err := old.Verify(s); err == nil {
		t.Fatal("a token signed with the new secret verified under the old one only")
	}
	// Rotation: tokens of the old secret still verify.
	os := old.Sign(Token{OrderID: 1, Party: PartyProvider, NotificationID: 2})
	if got, err := cur.Verify(os); err != nil || got.OrderID != 1 || got.Party != PartyProvider {
		t.Fatalf("old token after rotation: %+v, %v", got, err)
	}
	// Any single changed character is refused.
	for i := range s {
		c := byte('a')
		if s[i] == 'a' {
			c = 'b'
		}
		if _, err := cur.Verify(s[:i] + string(c) + s[i+1:]); err == nil {
			t.Errorf("tampered token at %d verified", i)
		}
	}
	local := "bestellungen+" + s
	if len(local) > 64 {
		t.Errorf("local part %d characters, want at most 64", len(local))
	}
	if got, ok := cur.FindToken("someone@else.example", local+"@example.org"); !ok || got != want {
		t.Errorf("FindToken in address = %+v, %v", got, ok)
	}
	if got, ok := cur.FindToken("2026-000123." + s + "@mailflow.example"); !ok || got != want {
		t.Errorf("FindToken in message id = %+v, %v", got, ok)
	}
	if _, err := NewTokens([]string{"short"}); err == nil {
		t.Error("a short secret was accepted")
	}
}
