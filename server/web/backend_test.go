package web_test

import (
	"os"
	"testing"

	"bty/internal/pgtest"
	"bty/server/store"
)

// testBackend is the database the tests run on: TestMain runs every test of
// the package on SQLite, then again on PostgreSQL (skipped when it is
// missing), as the store's and the server's tests do.
var testBackend = "sqlite"

func TestMain(m *testing.M) {
	os.Exit(pgtest.RunTwice(m, func() { testBackend = "postgres" }))
}

// openStore opens a new, empty store on the tests' backend: SQLite in dir,
// or a new PostgreSQL database. The harness closes it.
func openStore(t testing.TB, dir string) store.Store {
	t.Helper()
	state := dir
	if testBackend == "postgres" {
		state = pgtest.DSN(t)
	}
	st, err := store.Open(t.Context(), state)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("(on %s)", testBackend)
		}
	})
	return st
}
