package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
)

// Store is a fleet database. Update runs fn in a read-write transaction that
// serialises with every other writer; fn may be run again after a
// serialisation conflict, so it must not act outside the transaction (the
// caller acts after Update returns). View runs fn in a read-only snapshot.
type Store interface {
	Update(ctx context.Context, fn func(*Tx) error) error
	View(ctx context.Context, fn func(*Tx) error) error
	Close() error
}

// ErrNotFound: no such row.
var ErrNotFound = errors.New("not found")

// ErrExists: a row with that key exists.
var ErrExists = errors.New("already exists")

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered schema step.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in order, for dialect d.
func migrations(d dialect) ([]migration, error) {
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
		ms = append(ms, migration{v, e.Name(), strings.ReplaceAll(string(b), "SERIAL_ID", d.serialID)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: expected number %d", m.name, i+1)
		}
	}
	return ms, nil
}

// dialect is what differs between databases.
type dialect struct {
	serialID string // an auto-increment BIGINT primary key
}

var sqliteDialect = dialect{serialID: "INTEGER PRIMARY KEY"}

// SQLite is a Store in one SQLite file: WAL, one writer connection (BEGIN
// IMMEDIATE, so writers queue instead of failing on upgrade), a pool of
// readers, a busy timeout for other processes, and synchronous=FULL so that a
// write the server acknowledged survives a crash of the process (kill -9) and
// of the machine.
type SQLite struct {
	w, r *sql.DB
}

// OpenSQLite opens (creating it if needed) the database at path and brings
// its schema up to date. upTo limits the migrations applied (0: all); tests
// use it to make an older database.
func OpenSQLite(path string, upTo int) (*SQLite, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	dsn := func(txlock string) string {
		q := url.Values{}
		for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "synchronous(FULL)", "foreign_keys(1)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", txlock)
		return "file:" + path + "?" + q.Encode()
	}
	w, err := sql.Open("sqlite", dsn("immediate"))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	r, err := sql.Open("sqlite", dsn("deferred"))
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(4)
	s := &SQLite{w: w, r: r}
	if err := s.migrate(upTo); err != nil {
		s.Close()
		return nil, fmt.Errorf("state database %s: %w", path, err)
	}
	return s, nil
}

// migrate applies the migrations newer than the database's version, each in
// its own transaction, and refuses a database newer than this bty.
func (s *SQLite) migrate(upTo int) error {
	ms, err := migrations(sqliteDialect)
	if err != nil {
		return err
	}
	if upTo <= 0 || upTo > len(ms) {
		upTo = len(ms)
	}
	ctx := context.Background()
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		return err
	}
	for _, m := range ms[:upTo] {
		err := s.Update(ctx, func(tx *Tx) error {
			var cur sql.NullInt64
			if err := tx.q.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&cur); err != nil {
				return err
			}
			if cur.Int64 >= int64(m.version) {
				return nil // applied, maybe by another server
			}
			if _, err := tx.q.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			_, err := tx.q.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`, m.version, m.name, fmtTime(time.Now()))
			return err
		})
		if err != nil {
			return err
		}
	}
	var cur sql.NullInt64
	if err := s.w.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&cur); err != nil {
		return err
	}
	if int(cur.Int64) > len(ms) {
		return fmt.Errorf("the schema is at version %d and this bty knows up to %d: run a newer bty", cur.Int64, len(ms))
	}
	return nil
}

// Version returns the schema version of the database.
func (s *SQLite) Version(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	return int(v.Int64), err
}

// IntegrityCheck runs SQLite's integrity_check and returns its verdict ("ok").
func (s *SQLite) IntegrityCheck(ctx context.Context) (string, error) {
	rows, err := s.r.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return "", err
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n"), rows.Err()
}

func (s *SQLite) Update(ctx context.Context, fn func(*Tx) error) error {
	return run(ctx, s.w, nil, fn)
}

func (s *SQLite) View(ctx context.Context, fn func(*Tx) error) error {
	return run(ctx, s.r, &sql.TxOptions{ReadOnly: true}, fn)
}

func (s *SQLite) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

func run(ctx context.Context, db *sql.DB, opt *sql.TxOptions, fn func(*Tx) error) error {
	stx, err := db.BeginTx(ctx, opt)
	if err != nil {
		return err
	}
	if err := fn(&Tx{q: stx, ctx: ctx}); err != nil {
		stx.Rollback()
		return err
	}
	return stx.Commit()
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
