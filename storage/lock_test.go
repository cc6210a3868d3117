package storage_test

import (
	"context"
	"testing"

	"mailflow/storage"
	"mailflow/storage/storagetest"
)

// A job's leader lock excludes the other daemons of an installation (one
// schema) and nobody else: another schema of the same database (another
// installation, a parallel test) takes its own.
func TestLeaderLockPerSchema(t *testing.T) {
	ctx := context.Background()
	drv, dsn := storagetest.DSN(t, "postgres")
	a, err := storage.Open(ctx, drv, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := storage.Open(ctx, drv, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	other := storagetest.Open(t, "postgres")

	release, ok, err := a.TryLeader(ctx, "billing")
	if err != nil || !ok {
		t.Fatalf("first lock: %v %v", ok, err)
	}
	defer release()
	if _, ok, err := b.TryLeader(ctx, "billing"); ok || err != nil {
		t.Errorf("a second daemon on the same schema got the lock (%v)", err)
	}
	relOther, ok, err := other.TryLeader(ctx, "billing")
	if err != nil || !ok {
		t.Errorf("another schema's daemon did not get its lock: %v %v", ok, err)
	} else {
		relOther()
	}
}
