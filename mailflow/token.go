package mailflow

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"strings"
)

// The reply token binds a reply address to one order, one party and one
// notification. It is lowercase base32 (local parts may be case-folded by
// mail systems) and 45 characters long, so "bestellungen+TOKEN" fits the
// 64-character local part of RFC 5321 §4.5.3.1.1.
//
// Layout before encoding (28 bytes):
//
//	byte 0      version (high 4 bits) and key id (low 4 bits)
//	bytes 1–5   order id, big endian
//	byte 6      party (1 provider, 2 intermediary)
//	bytes 7–11  notification id, big endian
//	bytes 12–27 HMAC-SHA-256 over bytes 0–11, truncated to 128 bits
const (
	tokenVersion = 1
	tokenBytes   = 28
	tokenMACLen  = 16
	// TokenLen is the length of an encoded token.
	TokenLen = 45
)

var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ErrBadToken is returned for a token that is malformed or whose MAC does
// not verify under any configured secret.
var ErrBadToken = errors.New("mailflow: reply token does not verify")

// Token is what a verified reply token says.
type Token struct {
	OrderID        int64
	Party          string
	NotificationID int64
}

// Tokens signs with the first secret and verifies with all of them, so a
// secret can be rotated: add the new one first, drop the old one once no
// reply to its notifications is expected any more.
type Tokens struct {
	keys [][]byte
}

// NewTokens returns a signer/verifier for the given secrets (newest first).
func NewTokens(secrets []string) (*Tokens, error) {
	if len(secrets) == 0 {
		return nil, errors.New("mailflow: no reply secret configured")
	}
	t := &Tokens{}
	for _, s := range secrets {
		if len(s) < 16 {
			return nil, errors.New("mailflow: a reply secret must be at least 16 characters")
		}
		t.keys = append(t.keys, []byte(s))
	}
	return t, nil
}

// keyID is derived from the key itself, so rotating the list's order needs
// no bookkeeping; two keys sharing an id just means both are tried.
func keyID(key []byte) byte {
	sum := sha256.Sum256(key)
	return sum[0] & 0x0f
}

func tokenMAC(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)[:tokenMACLen]
}

func put40(b []byte, v int64) {
	for i := 4; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

func get40(b []byte) int64 {
	var v int64
	for i := 0; i < 5; i++ {
		v = v<<8 | int64(b[i])
	}
	return v
}

// Sign returns the token for a notification to a party of an order.
func (t *Tokens) Sign(tok Token) string {
	var b [tokenBytes]byte
	b[0] = tokenVersion<<4 | keyID(t.keys[0])
	put40(b[1:6], tok.OrderID)
	if tok.Party == PartyIntermediary {
		b[6] = 2
	} else {
		b[6] = 1
	}
	put40(b[7:12], tok.NotificationID)
	copy(b[12:], tokenMAC(t.keys[0], b[:12]))
	return tokenEncoding.EncodeToString(b[:])
}

// Verify decodes a token and checks its MAC in constant time.
func (t *Tokens) Verify(s string) (Token, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) != TokenLen {
		return Token{}, ErrBadToken
	}
	b, err := tokenEncoding.DecodeString(s)
	if err != nil || len(b) != tokenBytes || b[0]>>4 != tokenVersion || (b[6] != 1 && b[6] != 2) {
		return Token{}, ErrBadToken
	}
	for _, k := range t.keys {
		if keyID(k) != b[0]&0x0f {
			continue
		}
		if hmac.Equal(tokenMAC(k, b[:12]), b[12:]) {
			tok := Token{OrderID: get40(b[1:6]), Party: PartyProvider, NotificationID: get40(b[7:12])}
			if b[6] == 2 {
				tok.Party = PartyIntermediary
			}
			return tok, nil
		}
	}
	return Token{}, ErrBadToken
}

// FindToken looks for a verifying token in the given strings: recipient
// addresses (local+TOKEN@domain) and message ids (number.TOKEN@domain).
func (t *Tokens) FindToken(candidates ...string) (Token, bool) {
	for _, c := range candidates {
		c = strings.ToLower(c)
		at := strings.LastIndexByte(c, '@')
		if at < 0 {
			continue
		}
		local := c[:at]
		for _, sep := range []byte{'+', '.'} {
			if i := strings.LastIndexByte(local, sep); i >= 0 && len(local)-i-1 == TokenLen {
				if tok, err := t.Verify(local[i+1:]); err == nil {
					return tok, true
				}
			}
		}
	}
	return Token{}, false
}

// The bounce token is the envelope sender (VERP) of one outbound message,
// local+b<TOKEN>@domain: a bounce (RFC 3464) returns to it and so names
// the outbox row it reports on by a secret, where the Message-ID quoted in
// a bounce proves nothing (anyone can quote it). It is lowercase base32 and
// 36 characters long, so "bestellungen+b" plus the token fits the
// 64-character local part.
//
// Layout before encoding (22 bytes):
//
//	byte 0      version 2 (high 4 bits) and key id (low 4 bits)
//	bytes 1–5   outbox row id, big endian
//	bytes 6–21  HMAC-SHA-256 over bytes 0–5, truncated to 128 bits
//
// The version byte is MAC'd, and the MAC'd data differs in length from a
// reply token's, so a bounce token never verifies as a reply token nor the
// other way round, although both use the same secrets.
const (
	bounceTokenVersion = 2
	bounceTokenBytes   = 22
	// BounceTokenLen is the length of an encoded bounce token.
	BounceTokenLen = 36
	// bouncePrefix starts the bounce token in the local part, after "+".
	bouncePrefix = "b"
)

// SignBounce returns the bounce token of an outbox row.
func (t *Tokens) SignBounce(outboxID int64) string {
	var b [bounceTokenBytes]byte
	b[0] = bounceTokenVersion<<4 | keyID(t.keys[0])
	put40(b[1:6], outboxID)
	copy(b[6:], tokenMAC(t.keys[0], b[:6]))
	return tokenEncoding.EncodeToString(b[:])
}

// VerifyBounce decodes a bounce token and checks its MAC in constant time,
// under every configured secret.
func (t *Tokens) VerifyBounce(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) != BounceTokenLen {
		return 0, ErrBadToken
	}
	b, err := tokenEncoding.DecodeString(s)
	// The last character carries 4 unused bits: only the canonical
	// encoding is accepted, so one token has one spelling.
	if err != nil || len(b) != bounceTokenBytes || b[0]>>4 != bounceTokenVersion || tokenEncoding.EncodeToString(b) != s {
		return 0, ErrBadToken
	}
	for _, k := range t.keys {
		if keyID(k) == b[0]&0x0f && hmac.Equal(tokenMAC(k, b[:6]), b[6:]) {
			return get40(b[1:6]), nil
		}
	}
	return 0, ErrBadToken
}

// BounceAddress is the envelope sender of outbox row outboxID: the replies
// address (local@domain) with "+b" and the bounce token.
func (t *Tokens) BounceAddress(replyAddress string, outboxID int64) string {
	at := strings.LastIndexByte(replyAddress, '@')
	if at < 0 {
		return replyAddress
	}
	return replyAddress[:at] + "+" + bouncePrefix + t.SignBounce(outboxID) + replyAddress[at:]
}

// FindBounceToken looks for a verifying bounce token in recipient
// addresses (local+bTOKEN@domain) and returns the outbox row id it names.
// shaped reports a bounce-token-shaped address that does not verify
// (forged or altered).
func (t *Tokens) FindBounceToken(candidates ...string) (id int64, ok, shaped bool) {
	for _, c := range candidates {
		c = strings.ToLower(c)
		at := strings.LastIndexByte(c, '@')
		if at < 0 {
			continue
		}
		local := c[:at]
		i := strings.LastIndexByte(local, '+')
		if i < 0 || len(local)-i-1 != len(bouncePrefix)+BounceTokenLen || !strings.HasPrefix(local[i+1:], bouncePrefix) {
			continue
		}
		if id, err := t.VerifyBounce(local[i+1+len(bouncePrefix):]); err == nil {
			return id, true, false
		}
		shaped = true
	}
	return 0, false, shaped
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
