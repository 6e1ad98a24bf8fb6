// Package store keeps the fleet server's state: machines and their labels,
// cycles (one per flash or inventory attempt), the offers each boot got, the
// event log, API tokens, and the digests of bound images. Everything the
// server decides from lives here, so that several servers on one database
// agree.
//
//	server --Update(fn)--> Store --BEGIN IMMEDIATE (one writer)--> SQLite (WAL)
//	       --View(fn)----> Store --read pool, snapshot-------------> SQLite
//	fn gets a *Tx: Machine, PutMachine, LatestCycle, InsertCycle, AddEvent, ...
//
// The SQL is portable (SQLite and PostgreSQL: $N placeholders, TEXT
// timestamps, no SQLite-only constructs); the schema grows by numbered
// migrations (migrations/NNNN_name.sql), applied in order at open, each in its
// own transaction, never edited once released. An upgrade keeps every row.
package store
