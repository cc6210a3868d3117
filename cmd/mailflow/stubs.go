package main

import (
	"context"
	"errors"
)

func (a *app) billing(ctx context.Context, args []string) error {
	return errors.New("billing run: not built yet (issue 5)")
}

func (a *app) demo(ctx context.Context, args []string) error {
	return errors.New("demo: not built yet (issue 6); use serve")
}
