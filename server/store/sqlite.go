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
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
)

// SQLite is a Store in one SQLite file: WAL, one writer connection (BEGIN
// IMMEDIATE, so another process's writer waits instead of failing), a pool of
// readers, a busy timeout for other processes, and synchronous=FULL so that a
// write the server acknowledged survives a crash of the process (kill -9) and
// of the machine. Its notices (Changes) reach this process only.
//
// Writes are committed in groups: one goroutine owns the writer connection
// and runs the Updates that are waiting, each in a savepoint of one
// transaction (an fn that fails is rolled back to its savepoint alone), then
// commits them with one fsync, and only then answers them. synchronous=FULL
// costs an fsync per commit (about 5 ms on the benchmark's disk), which
// capped one-at-a-time writes at some 200 per second; grouped, the 5000
// machine boot storm of bench/fleet.sh commits several hundred writes in a
// second. A group is what queued while the previous one committed: no
// waiting is added when the server is idle.
type SQLite struct {
	w, r   *sql.DB
	hub    hub
	writes chan *write
	stop   chan struct{}
	done   chan struct{}
}

// write is one Update waiting for the writer.
type write struct {
	fn  func(*Tx) error
	ctx context.Context
	err chan error
}

// maxGroup bounds the Updates committed together (and so the work lost to a
// failed commit).
const maxGroup = 128

// errClosed: an Update after Close.
var errClosed = errors.New("the state database is closed")

// panicked carries a panic of fn from the writer to the caller of Update.
type panicked struct{ v any }

func (p panicked) Error() string { return fmt.Sprint("panic in a store transaction: ", p.v) }

// OpenSQLite opens (creating it if needed) the database at path and brings
// its schema up to date. upTo limits the migrations applied (0: all); tests
// use it to make an older database.
func OpenSQLite(path string, upTo int) (*SQLite, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	dsn := func(pragmas ...string) string {
		q := url.Values{}
		for _, p := range append([]string{fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()), "synchronous(FULL)", "foreign_keys(1)"}, pragmas...) {
			q.Add("_pragma", p)
		}
		return "file:" + path + "?" + q.Encode()
	}
	// The writer's page cache holds a fleet's hot rows (32 MiB, SQLite's
	// default is 2): a smaller one spilled pages to the WAL in the middle of
	// a group's transaction. The connections stay open: opening one reads
	// the schema again.
	// WAL is a property of the file, set by the writer; readers find it.
	w, err := sql.Open("sqlite", dsn("journal_mode(WAL)", "cache_size(-32768)"))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	conn, err := connect(w)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("state database %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn())
	if err != nil {
		conn.Close()
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	s := &SQLite{w: w, r: r, writes: make(chan *write), stop: make(chan struct{}), done: make(chan struct{})}
	go s.writer(conn)
	if err := migrate(context.Background(), s, sqliteDialect, upTo); err != nil {
		s.Close()
		return nil, fmt.Errorf("state database %s: %w", path, err)
	}
	return s, nil
}

// busyTimeout is how long a connection waits for another's lock.
const busyTimeout = 10 * time.Second

// connect opens the writer's connection. Turning a new file to WAL takes an
// exclusive lock that SQLite's busy timeout does not wait for (servers
// starting together on one new file failed with SQLITE_BUSY), so a busy
// open is tried again, for as long as that timeout.
func connect(w *sql.DB) (*sql.Conn, error) {
	deadline := time.Now().Add(busyTimeout)
	for {
		conn, err := w.Conn(context.Background())
		if err == nil || !IsBusy(err) || time.Now().After(deadline) {
			return conn, err
		}
		time.Sleep(10 * time.Millisecond)
	}
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

// Update hands fn to the writer and waits for its group's commit, even when
// ctx ends meanwhile, so that an answer is never "failed" for a write that
// committed.
func (s *SQLite) Update(ctx context.Context, fn func(*Tx) error) error {
	w := &write{fn: fn, ctx: ctx, err: make(chan error, 1)}
	select {
	case s.writes <- w:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stop:
		return errClosed
	}
	err := <-w.err
	if p, ok := err.(panicked); ok {
		panic(p.v)
	}
	return err
}

// writer commits groups of Updates until Close, on one connection that it
// keeps: its transactions are plain BEGIN IMMEDIATE and COMMIT statements,
// so that the statements it prepared stay prepared from one group to the
// next (database/sql prepares again for every *sql.Tx).
func (s *SQLite) writer(conn *sql.Conn) {
	defer close(s.done)
	defer conn.Close()
	q := &querier{db: conn, prepared: map[string]*sql.Stmt{}}
	for {
		var group []*write
		select {
		case w := <-s.writes:
			group = append(group, w)
		case <-s.stop:
			return
		}
	more:
		for len(group) < maxGroup {
			select {
			case w := <-s.writes:
				group = append(group, w)
			default:
				break more
			}
		}
		s.commit(q, group)
	}
}

// commit runs a group in one transaction, each fn in its own savepoint, and
// answers each write: its fn's error, or the commit's.
func (s *SQLite) commit(q *querier, group []*write) {
	// The statements run under the writer's context: cancelling one
	// request's would interrupt the connection, and SQLite then rolls back
	// the whole transaction.
	ctx := context.Background()
	exec := func(stmt string) error { // one of the few below: kept prepared
		st, ok := q.prepared[stmt]
		if !ok {
			var err error
			if st, err = q.db.PrepareContext(ctx, stmt); err != nil {
				return err
			}
			q.prepared[stmt] = st
		}
		_, err := st.ExecContext(ctx)
		return err
	}
	fail := func(err error) {
		exec("ROLLBACK")
		for _, w := range group {
			if w != nil {
				w.err <- err
			}
		}
	}
	if err := exec("BEGIN IMMEDIATE"); err != nil {
		fail(err)
		return
	}
	txs := make([]*Tx, len(group))
	for i, w := range group {
		if err := w.ctx.Err(); err != nil {
			w.err <- err
			group[i] = nil
			continue
		}
		// One name for every savepoint: each is released before the next.
		if err := exec("SAVEPOINT fn"); err != nil {
			fail(err)
			return
		}
		txs[i] = &Tx{q: q, d: sqliteDialect, write: true, ctx: ctx}
		if err := runFn(w.fn, txs[i]); err != nil {
			w.err <- err
			group[i] = nil
			if err := exec("ROLLBACK TO fn"); err != nil {
				fail(err)
				return
			}
		}
		if err := exec("RELEASE fn"); err != nil {
			fail(err)
			return
		}
	}
	if err := exec("COMMIT"); err != nil {
		fail(err)
		return
	}
	for i, w := range group {
		if w == nil {
			continue
		}
		for _, c := range txs[i].notes {
			s.hub.publish(c)
		}
		for _, fn := range txs[i].commit {
			fn()
		}
		w.err <- nil
	}
}

// runFn runs fn, turning a panic into an error that Update raises again in
// its caller.
func runFn(fn func(*Tx) error, tx *Tx) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = panicked{v}
		}
	}()
	return fn(tx)
}

func (s *SQLite) View(ctx context.Context, fn func(*Tx) error) error {
	return run(ctx, s.r, &sql.TxOptions{ReadOnly: true}, sqliteDialect, &s.hub, fn)
}

func (s *SQLite) Changes(ctx context.Context) <-chan Change { return s.hub.subscribe(ctx) }

func (s *SQLite) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.hub.close()
	return errors.Join(s.r.Close(), s.w.Close())
}
