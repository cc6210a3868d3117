package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"mailflow/mailflow"
	"mailflow/storage"
)

// inbox explains what the daemon would do with one .eml file, changing
// nothing: the same code path as the IMAP watcher, rolled back.
func (a *app) inbox(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "explain" {
		fmt.Fprintln(a.stderr, "usage: mailflow inbox explain FILE.eml")
		return errUsage
	}
	pos, err := a.verbFlags("inbox explain", args[1:], nil, 1, "FILE.eml")
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	inbox, err := a.inboxFor(s)
	if err != nil {
		return err
	}
	var res mailflow.Result
	if size := int64(len(raw)); size > a.cfg.IMAP.MaxMessageSize {
		res, err = inbox.ExplainTooLarge(ctx, size)
	} else {
		res, err = inbox.Explain(ctx, raw)
	}
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(res)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "verdict\t%s\n", res.Verdict)
	fmt.Fprintf(tw, "why\t%s\n", res.Reason)
	if res.Order != "" {
		fmt.Fprintf(tw, "order\t%s\n", res.Order)
	}
	if res.Party != "" {
		fmt.Fprintf(tw, "party\t%s\n", res.Party)
	}
	if res.Intent != "" {
		fmt.Fprintf(tw, "intent\t%s\n", res.Intent)
	}
	if res.Status != "" {
		fmt.Fprintf(tw, "status after\t%s\n", statusText(res.Status))
	}
	fmt.Fprintf(tw, "folder\t%s\n", res.Dest)
	fmt.Fprintf(tw, "changed\tnothing (explain only)\n")
	return tw.Flush()
}

// inboxFor wires inbound processing on a store.
func (a *app) inboxFor(s *storage.Store) (*mailflow.Inbox, error) {
	secrets := a.cfg.secrets()
	if len(secrets) == 0 {
		return nil, errors.New("replies.secret is not configured: reply tokens cannot be verified")
	}
	tokens, err := mailflow.NewTokens(secrets)
	if err != nil {
		return nil, err
	}
	flow, err := a.flow(s)
	if err != nil {
		return nil, err
	}
	return &mailflow.Inbox{Flow: flow, Store: s, Tokens: tokens, Log: a.log, Config: mailflow.InboxConfig{
		RequireAuthenticatedSender: a.cfg.Replies.RequireAuthenticatedSender,
		TrustedAuthServID:          a.cfg.Replies.TrustedAuthservID,
	}}, nil
}
