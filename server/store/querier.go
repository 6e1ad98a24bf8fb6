package store

import (
	"context"
	"database/sql"
)

// querier runs a transaction's statements, on a *sql.Tx or, for the SQLite
// writer, on its connection. With prepared set (the writer) each statement
// with arguments is prepared once and then reused: modernc's driver
// otherwise parses every statement anew, which was a quarter of the
// server's CPU under bench/fleet.sh. pgx keeps its own prepared statements
// per connection.
type querier struct {
	db       dbtx
	prepared map[string]*sql.Stmt // nil: prepare nothing
}

// dbtx is what *sql.Tx and *sql.Conn have in common.
type dbtx interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// maxPrepared bounds the writer's prepared statements (queries with a
// LIMIT written into them differ by their number).
const maxPrepared = 256

func (q *querier) stmt(ctx context.Context, query string, args []any) *sql.Stmt {
	if q.prepared == nil || len(args) == 0 { // no arguments: maybe several statements
		return nil
	}
	if st, ok := q.prepared[query]; ok {
		return st
	}
	if len(q.prepared) >= maxPrepared {
		return nil
	}
	st, err := q.db.PrepareContext(ctx, query)
	if err != nil {
		return nil // the unprepared call reports it
	}
	q.prepared[query] = st
	return st
}

func (q *querier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := q.stmt(ctx, query, args); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return q.db.ExecContext(ctx, query, args...)
}

func (q *querier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := q.stmt(ctx, query, args); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.db.QueryContext(ctx, query, args...)
}

func (q *querier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := q.stmt(ctx, query, args); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.db.QueryRowContext(ctx, query, args...)
}
