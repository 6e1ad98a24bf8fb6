package store

import (
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// The event log: appended, filtered, acknowledged and pruned.

// Event is one entry of the log. Details is JSON or "".
type Event struct {
	ID           int64
	TS           time.Time
	Kind         string
	SubjectKind  string
	SubjectID    string
	Actor        string
	SourceIP     string
	Summary      string
	Details      string
	Acknowledged bool
}

// AddEvent appends e and sets its ID.
func (tx *Tx) AddEvent(e *Event) error {
	return tx.q.QueryRowContext(tx.ctx, `INSERT INTO events (ts, kind, subject_kind, subject_id, actor, source_ip, summary, details, acknowledged)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0) RETURNING id`,
		fmtTime(e.TS), e.Kind, e.SubjectKind, e.SubjectID, e.Actor, nullString(e.SourceIP), e.Summary, nullString(e.Details)).Scan(&e.ID)
}

// EventFilter selects events; zero fields match everything.
type EventFilter struct {
	Kind, SubjectKind, SubjectID, Actor, SourceIP string
	Failed                                        bool  // kinds ending in "failed", bty-web's tripwire
	BeforeID                                      int64 // ids below this
	AfterID                                       int64 // ids above this (then oldest first)
	Limit                                         int
	Unacked                                       bool // not acknowledged yet
	// Attention: the kinds that want a person (Failed's, quarantines,
	// refused statuses), the dashboard's list.
	Attention bool
}

// Events returns the events that f selects, newest first (oldest first with
// AfterID).
func (tx *Tx) Events(f EventFilter) ([]Event, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	for _, c := range []struct{ col, v string }{{"kind", f.Kind}, {"subject_kind", f.SubjectKind}, {"subject_id", f.SubjectID}, {"actor", f.Actor}, {"source_ip", f.SourceIP}} {
		if c.v != "" {
			add(c.col+" = $%d", c.v)
		}
	}
	if f.Failed {
		add("kind LIKE $%d", "%failed")
	}
	if f.Unacked {
		where = append(where, "acknowledged = 0")
	}
	if f.Attention {
		add("(kind LIKE $%d OR kind IN ('machine.quarantined', 'pxe.status.refused'))", "%failed")
	}
	if f.BeforeID > 0 {
		add("id < $%d", f.BeforeID)
	}
	order := "DESC"
	if f.AfterID > 0 {
		add("id > $%d", f.AfterID)
		order = "ASC"
	}
	q := `SELECT id, ts, kind, subject_kind, subject_id, actor, source_ip, summary, details, acknowledged FROM events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY id %s LIMIT %d", order, max(f.Limit, 1))
	rows, err := tx.q.QueryContext(tx.ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Event{}
	for rows.Next() {
		var e Event
		var ts string
		var ip, details sql.NullString
		var ack int
		if err := rows.Scan(&e.ID, &ts, &e.Kind, &e.SubjectKind, &e.SubjectID, &e.Actor, &ip, &e.Summary, &details, &ack); err != nil {
			return nil, err
		}
		e.TS = parseTime(sql.NullString{String: ts, Valid: true})
		e.SourceIP, e.Details, e.Acknowledged = ip.String, details.String, ack != 0
		out = append(out, e)
	}
	return out, rows.Err()
}

// AckEvent marks an event acknowledged, or returns ErrNotFound.
func (tx *Tx) AckEvent(id int64) error {
	res, err := tx.exec(`UPDATE events SET acknowledged = 1 WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// Prune applies the retention: events beyond the newest keep, and events,
// ended cycles and offers older than before, are deleted (zero values keep
// all). It returns the number of events deleted.
func (tx *Tx) Prune(keep int, before time.Time) (int64, error) {
	var n int64
	if keep > 0 {
		res, err := tx.exec(`DELETE FROM events WHERE id <= (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET $1)`, keep)
		if err != nil {
			return 0, err
		}
		d, _ := res.RowsAffected()
		n += d
	}
	if !before.IsZero() {
		b := fmtTime(before)
		res, err := tx.exec(`DELETE FROM events WHERE ts < $1`, b)
		if err != nil {
			return 0, err
		}
		d, _ := res.RowsAffected()
		n += d
		if _, err := tx.exec(`DELETE FROM cycles WHERE ended_at < $1 AND id NOT IN (SELECT MAX(id) FROM cycles GROUP BY mac)`, b); err != nil {
			return 0, err
		}
		if _, err := tx.exec(`DELETE FROM offers WHERE created_at < $1`, b); err != nil {
			return 0, err
		}
	}
	return n, nil
}
