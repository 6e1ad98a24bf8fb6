// Package store keeps the fleet server's state: machines and their labels,
// cycles (one per flash or inventory attempt), the offers each boot got, the
// event log, API tokens, and the digests of bound images. Everything the
// server decides from lives here, so that several servers on one database
// agree.
//
//	server --Update(fn)--> SQLite:   writer goroutine: BEGIN IMMEDIATE, SAVEPOINT per waiting fn, one COMMIT (WAL, one fsync)
//	                       Postgres: READ COMMITTED, rows read by key FOR UPDATE, fn run again on deadlock / unique race
//	       --View(fn)----> SQLite: read pool, snapshot;  Postgres: REPEATABLE READ READ ONLY
//	       --Changes()---> notices committed with Tx.Notify: in-process (SQLite), LISTEN/NOTIFY (PostgreSQL)
//	fn gets a *Tx: Machine, PutMachine, LatestCycle, InsertCycle, AddEvent, Notify, OnCommit, ...
//
// Open picks the database from `bty serve --state`: a directory (SQLite in
// DIR/fleet.db) or a postgres:// URL. The SQL is written once for both
// (dialect.go: $N placeholders, TEXT timestamps, ON CONFLICT rather than
// INSERT OR IGNORE, SERIAL_ID for an auto-increment key); the schema grows
// by numbered migrations (migrations/NNNN_name.sql), applied in order at
// open, each in its own transaction (on PostgreSQL under an advisory lock,
// so that servers starting together migrate once), never edited once
// released. An upgrade keeps every row. Since fn may run more than once, it
// acts only on the transaction: what it does in memory goes in OnCommit.
package store
