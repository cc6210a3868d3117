package storage_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/storage/storagetest"
)

// TestSessions: a session is found by its hash until its idle or its
// absolute end, whichever comes first; touching it moves the idle end;
// a second daemon on the same database sees it; "log out everywhere"
// ends every session of one person and no one else's.
func TestSessions(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			daemons := openDaemons(t, driver)
			a, b := daemons[0], daemons[1]
			t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
			mk := func(hash, role, org, subject string) *mailflow.Session {
				return &mailflow.Session{IDHash: hash, Role: role, Org: org, Subject: subject, CSRF: "csrf-" + hash,
					Created: t0, LastSeen: t0, IdleUntil: t0.Add(2 * time.Hour), Expires: t0.Add(12 * time.Hour)}
			}
			for _, s := range []*mailflow.Session{
				mk("h1", "provider", "dataport", "erika@dataport.example"),
				mk("h2", "provider", "dataport", "erika@dataport.example"),
				mk("h3", "provider", "dataport", "max@dataport.example"),
				mk("h4", "coordinator", "", "koordinierung"),
			} {
				if err := a.CreateSession(ctx, s); err != nil {
					t.Fatal(err)
				}
			}
			got, err := b.Session(ctx, "h1", t0.Add(time.Minute))
			if err != nil || got.Role != "provider" || got.Org != "dataport" || got.Subject != "erika@dataport.example" || got.CSRF != "csrf-h1" {
				t.Fatalf("second daemon: %+v, %v", got, err)
			}
			// Idle: 2 h without a request end it; a request moves the end.
			if _, err := b.Session(ctx, "h4", t0.Add(2*time.Hour)); !errors.Is(err, mailflow.ErrNotFound) {
				t.Errorf("idle for 2 h: %v, want ErrNotFound", err)
			}
			for i := 1; i <= 7; i++ { // a request every 100 minutes for 11h40m
				now := t0.Add(time.Duration(i) * 100 * time.Minute)
				if _, err := a.Session(ctx, "h1", now); err != nil {
					t.Fatalf("active session after %s: %v", now.Sub(t0), err)
				}
				if err := a.TouchSession(ctx, "h1", now, now.Add(2*time.Hour)); err != nil {
					t.Fatal(err)
				}
			}
			// Absolute: 12 h end it however busy it is.
			if _, err := a.Session(ctx, "h1", t0.Add(12*time.Hour)); !errors.Is(err, mailflow.ErrNotFound) {
				t.Errorf("after 12 h: %v, want ErrNotFound", err)
			}
			// Log out everywhere: Erika's sessions end, Max's stays.
			n, err := a.DeleteSessionsOf(ctx, "provider", "dataport", "erika@dataport.example")
			if err != nil || n != 2 {
				t.Errorf("DeleteSessionsOf: %d, %v; want 2", n, err)
			}
			if _, err := b.Session(ctx, "h2", t0.Add(time.Minute)); !errors.Is(err, mailflow.ErrNotFound) {
				t.Errorf("h2 after logout everywhere: %v", err)
			}
			if _, err := b.Session(ctx, "h3", t0.Add(time.Minute)); err != nil {
				t.Errorf("another person's session ended too: %v", err)
			}
			if err := b.DeleteSession(ctx, "h3"); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Session(ctx, "h3", t0.Add(time.Minute)); !errors.Is(err, mailflow.ErrNotFound) {
				t.Errorf("h3 after logout: %v", err)
			}
		})
	}
}

// TestSigninLinks: a link is used once, before it expires; of two
// daemons using it at the same moment exactly one succeeds; looking at
// it (a mail scanner) does not use it up.
func TestSigninLinks(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			daemons := openDaemons(t, driver)
			t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
			for _, h := range []string{"l1", "l2", "l3"} {
				if err := daemons[0].CreateSigninLink(ctx, &mailflow.SigninLink{TokenHash: h, Role: "provider", Org: "itnrw",
					Email: "orders@it.nrw.example", Created: t0, Expires: t0.Add(15 * time.Minute)}); err != nil {
					t.Fatal(err)
				}
			}
			if l, err := daemons[1].SigninLink(ctx, "l1"); err != nil || l.Used != nil || l.Org != "itnrw" {
				t.Fatalf("look: %+v %v", l, err)
			}
			var wg sync.WaitGroup
			var wins [2]bool
			for i, d := range daemons {
				wg.Go(func() {
					l, err := d.UseSigninLink(ctx, "l1", t0.Add(time.Minute))
					wins[i] = err == nil && l.Email == "orders@it.nrw.example" && l.Role == "provider"
					if err != nil && !errors.Is(err, mailflow.ErrNotFound) {
						t.Errorf("use: %v", err)
					}
				})
			}
			wg.Wait()
			if wins[0] == wins[1] {
				t.Errorf("two concurrent uses: %v, want exactly one to sign in", wins)
			}
			if l, _ := daemons[0].SigninLink(ctx, "l1"); l == nil || l.Used == nil {
				t.Errorf("used link not marked: %+v", l)
			}
			if _, err := daemons[0].UseSigninLink(ctx, "l1", t0.Add(2*time.Minute)); !errors.Is(err, mailflow.ErrNotFound) {
				t.Errorf("reuse: %v, want ErrNotFound", err)
			}
			if _, err := daemons[0].UseSigninLink(ctx, "l2", t0.Add(15*time.Minute)); !errors.Is(err, mailflow.ErrNotFound) {
				t.Errorf("expired: %v, want ErrNotFound", err)
			}
			if _, err := daemons[0].UseSigninLink(ctx, "l3", t0.Add(15*time.Minute-time.Second)); err != nil {
				t.Errorf("just in time: %v", err)
			}
			if _, err := daemons[0].UseSigninLink(ctx, "unknown", t0); !errors.Is(err, mailflow.ErrNotFound) {
				t.Errorf("unknown: %v", err)
			}
		})
	}
}

// TestSigninAttempts: attempts count per kind and key within the window,
// across daemons, and a clear forgets one key only.
func TestSigninAttempts(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			daemons := openDaemons(t, driver)
			t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
			for i := range 3 {
				if err := daemons[i%2].RecordSigninAttempt(ctx, "link-address", "k1", t0.Add(time.Duration(i)*time.Minute)); err != nil {
					t.Fatal(err)
				}
			}
			if err := daemons[0].RecordSigninAttempt(ctx, "link-client", "k1", t0); err != nil {
				t.Fatal(err)
			}
			count := func(kind, key string, since time.Time) int {
				n, err := daemons[1].CountSigninAttempts(ctx, kind, key, since)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			if n := count("link-address", "k1", t0.Add(-time.Hour)); n != 3 {
				t.Errorf("count: %d, want 3", n)
			}
			if n := count("link-address", "k1", t0); n != 2 {
				t.Errorf("count since the first: %d, want 2 (the window excludes its start)", n)
			}
			if at, err := daemons[0].OldestSigninAttempt(ctx, "link-address", "k1", t0.Add(-time.Hour), 2); err != nil || !at.Equal(t0.Add(time.Minute)) {
				t.Errorf("second newest: %v %v, want %v", at, err, t0.Add(time.Minute))
			}
			if at, _ := daemons[0].OldestSigninAttempt(ctx, "link-address", "k1", t0.Add(-time.Hour), 4); !at.IsZero() {
				t.Errorf("fourth newest of three: %v, want zero", at)
			}
			if err := daemons[0].ClearSigninAttempts(ctx, "link-address", "k1"); err != nil {
				t.Fatal(err)
			}
			if n := count("link-address", "k1", t0.Add(-time.Hour)); n != 0 {
				t.Errorf("after clear: %d", n)
			}
			if n := count("link-client", "k1", t0.Add(-time.Hour)); n != 1 {
				t.Errorf("clear removed another kind: %d", n)
			}
		})
	}
}

// TestOrderScope: a provider's scope selects the orders placed with it
// (DV and UV), an intermediary's its UV orders; lists, counts and status
// counts agree, and a scope of an unknown party selects nothing.
func TestOrderScope(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := openWithCatalog(t, driver)
			flow := &mailflow.Flow{Store: s}
			mk := func(file, ext string) *mailflow.Order {
				req := loadOrder(t, file)
				req.ExternalID = ext
				o, _, err := flow.CreateOrder(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				return o
			}
			dv1, dv2, uv := mk("order-dv.json", "dv-1"), mk("order-dv.json", "dv-2"), mk("order-uv.json", "uv-1")
			if _, err := flow.Decide(ctx, dv2.Number, mailflow.Decision{Party: "provider", Intent: "accept", Source: "manual"}); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				party, id string
				want      []string
			}{
				{"", "", []string{uv.Number, dv2.Number, dv1.Number}},
				{"provider", "dataport", []string{dv2.Number, dv1.Number}},
				{"provider", "itnrw", []string{uv.Number}},
				{"intermediary", "govdigital", []string{uv.Number}},
				{"intermediary", "dataport", nil},
				{"provider", "govdigital", nil},
				{"customer", "dataport", nil},
			} {
				f := mailflow.OrderFilter{Party: tc.party, PartyID: tc.id}
				list, err := s.Orders(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, o := range list {
					got = append(got, o.Number)
				}
				if len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) || (len(got) > 1 && got[1] != tc.want[1]) || (len(got) > 2 && got[2] != tc.want[2]) {
					t.Errorf("%s %s: %v, want %v", tc.party, tc.id, got, tc.want)
				}
				n, err := s.CountOrders(ctx, f)
				if err != nil || n != len(tc.want) {
					t.Errorf("%s %s: count %d %v, want %d", tc.party, tc.id, n, err, len(tc.want))
				}
				counts, err := s.StatusCountsFor(ctx, mailflow.OrderFilter{Party: tc.party, PartyID: tc.id, Status: mailflow.StatusOrdered})
				if err != nil {
					t.Fatal(err)
				}
				sum := 0
				for _, c := range counts {
					sum += c
				}
				if sum != len(tc.want) {
					t.Errorf("%s %s: status counts %v, want %d orders", tc.party, tc.id, counts, len(tc.want))
				}
			}
			// A status filter and a search narrow within the scope.
			if n, _ := s.CountOrders(ctx, mailflow.OrderFilter{Party: "provider", PartyID: "dataport", Status: mailflow.StatusOrdered}); n != 1 {
				t.Errorf("dataport ordered: %d, want 1", n)
			}
			if n, _ := s.CountOrders(ctx, mailflow.OrderFilter{Party: "provider", PartyID: "dataport", Query: uv.Number}); n != 0 {
				t.Errorf("dataport searching the UV order of another provider: %d, want 0", n)
			}
		})
	}
}

// TestPageLanguage: a person's choice of language is kept per person
// (role, organization, address), a later choice replaces it, another
// daemon sees it, and it is no one else's.
func TestPageLanguage(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			daemons := openDaemons(t, driver)
			a, b := daemons[0], daemons[1]
			t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
			if got, err := a.PageLanguage(ctx, "provider", "dataport", "erika@dataport.example"); err != nil || got != "" {
				t.Fatalf("before a choice: %q, %v; want none", got, err)
			}
			if err := a.SetPageLanguage(ctx, "provider", "dataport", "erika@dataport.example", "en", t0); err != nil {
				t.Fatal(err)
			}
			if err := a.SetPageLanguage(ctx, "coordinator", "", "koordinierung", "en", t0); err != nil {
				t.Fatal(err)
			}
			if err := b.SetPageLanguage(ctx, "coordinator", "", "koordinierung", "de", t0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct{ role, org, subject, want string }{
				{"provider", "dataport", "erika@dataport.example", "en"},
				{"coordinator", "", "koordinierung", "de"},                 // the later choice
				{"provider", "dataport", "max@dataport.example", ""},       // another address
				{"intermediary", "dataport", "erika@dataport.example", ""}, // same address, other role
				{"provider", "itnrw", "erika@dataport.example", ""},        // same address, other organization
			} {
				if got, err := b.PageLanguage(ctx, tc.role, tc.org, tc.subject); err != nil || got != tc.want {
					t.Errorf("%s/%s/%s: %q, %v; want %q", tc.role, tc.org, tc.subject, got, err, tc.want)
				}
			}
		})
	}
}
