package store

import (
	"context"
	"os"
	"sync"
	"testing"

	"bty/internal/pgtest"
)

// backend is the database the tests run on: TestMain runs every test of the
// package on SQLite, then again on PostgreSQL (skipped when it is missing).
var backend = "sqlite"

func TestMain(m *testing.M) {
	os.Exit(pgtest.RunTwice(m, func() { backend = "postgres" }))
}

// testStore is what the tests use of a store.
type testStore interface {
	Store
	Version(ctx context.Context) (int, error)
}

var (
	pgMu  sync.Mutex
	pgDBs = map[string]string{} // path -> database URL
)

// tryOpen opens the database that path names in this test: the SQLite file,
// or a PostgreSQL database made for it on first use.
func tryOpen(t *testing.T, path string, upTo int) (testStore, error) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("(on %s)", backend)
		}
	})
	if backend == "sqlite" {
		return OpenSQLite(path, upTo)
	}
	return OpenPostgres(ctx, pgDatabase(t, path), upTo)
}

// pgDatabase returns the URL of the PostgreSQL database that path names in
// this test, making an empty one on first use.
func pgDatabase(t *testing.T, path string) string {
	pgMu.Lock()
	defer pgMu.Unlock()
	dsn, ok := pgDBs[path]
	if !ok {
		dsn = pgtest.DSN(t)
		pgDBs[path] = dsn
	}
	return dsn
}
