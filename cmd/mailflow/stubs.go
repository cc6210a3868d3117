package main

import (
	"context"
	"errors"
)

func (a *app) billing(ctx context.Context, args []string) error {
	return errors.New("billing run: not built yet (issue 5)")
}
