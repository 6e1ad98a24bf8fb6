package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Store is a fleet database. Update runs fn in a read-write transaction that
// serialises with every other writer; fn may be run again after a
// serialisation conflict, so it must not act outside the transaction (the
// caller acts after Update returns). View runs fn in a read-only snapshot.
// Changes delivers the notices that committed transactions left with
// Tx.Notify, from now until ctx ends.
type Store interface {
	Update(ctx context.Context, fn func(*Tx) error) error
	View(ctx context.Context, fn func(*Tx) error) error
	Changes(ctx context.Context) <-chan Change
	Close() error
}

// ErrNotFound: no such row.
var ErrNotFound = errors.New("not found")

// ErrExists: a row with that key exists.
var ErrExists = errors.New("already exists")

// Open opens the fleet state that `bty serve --state` names: a postgres:// or
// postgresql:// URL is a PostgreSQL database, anything else a directory that
// holds fleet.db (SQLite). The schema is brought up to date.
func Open(ctx context.Context, state string) (Store, error) {
	if IsURL(state) {
		return OpenPostgres(ctx, state, 0)
	}
	return OpenSQLite(filepath.Join(state, "fleet.db"), 0)
}

// IsURL reports whether state names a PostgreSQL database rather than a
// directory.
func IsURL(state string) bool {
	s := strings.ToLower(state)
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered schema step.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in order, in dialect d.
func migrations(d *dialect) ([]migration, error) {
	ents, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range ents {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration file %s: name it NNNN_what.sql", e.Name())
		}
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{v, e.Name(), d.words.Replace(string(b))})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: expected number %d", m.name, i+1)
		}
	}
	return ms, nil
}

// migrate applies the migrations newer than the database's version, each in
// its own transaction, and refuses a database newer than this bty. upTo
// limits the migrations applied (0: all). Two servers that start at once
// are kept apart by the caller (SQLite's one writer, PostgreSQL's advisory
// lock); each step also checks the version again inside its transaction.
func migrate(ctx context.Context, st Store, d *dialect, upTo int) error {
	ms, err := migrations(d)
	if err != nil {
		return err
	}
	if upTo <= 0 || upTo > len(ms) {
		upTo = len(ms)
	}
	err = st.Update(ctx, func(tx *Tx) error {
		_, err := tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`)
		return err
	})
	if err != nil {
		return err
	}
	for _, m := range ms[:upTo] {
		err := st.Update(ctx, func(tx *Tx) error {
			cur, err := tx.version()
			if err != nil || cur >= m.version {
				return err // applied, maybe by another server
			}
			if _, err := tx.exec(m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			_, err = tx.exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`, m.version, m.name, fmtTime(time.Now()))
			return err
		})
		if err != nil {
			return err
		}
	}
	cur, err := version(ctx, st)
	if err != nil {
		return err
	}
	if cur > len(ms) {
		return fmt.Errorf("the schema is at version %d and this bty knows up to %d: run a newer bty", cur, len(ms))
	}
	return nil
}

// version is the schema version of the database: the newest migration applied.
func version(ctx context.Context, st Store) (v int, err error) {
	err = st.View(ctx, func(tx *Tx) error {
		v, err = tx.version()
		return err
	})
	return v, err
}

func (tx *Tx) version() (int, error) {
	var v sql.NullInt64
	err := tx.q.QueryRowContext(tx.ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	return int(v.Int64), err
}

// run runs fn in one transaction of db and commits it; before the commit,
// the dialect sends fn's notices, or keeps them for after it (SQLite), when
// they are published.
func run(ctx context.Context, db *sql.DB, opt *sql.TxOptions, d *dialect, h *hub, fn func(*Tx) error) error {
	stx, err := db.BeginTx(ctx, opt)
	if err != nil {
		return err
	}
	tx := &Tx{q: &querier{db: stx}, d: d, write: opt == nil || !opt.ReadOnly, ctx: ctx}
	defer func() {
		if v := recover(); v != nil {
			stx.Rollback() // or the connection stays taken
			panic(v)
		}
	}()
	if err := fn(tx); err != nil {
		stx.Rollback()
		return err
	}
	if d.notify != "" {
		for _, c := range tx.notes {
			if _, err := stx.ExecContext(ctx, d.notify, c.encode()); err != nil {
				stx.Rollback()
				return err
			}
		}
	}
	if err := stx.Commit(); err != nil {
		return err
	}
	if d.notify == "" {
		for _, c := range tx.notes {
			h.publish(c)
		}
	}
	for _, fn := range tx.commit {
		fn()
	}
	return nil
}

// timeLayout writes times in UTC with microseconds and a fixed width, so that
// they sort as text.
const timeLayout = "2006-01-02T15:04:05.000000Z"

func fmtTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// nullTime is a time column: the zero time is NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return fmtTime(t)
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullInt(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}

func parseTime(s sql.NullString) time.Time {
	if !s.Valid {
		return time.Time{}
	}
	if t, ok := parseLayout(s.String); ok {
		return t
	}
	t, _ := time.Parse(timeLayout, s.String)
	return t
}

// parseLayout reads a time written with timeLayout by hand: a page of a
// thousand machines reads ten thousand of them, and time.Parse spends most
// of its time on the layout (measured: 5 ms of a 40 ms machine list).
func parseLayout(s string) (time.Time, bool) {
	if len(s) != len(timeLayout) || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[26] != 'Z' {
		return time.Time{}, false
	}
	num := func(i, j int) int {
		n := 0
		for _, c := range s[i:j] {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	y, mo, d, h, mi, sec, us := num(0, 4), num(5, 7), num(8, 10), num(11, 13), num(14, 16), num(17, 19), num(20, 26)
	if y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59 || us < 0 {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, us*1000, time.UTC), true
}

// intBool is a flag column: an INTEGER 0 or 1, the one form both SQLite and
// PostgreSQL take from a Go value (pgx encodes no bool into an int4).
func intBool(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
