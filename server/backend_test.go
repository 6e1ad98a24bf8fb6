package server

import (
	"os"
	"testing"

	"bty/internal/pgtest"
	"bty/server/store"
)

// testBackend is the database the tests run on: TestMain runs every test of
// the package on SQLite, then again on PostgreSQL (skipped when it is
// missing).
var testBackend = "sqlite"

func TestMain(m *testing.M) {
	os.Exit(pgtest.RunTwice(m, func() { testBackend = "postgres" }))
}

// openStore opens a new, empty store on the tests' backend: SQLite in dir,
// or a new PostgreSQL database. It is closed when t ends.
func openStore(t *testing.T, dir string) store.Store {
	t.Helper()
	st, _ := openState(t, dir)
	return st
}

// openState is openStore, and the --state that opens the same database
// again (another server's store).
func openState(t *testing.T, dir string) (st store.Store, state string) {
	t.Helper()
	state = dir
	if testBackend == "postgres" {
		state = pgtest.DSN(t)
	}
	st, err := store.Open(t.Context(), state)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st.Close()
		if t.Failed() {
			t.Logf("(on %s)", testBackend)
		}
	})
	return st, state
}
