package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
)

// SQLite is a Store in one SQLite file: WAL, one writer connection (BEGIN
// IMMEDIATE, so writers queue instead of failing on upgrade), a pool of
// readers, a busy timeout for other processes, and synchronous=FULL so that a
// write the server acknowledged survives a crash of the process (kill -9) and
// of the machine. Its notices (Changes) reach this process only.
type SQLite struct {
	w, r *sql.DB
	hub  hub
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
	if err := migrate(context.Background(), s, sqliteDialect, upTo); err != nil {
		s.Close()
		return nil, fmt.Errorf("state database %s: %w", path, err)
	}
	return s, nil
}

// Version returns the schema version of the database.
func (s *SQLite) Version(ctx context.Context) (int, error) { return version(ctx, s) }

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
	return run(ctx, s.w, nil, sqliteDialect, &s.hub, fn)
}

func (s *SQLite) View(ctx context.Context, fn func(*Tx) error) error {
	return run(ctx, s.r, &sql.TxOptions{ReadOnly: true}, sqliteDialect, &s.hub, fn)
}

func (s *SQLite) Changes(ctx context.Context) <-chan Change { return s.hub.subscribe(ctx) }

func (s *SQLite) Close() error {
	s.hub.close()
	return errors.Join(s.r.Close(), s.w.Close())
}
