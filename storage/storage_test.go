package storage_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"mailflow/mailflow"
	"mailflow/storage"
	"mailflow/storage/storagetest"
)

// openWithCatalog opens a fresh store on driver with the example catalog.
func openWithCatalog(t *testing.T, driver string) *storage.Store {
	t.Helper()
	s := storagetest.Open(t, driver)
	if err := s.ImportCatalog(context.Background(), loadCatalog(t)); err != nil {
		t.Fatal(err)
	}
	return s
}

func loadCatalog(t *testing.T) *mailflow.Catalog {
	b, err := os.ReadFile("../examples/catalog.json")
	if err != nil {
		t.Fatal(err)
	}
	var cat mailflow.Catalog
	if err := json.Unmarshal(b, &cat); err != nil {
		t.Fatal(err)
	}
	if err := mailflow.ValidateCatalog(&cat); err != nil {
		t.Fatal(err)
	}
	return &cat
}

func loadOrder(t *testing.T, name string) *mailflow.OrderRequest {
	b, err := os.ReadFile("../examples/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var req mailflow.OrderRequest
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	return &req
}

func TestMigrations(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			drv, dsn := storagetest.DSN(t, driver)
			s, err := storage.Open(ctx, drv, dsn)
			if err != nil {
				t.Fatal(err)
			}
			// Applying again is a no-op.
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("second migrate: %v", err)
			}
			var v int
			s.DB().Get(&v, `SELECT version FROM schema_version`)
			if v != storage.SchemaVersion {
				t.Errorf("version %d, want %d", v, storage.SchemaVersion)
			}
			// A schema from a newer binary is refused.
			if _, err := s.DB().Exec(`UPDATE schema_version SET version = version + 1`); err != nil {
				t.Fatal(err)
			}
			s.Close()
			if _, err := storage.Open(ctx, drv, dsn); err == nil || !strings.Contains(err.Error(), "newer than this binary") {
				t.Errorf("open newer schema: %v, want a refusal", err)
			}
		})
	}
}

func TestCatalogReimportKeepsSnapshots(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := storagetest.Open(t, driver)
			cat := loadCatalog(t)
			if err := s.ImportCatalog(ctx, cat); err != nil {
				t.Fatal(err)
			}
			got, err := s.Catalog(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Services) != 2 || len(got.Terms) != 2 || len(got.Services[0].Conditions) != 1 || got.Terms[0].SHA256 != mailflow.TextSHA256(got.Terms[0].Text) {
				t.Fatalf("catalog round trip: %+v", got)
			}
			flow := &mailflow.Flow{Store: s}
			o, _, err := flow.CreateOrder(ctx, loadOrder(t, "order-dv.json"))
			if err != nil {
				t.Fatal(err)
			}
			// The provider changes its price and the AGB text is corrected.
			cat.Services[0].Prices[0].AmountCents = 999
			cat.Terms[1].Text += "§ 4 Nachtrag.\n"
			cat.Terms[1].SHA256 = ""
			if err := mailflow.ValidateCatalog(cat); err != nil {
				t.Fatal(err)
			}
			if err := s.ImportCatalog(ctx, cat); err != nil {
				t.Fatal(err)
			}
			again, err := s.Order(ctx, o.Number)
			if err != nil {
				t.Fatal(err)
			}
			if again.Snapshot.Price.AmountCents != 120000 || again.Snapshot.Terms.SHA256 != o.Snapshot.Terms.SHA256 {
				t.Errorf("snapshot changed by re-import: price %d terms %s", again.Snapshot.Price.AmountCents, again.Snapshot.Terms.SHA256)
			}
			o2, _, err := flow.CreateOrder(ctx, func() *mailflow.OrderRequest { r := loadOrder(t, "order-dv.json"); r.ExternalID = "new"; return r }())
			if err != nil {
				t.Fatal(err)
			}
			if o2.Snapshot.Price.AmountCents != 999 || o2.Snapshot.Terms.SHA256 == o.Snapshot.Terms.SHA256 {
				t.Errorf("a new order did not take the new catalog")
			}
		})
	}
}

// openDaemons opens two stores on one new database, as two daemons
// sharing it.
func openDaemons(t *testing.T, driver string) [2]*storage.Store {
	t.Helper()
	drv, dsn := storagetest.DSN(t, driver)
	var daemons [2]*storage.Store
	for i := range daemons {
		s, err := storage.Open(context.Background(), drv, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		daemons[i] = s
	}
	return daemons
}

// TestCatalogImportByAnotherDaemon: two daemons share a database; each
// keeps the catalog in memory, and an import by one reaches the orders
// of the other at once, also an order for a service that only the import
// added, which the other's catalog in memory would reject.
func TestCatalogImportByAnotherDaemon(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			daemons := openDaemons(t, driver)
			a, b := daemons[0], daemons[1]
			cat := loadCatalog(t)
			if err := a.ImportCatalog(ctx, cat); err != nil {
				t.Fatal(err)
			}
			flow := &mailflow.Flow{Store: b}
			steps := []struct {
				name    string
				edit    func(*mailflow.Catalog)
				price   int64
				name2   string
				service string
			}{
				{"first import", func(*mailflow.Catalog) {}, 120000, "Dataport AöR", "dvc-mail"},
				{"price changed", func(c *mailflow.Catalog) { c.Services[0].Prices[0].AmountCents = 999 }, 999, "Dataport AöR", "dvc-mail"},
				{"provider renamed", func(c *mailflow.Catalog) { c.Providers[0].Name = "Dataport (neu)" }, 999, "Dataport (neu)", "dvc-mail"},
				{"service added", func(c *mailflow.Catalog) {
					svc := c.Services[0]
					svc.ID = "dvc-mail-plus"
					c.Services = append(c.Services, svc)
				}, 999, "Dataport (neu)", "dvc-mail-plus"},
			}
			for i, st := range steps {
				st.edit(cat)
				if err := a.ImportCatalog(ctx, cat); err != nil {
					t.Fatal(err)
				}
				req := loadOrder(t, "order-dv.json")
				req.ExternalID, req.Service = fmt.Sprintf("x-%d", i), st.service
				o, _, err := flow.CreateOrder(ctx, req)
				if err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
				if o.Snapshot.Price.AmountCents != st.price || o.Snapshot.Provider.Name != st.name2 || o.Snapshot.Service.ID != st.service {
					t.Errorf("%s: the other daemon's order has price %d, provider %q, service %s; want %d, %q, %s",
						st.name, o.Snapshot.Price.AmountCents, o.Snapshot.Provider.Name, o.Snapshot.Service.ID, st.price, st.name2, st.service)
				}
			}
		})
	}
}

// TestTransactionRollsBack: when a step inside a transaction fails,
// nothing of it stays, and the allocated number is not used up.
func TestTransactionRollsBack(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := openWithCatalog(t, driver)
			boom := errors.New("compose failed")
			flow := &mailflow.Flow{Store: s, Notifier: failingNotifier{boom}}
			if _, _, err := flow.CreateOrder(ctx, loadOrder(t, "order-uv.json")); !errors.Is(err, boom) {
				t.Fatalf("err = %v, want %v", err, boom)
			}
			for _, table := range []string{"orders", "outbox", "order_counters"} {
				var n int
				s.DB().Get(&n, "SELECT COUNT(*) FROM "+table)
				if n != 0 {
					t.Errorf("%d rows left in %s", n, table)
				}
			}
		})
	}
}

type failingNotifier struct{ err error }

func (f failingNotifier) OrderCreated(*mailflow.Order) ([]*mailflow.OutboxMessage, error) {
	return nil, f.err
}

func (f failingNotifier) DecisionRecorded(*mailflow.Order, mailflow.Decision, mailflow.Status) ([]*mailflow.OutboxMessage, error) {
	return nil, f.err
}

// TestOutboxClaim: a claimed row is leased to one sender; after the lease
// ends it is claimed again with the same bytes.
func TestOutboxClaim(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := storagetest.Open(t, driver)
			now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
			raw := []byte("Message-ID: <x@y>\r\n\r\nhello\r\n")
			err := s.InTx(ctx, func(tx mailflow.Tx) error {
				return tx.Enqueue(&mailflow.OutboxMessage{Ref: 7, Kind: mailflow.KindAlert, Sender: "a@b.example",
					Recipients: []string{"c@d.example"}, MessageID: "x@y", Subject: "s", Raw: raw, CreatedAt: now})
			})
			if err != nil {
				t.Fatal(err)
			}
			first, err := s.ClaimOutbox(ctx, now, 10, time.Minute)
			if err != nil || len(first) != 1 || string(first[0].Raw) != string(raw) {
				t.Fatalf("claim: %v %v", first, err)
			}
			if again, _ := s.ClaimOutbox(ctx, now.Add(30*time.Second), 10, time.Minute); len(again) != 0 {
				t.Errorf("a leased row was claimed twice")
			}
			late, _ := s.ClaimOutbox(ctx, now.Add(2*time.Minute), 10, time.Minute)
			if len(late) != 1 || string(late[0].Raw) != string(raw) || late[0].MessageID != "x@y" {
				t.Fatalf("after lease: %v", late)
			}
			if err := s.MarkSent(ctx, late[0].ID, now); err != nil {
				t.Fatal(err)
			}
			if again, _ := s.ClaimOutbox(ctx, now.Add(time.Hour), 10, time.Minute); len(again) != 0 {
				t.Errorf("a sent row was claimed")
			}
			if first, _ := s.MarkFailed(ctx, late[0].ID, "x"); !first {
				t.Errorf("MarkFailed on a sent row did not report the change")
			}
			if again, _ := s.MarkFailed(ctx, late[0].ID, "x"); again {
				t.Errorf("MarkFailed twice reported a change twice")
			}
		})
	}
}

// A received message comes back byte for byte, small ones stored in the
// row and large ones in pieces; one too large to download has no bytes.
func TestInboundRaw(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := storagetest.Open(t, driver)
			big := make([]byte, 2<<20+12345)
			for i := range big {
				big[i] = byte(i * 7)
			}
			cases := map[string][]byte{"small": []byte("From: a@b.example\r\n\r\nhallo\r\n"), "large": big, "too large": nil}
			ids := map[string]int64{}
			for name, raw := range cases {
				m := &mailflow.InboundMessage{MessageID: "<" + name + "@test>", ReceivedAt: time.Now(), Raw: raw, Size: int64(len(raw)), Verdict: mailflow.VerdictUnmatched}
				err := s.InboxTx(ctx, func(tx mailflow.InboxTx) error {
					if dup, err := tx.ClaimInbound(m); err != nil || dup {
						return errors.Join(err, errors.New("claimed as duplicate"))
					}
					return tx.FinishInbound(m)
				})
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				ids[name] = m.ID
			}
			for name, want := range cases {
				got, err := s.InboundRaw(ctx, ids[name])
				if err != nil || string(got) != string(want) || (want == nil) != (got == nil) {
					t.Errorf("%s: %d bytes back (%v), want %d", name, len(got), err, len(want))
				}
			}
		})
	}
}

// TestCreateOrdersConcurrently: clients create orders at once, each
// request twice (a portal's retry racing its original) and some failing
// to compose. Every order is created once with its notification, the
// retries find it, the failures leave nothing, and the numbers have no
// gap.
func TestCreateOrdersConcurrently(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := openWithCatalog(t, driver)
			boom := errors.New("compose failed")
			flow := &mailflow.Flow{Store: s, Notifier: oneMessage{fail: "-fail", err: boom}}
			const n = 40
			type result struct {
				o       *mailflow.Order
				created bool
				err     error
			}
			results := make([]result, 2*n)
			reqs := make(chan int)
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for i := range reqs {
						req := loadOrder(t, "order-dv.json")
						req.ExternalID = fmt.Sprintf("c-%d", i/2)
						if i/2%7 == 3 {
							req.ExternalID += "-fail"
						}
						o, created, err := flow.CreateOrder(ctx, req)
						results[i] = result{o, created, err}
					}
				})
			}
			for i := range 2 * n {
				reqs <- i
			}
			close(reqs)
			wg.Wait()

			var numbers []string
			for i := 0; i < 2*n; i += 2 {
				a, b := results[i], results[i+1]
				if i/2%7 == 3 {
					if !errors.Is(a.err, boom) || !errors.Is(b.err, boom) {
						t.Errorf("order %d: errors %v, %v; want %v", i/2, a.err, b.err, boom)
					}
					continue
				}
				if a.err != nil || b.err != nil {
					t.Fatalf("order %d: %v, %v", i/2, a.err, b.err)
				}
				if a.created == b.created || a.o.Number != b.o.Number || a.o.ID != b.o.ID {
					t.Errorf("order %d: created %v/%v, numbers %s/%s; want one created and the same order twice",
						i/2, a.created, b.created, a.o.Number, b.o.Number)
				}
				numbers = append(numbers, a.o.Number)
			}
			slices.Sort(numbers)
			for i, num := range numbers {
				if want := fmt.Sprintf("2026-%06d", i+1); num != want {
					t.Fatalf("numbers %v; want 2026-000001 to 2026-%06d without a gap", numbers, len(numbers))
				}
			}
			var orders, outbox int
			s.DB().Get(&orders, `SELECT COUNT(*) FROM orders`)
			s.DB().Get(&outbox, `SELECT COUNT(DISTINCT order_id) FROM outbox`)
			if orders != len(numbers) || outbox != len(numbers) {
				t.Errorf("%d orders, %d with a notification; want %d of each", orders, outbox, len(numbers))
			}
		})
	}
}

// oneMessage is a Notifier that sends one message per new order and fails
// for the orders whose external id ends in fail.
type oneMessage struct {
	fail string
	err  error
}

func (n oneMessage) OrderCreated(o *mailflow.Order) ([]*mailflow.OutboxMessage, error) {
	if strings.HasSuffix(o.ExternalID, n.fail) {
		return nil, n.err
	}
	return []*mailflow.OutboxMessage{{OrderID: o.ID, Ref: o.ID, Kind: mailflow.KindNotification, Sender: "a@example.org",
		Recipients: []string{"b@example.org"}, MessageID: o.Number + "@example.org", Subject: o.Number, Raw: []byte(o.Number)}}, nil
}

func (n oneMessage) DecisionRecorded(*mailflow.Order, mailflow.Decision, mailflow.Status) ([]*mailflow.OutboxMessage, error) {
	return nil, nil
}

// TestOrderNumbers: numbers count up per year from 000001 and grow a digit
// after 999999, the same with either database (PostgreSQL formats them
// in SQL), and the status page's search finds an order by its number
// and its customer.
func TestOrderNumbers(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := openWithCatalog(t, driver)
			flow := &mailflow.Flow{Store: s}
			create := func(id string, at time.Time) string {
				t.Helper()
				req := loadOrder(t, "order-dv.json")
				req.ExternalID, req.OrderedAt = id, &at
				o, created, err := flow.CreateOrder(ctx, req)
				if err != nil || !created {
					t.Fatalf("create %s: %v, created %v", id, err, created)
				}
				return o.Number
			}
			nov := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
			newYear := time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC) // 2027 in Berlin
			got := []string{create("a", nov), create("b", newYear)}
			if _, err := s.DB().Exec(`UPDATE order_counters SET last = 999998 WHERE year = 2026`); err != nil {
				t.Fatal(err)
			}
			got = append(got, create("c", nov), create("d", nov))
			want := []string{"2026-000001", "2027-000001", "2026-999999", "2026-1000000"}
			if !slices.Equal(got, want) {
				t.Errorf("numbers %v, want %v", got, want)
			}
			for _, q := range []string{"2026-1000000", "2026-999999"} {
				found, err := s.Orders(ctx, mailflow.OrderFilter{Query: q})
				if err != nil || len(found) != 1 || found[0].Number != q {
					t.Errorf("search %q: %d orders, %v", q, len(found), err)
				}
			}
			customer := loadOrder(t, "order-dv.json").Customer.Name
			if found, err := s.Orders(ctx, mailflow.OrderFilter{Query: strings.ToUpper(customer)}); err != nil || len(found) != 4 {
				t.Errorf("search %q: %d orders, %v; want 4", customer, len(found), err)
			}
		})
	}
}

// TestCreateOrderStaleCatalog: an order whose snapshot was built from a
// catalog that has been imported over since is not stored, and its
// number is not used up; the store then reads the catalog again.
func TestCreateOrderStaleCatalog(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			daemons := openDaemons(t, driver)
			s, other := daemons[0], daemons[1]
			if err := s.ImportCatalog(ctx, loadCatalog(t)); err != nil {
				t.Fatal(err)
			}
			old, err := s.Catalog(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// The other daemon imports; this one's catalog is now stale.
			if err := other.ImportCatalog(ctx, loadCatalog(t)); err != nil {
				t.Fatal(err)
			}
			create := func(rev int64) (*mailflow.Order, error) {
				o := &mailflow.Order{ExternalID: "x", ContractModel: mailflow.ModelDV, Status: mailflow.StatusOpen,
					OrderedAt: time.Now(), CreatedAt: time.Now()}
				return o, s.InTx(ctx, func(tx mailflow.Tx) error {
					_, err := tx.CreateOrder(o, 2026, rev)
					return err
				})
			}
			if _, err := create(old.Revision); !errors.Is(err, mailflow.ErrCatalogChanged) {
				t.Fatalf("with revision %d: %v, want %v", old.Revision, err, mailflow.ErrCatalogChanged)
			}
			cur, err := s.Catalog(ctx)
			if err != nil || cur.Revision != old.Revision+1 {
				t.Fatalf("catalog read again at revision %d, %v; want %d", cur.Revision, err, old.Revision+1)
			}
			o, err := create(cur.Revision)
			if err != nil || o.Number != "2026-000001" {
				t.Errorf("with the current revision: %v, number %s; want 2026-000001", err, o.Number)
			}
		})
	}
}

// An SMTP server's reply may hold any bytes and be long: last_error keeps
// it as valid UTF-8 without NUL, cut between characters, so that
// PostgreSQL accepts the update and the row does not stay pending forever.
func TestOutboxLastErrorStorable(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := storagetest.Open(t, driver)
			now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
			err := s.InTx(ctx, func(tx mailflow.Tx) error {
				return tx.Enqueue(&mailflow.OutboxMessage{Ref: 7, Kind: mailflow.KindAlert, Sender: "a@b.example",
					Recipients: []string{"c@d.example"}, MessageID: "x@y", Subject: "s", Raw: []byte("x\r\n"), CreatedAt: now})
			})
			if err != nil {
				t.Fatal(err)
			}
			rows, err := s.ClaimOutbox(ctx, now, 10, time.Minute)
			if err != nil || len(rows) != 1 {
				t.Fatalf("claim: %v %v", rows, err)
			}
			id := rows[0].ID
			reply := "smtp RCPT: 450 Postf\xe4cher\x00 voll: " + strings.Repeat("ü", 1200)
			if err := s.MarkRetry(ctx, id, now, reply); err != nil {
				t.Fatalf("mark retry: %v", err)
			}
			check := func(what string) {
				t.Helper()
				list, err := s.OutboxList(ctx, "", 10)
				if err != nil || len(list) != 1 {
					t.Fatalf("%s: list %v %v", what, list, err)
				}
				got := list[0].LastError
				if !strings.HasPrefix(got, "smtp RCPT: 450 Postf\uFFFDcher voll: üü") || strings.ContainsRune(got, 0) {
					t.Errorf("%s: last_error %q", what, got[:min(len(got), 60)])
				}
				if n := utf8.RuneCountInString(got); n != 1000 {
					t.Errorf("%s: last_error has %d characters, want 1000", what, n)
				}
			}
			check("retry")
			if changed, err := s.MarkFailed(ctx, id, reply); err != nil || !changed {
				t.Fatalf("mark failed: %v %v", changed, err)
			}
			check("failed")
		})
	}
}
