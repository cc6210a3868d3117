package main

import (
	"context"
	"errors"
	"net/http"
	"time"

	"mailflow/web"
)

// serve runs the daemon until ctx ends (SIGINT/SIGTERM), then shuts down
// in reverse order of start-up within a bounded time.
func (a *app) serve(ctx context.Context) error {
	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	flow, err := a.flow(s)
	if err != nil {
		return err
	}
	srv := &web.Server{Flow: flow, Store: s, Log: a.log}
	for _, t := range a.cfg.HTTP.Tokens {
		srv.Tokens = append(srv.Tokens, web.Token{Name: t.Name, Role: t.Role, Token: t.Token})
	}
	hs := &http.Server{
		Addr:              a.cfg.HTTP.Listen,
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe() }()
	a.log.Info("mailflow serving", "listen", a.cfg.HTTP.Listen, "db", s.Driver())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
