package store

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Postgres is a Store in a PostgreSQL database, which any number of servers
// share. Update is READ COMMITTED with the rows it reads by key locked
// (SELECT ... FOR UPDATE: the machine, its cycles, an image, the tokens), so
// the writers of one machine take turns, each seeing what the one before
// committed, as under SQLite's one writer; writers of different machines do
// not wait for each other. A deadlock, or a unique key that a concurrent
// writer inserted first, runs fn again. (SERIALIZABLE was tried first: its
// predicate locks are per index page, so machines that share a page
// conflicted, and at 16 connections a third of the transactions of
// bench/fleet.sh failed and were run again.) View is a read-only REPEATABLE
// READ snapshot. Notices go through LISTEN/NOTIFY, so every server sees
// every server's.
//
// The queries go through database/sql (pgx's stdlib driver), not pgxpool:
// Tx is one concrete type over *sql.Tx for both databases, so the queries,
// the scanning and the NULL handling are written once. The listener is a
// plain pgx connection, as database/sql has no notifications.
type Postgres struct {
	db  *sql.DB
	cfg *pgx.ConnConfig
	hub hub

	listenOnce sync.Once
	ready      chan struct{} // closed once the listener first tried
	stop       context.CancelFunc
	stopped    chan struct{}
}

// pgConns is the pool's size. A transaction is up to a dozen round trips
// to PostgreSQL, so a request mostly waits, and more connections overlap
// more of the waiting; 16 per server leaves room for six servers under
// PostgreSQL's default max_connections (100).
const pgConns = 16

// maxAttempts bounds the runs of one Update's fn.
const maxAttempts = 12

// migrateLock is the advisory lock key under which a server migrates the
// schema, so that two starting at once do not both migrate.
const migrateLock int64 = 0x6274795f736368 // "bty_sch"

// OpenPostgres connects to the database at dsn (a postgres:// URL or a
// key=value string) and brings its schema up to date. upTo limits the
// migrations applied (0: all).
func OpenPostgres(ctx context.Context, dsn string, upTo int) (*Postgres, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("state database %s: %v", Redact(dsn), err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(pgConns)
	db.SetMaxIdleConns(pgConns)
	p := &Postgres{db: db, cfg: cfg, ready: make(chan struct{}), stopped: make(chan struct{})}
	if err := p.migrate(ctx, upTo); err != nil {
		db.Close()
		return nil, fmt.Errorf("state database %s: %w", Redact(dsn), err)
	}
	return p, nil
}

// migrate migrates the schema under the advisory lock: a second server
// waits for the first, then finds nothing left to do.
func (p *Postgres) migrate(ctx context.Context, upTo int) error {
	conn, err := p.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrateLock); err != nil {
		return err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLock)
	return migrate(ctx, p, postgresDialect, upTo)
}

// Version returns the schema version of the database.
func (p *Postgres) Version(ctx context.Context) (int, error) { return version(ctx, p) }

func (p *Postgres) Update(ctx context.Context, fn func(*Tx) error) error {
	return p.retry(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted}, fn)
}

func (p *Postgres) View(ctx context.Context, fn func(*Tx) error) error {
	return p.retry(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}, fn)
}

// retry runs fn in a transaction until it commits, fails for another reason
// than a conflict, or maxAttempts runs conflicted; between runs it waits a
// random time that grows with the attempts, so that the conflicting
// transactions do not meet again.
func (p *Postgres) retry(ctx context.Context, opt *sql.TxOptions, fn func(*Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := run(ctx, p.db, opt, postgresDialect, &p.hub, fn)
		if err == nil || !retryable(err) || attempt == maxAttempts {
			return err
		}
		wait := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6)))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// Changes returns the notices of every server on this database. The first
// call starts the listener (one connection, LISTEN) and returns once it
// listens, or failed to; it reconnects by itself and sends a Resync after.
func (p *Postgres) Changes(ctx context.Context) <-chan Change {
	ch := p.hub.subscribe(ctx)
	p.listenOnce.Do(func() {
		lctx, cancel := context.WithCancel(context.Background())
		p.stop = cancel
		go p.listen(lctx)
	})
	select {
	case <-p.ready:
	case <-ctx.Done():
	}
	return ch
}

func (p *Postgres) listen(ctx context.Context) {
	defer close(p.stopped)
	first := true
	tried := func() {
		if first {
			first = false
			close(p.ready)
		}
	}
	for ctx.Err() == nil {
		conn, err := pgx.ConnectConfig(ctx, p.cfg)
		if err == nil {
			if _, err = conn.Exec(ctx, `LISTEN `+changesChannel); err == nil {
				if !first {
					p.hub.publish(Change{Topic: Resync})
				}
				tried()
				for {
					n, err := conn.WaitForNotification(ctx)
					if err != nil {
						break
					}
					p.hub.publish(decodeChange(n.Payload))
				}
			}
			conn.Close(context.Background())
		}
		tried()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (p *Postgres) Close() error {
	if p.stop != nil {
		p.stop()
		<-p.stopped
	}
	p.hub.close()
	return p.db.Close()
}

// Redact returns state with the password of a database URL replaced by
// "xxxxx", for messages and logs.
func Redact(state string) string {
	u, err := url.Parse(state)
	if err != nil || !IsURL(state) {
		return state
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
