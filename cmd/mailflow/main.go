// Command mailflow runs the email order loop of a public-sector cloud
// marketplace: the daemon (serve), a self-contained demo, and the
// operator's verbs for catalog, orders, billing, inbox and outbox.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // Europe/Berlin without the host's zoneinfo

	"mailflow/mailflow"
	"mailflow/storage"
)

const usage = `usage: mailflow [-config FILE] [-json] VERB [ARGS]

verbs:
  serve                                   run the daemon (API, status page, outbox, IMAP, scheduler)
  demo [-db FILE] [-once] [-listen ADDR]  the whole flow on embedded parts (SMTP, IMAP, SQLite)
  migrate                                 apply database migrations
  check-config                            validate the configuration
  catalog import FILE                     import or update the catalog
  order create FILE                       create an order from JSON
  order list [-status CODE]               list orders, newest first
  order show NUMBER                       one order with its history
  order decide NUMBER -party P -intent I [-reason R]
                                          record a decision by hand
  billing run [-dry-run] [-at DATE]       send (or show) due billing reminders
  inbox explain FILE.eml                  what would happen to this message and why
  outbox list [-status S]                 outbound messages
  outbox retry ID                         send a failed message again
  order evidence NUMBER -o FILE.zip       the order's signed evidence bundle
  evidence key [-pem]                     print the public key that signs evidence bundles
  evidence verify FILE.zip [-key PUBKEY]  check a bundle's files and signature (exit 1 if not valid)
`

// errUsage marks bad usage: exit status 2.
var errUsage = errors.New("bad usage")

// app carries what every verb needs.
type app struct {
	cfg    *Config
	json   bool
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "mailflow:", err)
		os.Exit(1)
	}
}

// run parses the global flags and dispatches the verb.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mailflow", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	configPath := fs.String("config", os.Getenv("MAILFLOW_CONFIG"), "configuration file (TOML)")
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	verb, rest := fs.Arg(0), fs.Args()[1:]
	a := &app{json: *asJSON, stdout: stdout, stderr: stderr}
	if verb == "demo" {
		return a.demo(ctx, rest)
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	a.cfg = cfg
	a.log = newLogger(cfg, stderr)
	switch verb {
	case "serve":
		return a.serve(ctx)
	case "migrate":
		s, err := a.open(ctx)
		if err != nil {
			return err
		}
		s.Close()
		fmt.Fprintf(stdout, "schema at version %d\n", storage.SchemaVersion)
		return nil
	case "check-config":
		// loadConfig ran validate; checkServe is the rest of what serve
		// refuses before it touches the database.
		if err := cfg.checkServe(); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "configuration ok")
		fmt.Fprintln(stdout, cfg.statusPageSummary())
		return nil
	case "catalog":
		return a.catalog(ctx, rest)
	case "order":
		return a.order(ctx, rest)
	case "outbox":
		return a.outbox(ctx, rest)
	case "billing":
		return a.billing(ctx, rest)
	case "inbox":
		return a.inbox(ctx, rest)
	case "evidence":
		return a.evidenceVerb(ctx, rest)
	}
	fmt.Fprintf(stderr, "mailflow: unknown verb %q\n", verb)
	fs.Usage()
	return errUsage
}

func newLogger(cfg *Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func (a *app) open(ctx context.Context) (*storage.Store, error) {
	return storage.Open(ctx, a.cfg.Database.Driver, a.cfg.Database.DSN)
}

// flow wires the order use cases for CLI verbs: with a reply secret,
// orders and decisions enqueue their mails, which a running daemon sends.
func (a *app) flow(s *storage.Store) (*mailflow.Flow, error) {
	_, composer, err := a.cfg.composer()
	if err != nil {
		return nil, err
	}
	return &mailflow.Flow{Store: s, Notifier: composer}, nil
}

// verbFlags parses a verb's flags (also accepting -json after the verb).
func (a *app) verbFlags(name string, args []string, define func(fs *flag.FlagSet), nargs int, argsUsage string) ([]string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fs.BoolVar(&a.json, "json", a.json, "print JSON")
	if define != nil {
		define(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(a.stderr, "usage: mailflow %s %s\n", name, argsUsage)
		fs.PrintDefaults()
	}
	// Accept flags after positional arguments too (order decide NUM -party …).
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if nargs >= 0 && len(pos) != nargs {
		fs.Usage()
		return nil, errUsage
	}
	return pos, nil
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
