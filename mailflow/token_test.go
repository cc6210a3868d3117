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

// TestBounceTokens: the VERP token of an outbox row verifies in any case,
// survives key rotation, refuses any altered character, fits the local
// part, and is never taken for a reply token nor a reply token for it.
func TestBounceTokens(t *testing.T) {
	old, _ := NewTokens([]string{"old-secret-0123456789"})
	cur, _ := NewTokens([]string{"new-secret-0123456789", "old-secret-0123456789"})
	const id = int64(0xABCDEF1234)
	s := cur.SignBounce(id)
	if len(s) != BounceTokenLen || strings.ToLower(s) != s {
		t.Fatalf("bounce token %q: want %d lowercase characters", s, BounceTokenLen)
	}
	if got, err := cur.VerifyBounce(strings.ToUpper(s)); err != nil || got != id {
		t.Fatalf("VerifyBounce = %d, %v; want %d", got, err, id)
	}
	if _, err := old.VerifyBounce(s); err == nil {
		t.Fatal("a bounce token of the new secret verified under the old one only")
	}
	if got, err := cur.VerifyBounce(old.SignBounce(7)); err != nil || got != 7 {
		t.Fatalf("old bounce token after rotation: %d, %v", got, err)
	}
	for i := range s {
		c := byte('a')
		if s[i] == 'a' {
			c = 'b'
		}
		if _, err := cur.VerifyBounce(s[:i] + string(c) + s[i+1:]); err == nil {
			t.Errorf("tampered bounce token at %d verified", i)
		}
	}
	addr := cur.BounceAddress("bestellungen@example.org", id)
	if local := addr[:strings.LastIndexByte(addr, '@')]; len(local) > 64 || local != "bestellungen+b"+s {
		t.Errorf("bounce address %q: local part %d characters, want bestellungen+b<token>, at most 64", addr, len(local))
	}
	if got, ok, _ := cur.FindBounceToken("someone@else.example", strings.ToUpper(addr)); !ok || got != id {
		t.Errorf("FindBounceToken = %d, %v", got, ok)
	}
	tampered := strings.Replace(addr, "+b"+s[:1], "+b"+string('a'+(s[0]-'a'+1)%26), 1)
	if _, ok, shaped := cur.FindBounceToken(tampered); ok || !shaped {
		t.Errorf("FindBounceToken(%q) = %v, shaped %v; want not found, shaped", tampered, ok, shaped)
	}

	// Domain separation: each kind refuses the other's, even a token that
	// carries a valid MAC over its own layout but the other's version.
	reply := cur.Sign(Token{OrderID: 1, Party: PartyProvider, NotificationID: 2})
	if _, ok := cur.FindToken(addr); ok {
		t.Error("a bounce address verified as a reply token")
	}
	if _, ok, _ := cur.FindBounceToken("bestellungen+" + reply + "@example.org"); ok {
		t.Error("a reply address verified as a bounce token")
	}
	key := cur.keys[0]
	var rb [tokenBytes]byte
	rb[0] = bounceTokenVersion<<4 | keyID(key)
	rb[6] = 1
	copy(rb[12:], tokenMAC(key, rb[:12]))
	if _, err := cur.Verify(tokenEncoding.EncodeToString(rb[:])); err == nil {
		t.Error("a reply-shaped token with the bounce version verified as a reply token")
	}
	var bb [bounceTokenBytes]byte
	bb[0] = tokenVersion<<4 | keyID(key)
	put40(bb[1:6], id)
	copy(bb[6:], tokenMAC(key, bb[:6]))
	if _, err := cur.VerifyBounce(tokenEncoding.EncodeToString(bb[:])); err == nil {
		t.Error("a bounce-shaped token with the reply version verified as a bounce token")
	}
}
