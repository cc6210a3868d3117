package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"mailflow/mailflow"
	"mailflow/storage"
	"mailflow/templates"
	"mailflow/web"
)

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// printValidation lists field errors one per line.
func (a *app) explain(err error) error {
	var verr *mailflow.ValidationError
	var dup *mailflow.DuplicateError
	var fields []mailflow.FieldError
	switch {
	case errors.As(err, &verr):
		fields = verr.Errors
	case errors.As(err, &dup):
		fields = dup.Errors
	}
	for _, fe := range fields {
		fmt.Fprintf(a.stderr, "  %s: %s\n", fe.Field, fe.Message)
	}
	return err
}

func (a *app) catalog(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "import" {
		fmt.Fprintln(a.stderr, "usage: mailflow catalog import FILE")
		return errUsage
	}
	pos, err := a.verbFlags("catalog import", args[1:], nil, 1, "FILE")
	if err != nil {
		return err
	}
	var cat mailflow.Catalog
	if err := readJSONFile(pos[0], &cat); err != nil {
		return err
	}
	if err := mailflow.ValidateCatalog(&cat); err != nil {
		return a.explain(err)
	}
	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.ImportCatalog(ctx, &cat); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "imported %d providers, %d intermediaries, %d terms, %d services\n",
		len(cat.Providers), len(cat.Intermediaries), len(cat.Terms), len(cat.Services))
	for _, w := range mailflow.CatalogWarnings(&cat) {
		fmt.Fprintf(a.stderr, "warning: %s\n", w)
	}
	return nil
}

func (a *app) order(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(a.stderr, "usage: mailflow order create|list|show|decide|evidence …")
		return errUsage
	}
	sub, args := args[0], args[1:]
	// run is the subcommand, once its flags are read and the store is open.
	var run func(ctx context.Context, s *storage.Store, flow *mailflow.Flow, arg string) error
	var pos []string
	var err error
	switch sub {
	case "create":
		pos, err = a.verbFlags("order create", args, nil, 1, "FILE")
		run = a.orderCreate
	case "list":
		var status string
		pos, err = a.verbFlags("order list", args, func(fs *flag.FlagSet) {
			fs.StringVar(&status, "status", "", "only orders with this status code")
		}, 0, "[-status CODE]")
		run = func(ctx context.Context, s *storage.Store, _ *mailflow.Flow, _ string) error {
			return a.orderList(ctx, s, status)
		}
	case "show":
		pos, err = a.verbFlags("order show", args, nil, 1, "NUMBER")
		run = a.orderShow
	case "decide":
		var d mailflow.Decision
		pos, err = a.verbFlags("order decide", args, func(fs *flag.FlagSet) {
			fs.StringVar(&d.Party, "party", "", "provider or intermediary")
			fs.Func("intent", "accept, review, working or reject", func(v string) error { d.Intent = mailflow.Intent(v); return nil })
			fs.StringVar(&d.Reason, "reason", "", "reason (required for reject)")
		}, 1, "NUMBER -party P -intent I [-reason R]")
		run = func(ctx context.Context, _ *storage.Store, flow *mailflow.Flow, number string) error {
			return a.orderDecide(ctx, flow, number, d)
		}
	case "evidence":
		var out string
		pos, err = a.verbFlags("order evidence", args, func(fs *flag.FlagSet) {
			fs.StringVar(&out, "o", "", "write the ZIP to this file")
		}, 1, "NUMBER -o FILE.zip")
		run = func(ctx context.Context, s *storage.Store, _ *mailflow.Flow, number string) error {
			return a.orderEvidence(ctx, s, number, out)
		}
	default:
		fmt.Fprintf(a.stderr, "mailflow: unknown order verb %q\n", sub)
		return errUsage
	}
	if err != nil {
		return err
	}
	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	flow, err := a.flow(s)
	if err != nil {
		return err
	}
	var arg string
	if len(pos) > 0 {
		arg = pos[0]
	}
	return run(ctx, s, flow, arg)
}

func (a *app) orderCreate(ctx context.Context, _ *storage.Store, flow *mailflow.Flow, file string) error {
	var req mailflow.OrderRequest
	if err := readJSONFile(file, &req); err != nil {
		return err
	}
	o, created, err := flow.CreateOrder(ctx, &req)
	if err != nil {
		return a.explain(err)
	}
	if a.json {
		return a.printJSON(web.NewOrderResponse(o, nil))
	}
	verb := "created"
	if !created {
		verb = "exists"
	}
	fmt.Fprintf(a.stdout, "%s %s (%s, %s)\n", verb, o.Number, o.ContractModel, statusText(o.Status))
	return nil
}

func (a *app) orderList(ctx context.Context, s *storage.Store, status string) error {
	if status != "" && !mailflow.Status(status).Valid() {
		return fmt.Errorf("-status: unknown status code %q", status)
	}
	orders, err := s.Orders(ctx, mailflow.OrderFilter{Status: mailflow.Status(status), Limit: 1000})
	if err != nil {
		return err
	}
	if a.json {
		out := make([]web.OrderResponse, len(orders))
		for i := range orders {
			out[i] = web.NewOrderResponse(&orders[i], nil)
		}
		return a.printJSON(out)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NUMBER\tORDERED\tMODEL\tSERVICE\tSTATUS")
	for _, o := range orders {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.Number, o.OrderedAt.In(a.cfg.location).Format("2006-01-02 15:04"),
			o.ContractModel, o.Snapshot.Service.Name, o.Status)
	}
	return tw.Flush()
}

func (a *app) orderShow(ctx context.Context, s *storage.Store, _ *mailflow.Flow, number string) error {
	o, err := s.Order(ctx, number)
	if err != nil {
		return err
	}
	msgs, err := s.OrderMessages(ctx, o.ID)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(web.NewOrderResponse(o, msgs))
	}
	a.printOrder(o, msgs)
	return nil
}

func (a *app) orderDecide(ctx context.Context, flow *mailflow.Flow, number string, d mailflow.Decision) error {
	d.Source, d.Actor = mailflow.SourceManual, "cli"
	if u, err := user.Current(); err == nil {
		d.Actor = "cli:" + u.Username
	}
	o, err := flow.Decide(ctx, number, d)
	if err != nil {
		return a.explain(err)
	}
	if a.json {
		return a.printJSON(web.NewOrderResponse(o, nil))
	}
	fmt.Fprintf(a.stdout, "%s: %s\n", o.Number, statusText(o.Status))
	return nil
}

// statusText is a status for the command line, which speaks English
// throughout (docs/operations.md "Language of the command line"): the English label and the
// code that -status takes.
func statusText(s mailflow.Status) string {
	return templates.Label("en", templates.LabelStatus, string(s)) + " [" + string(s) + "]"
}

func (a *app) printOrder(o *mailflow.Order, msgs []*mailflow.OutboxMessage) {
	loc := a.cfg.location
	const day, minute = "2006-01-02", "2006-01-02 15:04"
	sn := o.Snapshot
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "order\t%s (external id %s)\n", o.Number, o.ExternalID)
	fmt.Fprintf(tw, "status\t%s\n", statusText(o.Status))
	fmt.Fprintf(tw, "ordered at\t%s\n", o.OrderedAt.In(loc).Format(minute))
	if o.BindingAt != nil {
		fmt.Fprintf(tw, "binding since\t%s (to be provided by %s)\n", o.BindingAt.In(loc).Format(minute), o.ProvisioningDeadline().In(loc).Format(day))
	}
	fmt.Fprintf(tw, "contract model\t%s\n", templates.Label("en", templates.LabelModel, o.ContractModel))
	fmt.Fprintf(tw, "customer\t%s, %s, %s %s (Leitweg-ID %s)\n", sn.Customer.Name, sn.Customer.Street, sn.Customer.PostalCode, sn.Customer.City, sn.Customer.LeitwegID)
	fmt.Fprintf(tw, "provider\t%s\n", sn.Provider.Name)
	if sn.Intermediary != nil {
		fmt.Fprintf(tw, "intermediary\t%s\n", sn.Intermediary.Name)
	}
	fmt.Fprintf(tw, "service\t%s\n", sn.Service.Name)
	fmt.Fprintf(tw, "price\t%s: %s %s (VAT %g %%)\n", sn.Price.Name, templates.Money("en", sn.Price.AmountCents, sn.Price.Currency),
		templates.Label("en", templates.LabelInterval, sn.Price.Interval), sn.Price.VATPercent)
	fmt.Fprintf(tw, "general terms\t%s, sha256 %s\n", sn.Terms.Version, sn.Terms.SHA256)
	fmt.Fprintf(tw, "conditions\t%s, sha256 %s\n", sn.Conditions.Version, sn.Conditions.SHA256)
	if o.Conflict {
		fmt.Fprintf(tw, "conflict\tlater declarations contradict the final status\n")
	}
	tw.Flush()
	fmt.Fprintln(a.stdout, "\nHistory:")
	tw = tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tPARTY\tINTENT\tSOURCE\tEFFECT\tREASON")
	for _, d := range o.History {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.At.In(loc).Format("2006-01-02 15:04:05"), d.Party, d.Intent, d.Source, d.Effect, oneLine(d.Reason))
	}
	tw.Flush()
	if len(msgs) > 0 {
		fmt.Fprintln(a.stdout, "\nMessages:")
		a.printOutbox(msgs)
	}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > 60 {
		s = mailflow.CleanText(s, 57) + "..."
	}
	return s
}

func (a *app) printOutbox(msgs []*mailflow.OutboxMessage) {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tORDER\tKIND\tPARTY\tSTATUS\tATTEMPTS\tCREATED\tERROR")
	for _, m := range msgs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.ID, m.OrderNumber, m.Kind, m.Party, m.Status, m.Attempts,
			m.CreatedAt.In(a.cfg.location).Format("2006-01-02 15:04:05"), oneLine(m.LastError))
	}
	tw.Flush()
}

func (a *app) outbox(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "retry") {
		fmt.Fprintln(a.stderr, "usage: mailflow outbox list [-status S] | outbox retry ID")
		return errUsage
	}
	var status string
	var pos []string
	var err error
	if args[0] == "list" {
		pos, err = a.verbFlags("outbox list", args[1:], func(fs *flag.FlagSet) {
			fs.StringVar(&status, "status", "", "pending, sent or failed")
		}, 0, "[-status S]")
	} else {
		pos, err = a.verbFlags("outbox retry", args[1:], nil, 1, "ID")
	}
	if err != nil {
		return err
	}
	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	if args[0] == "list" {
		msgs, err := s.OutboxList(ctx, status, 1000)
		if err != nil {
			return err
		}
		if a.json {
			return a.printJSON(msgs)
		}
		a.printOutbox(msgs)
		return nil
	}
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil {
		fmt.Fprintln(a.stderr, "mailflow: outbox retry: ID must be a number")
		return errUsage
	}
	if err := s.RetryOutbox(ctx, id, time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "outbox %d queued again; a running daemon sends it on its next pass\n", id)
	return nil
}
