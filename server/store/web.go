package store

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// HashToken is how a secret (an API token, a session cookie) is stored: its
// sha256, in hex.
func HashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return hex.EncodeToString(h[:])
}

// What the web UI (package server/web) keeps and reads: sessions, settings,
// the token list, the latest flash of each machine, the progress of open
// flashes, and a fingerprint that changes when the fleet does.

// Session is one browser's login. Only the hash of its cookie is stored.
type Session struct {
	IDHash    string
	Actor     string // who acts: "admin" for the password, else the token's name
	TokenHash string // the API token it logged in with; "" for the password
	CSRF      string // the token its forms carry
	SourceIP  string
	CreatedAt time.Time
	SeenAt    time.Time
	ExpiresAt time.Time
}

// AddSession stores a new session.
func (tx *Tx) AddSession(s *Session) error {
	_, err := tx.exec(`INSERT INTO sessions (id_hash, actor, token_hash, csrf, source_ip, created_at, seen_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, s.IDHash, s.Actor, nullString(s.TokenHash), s.CSRF, nullString(s.SourceIP),
		fmtTime(s.CreatedAt), fmtTime(s.SeenAt), fmtTime(s.ExpiresAt))
	return err
}

// Session returns the session with this hash while it is valid at now: not
// expired and, for a token's, while that token exists. Else ErrNotFound.
func (tx *Tx) Session(idHash string, now time.Time) (*Session, error) {
	var s Session
	var tok, ip sql.NullString
	var created, seen, expires string
	err := tx.q.QueryRowContext(tx.ctx, `SELECT id_hash, actor, token_hash, csrf, source_ip, created_at, seen_at, expires_at FROM sessions s
		WHERE id_hash = $1 AND expires_at > $2 AND (token_hash IS NULL OR EXISTS (SELECT 1 FROM tokens t WHERE t.hash = s.token_hash))`,
		idHash, fmtTime(now)).Scan(&s.IDHash, &s.Actor, &tok, &s.CSRF, &ip, &created, &seen, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	s.TokenHash, s.SourceIP = tok.String, ip.String
	s.CreatedAt, s.SeenAt, s.ExpiresAt = parseTime(sql.NullString{String: created, Valid: true}),
		parseTime(sql.NullString{String: seen, Valid: true}), parseTime(sql.NullString{String: expires, Valid: true})
	return &s, nil
}

// TouchSession moves a session's expiry on.
func (tx *Tx) TouchSession(idHash string, seen, expires time.Time) error {
	_, err := tx.exec(`UPDATE sessions SET seen_at = $2, expires_at = $3 WHERE id_hash = $1`, idHash, fmtTime(seen), fmtTime(expires))
	return err
}

// DeleteSession ends a session; an unknown one is no error.
func (tx *Tx) DeleteSession(idHash string) error {
	_, err := tx.exec(`DELETE FROM sessions WHERE id_hash = $1`, idHash)
	return err
}

// EndPasswordSessions ends the sessions that logged in with the password,
// except keep's, and returns how many.
func (tx *Tx) EndPasswordSessions(keep string) (int64, error) {
	res, err := tx.exec(`DELETE FROM sessions WHERE token_hash IS NULL AND id_hash <> $1`, keep)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// PruneSessions deletes the sessions expired at now.
func (tx *Tx) PruneSessions(now time.Time) error {
	_, err := tx.exec(`DELETE FROM sessions WHERE expires_at <= $1`, fmtTime(now))
	return err
}

// Setting returns a setting's value, or ErrNotFound.
func (tx *Tx) Setting(name string) (string, error) {
	var v string
	err := tx.q.QueryRowContext(tx.ctx, `SELECT value FROM settings WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return v, err
}

// PutSetting sets a setting.
func (tx *Tx) PutSetting(name, value string, now time.Time) error {
	res, err := tx.exec(`UPDATE settings SET value = $2, updated_at = $3 WHERE name = $1`, name, value, fmtTime(now))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		_, err = tx.exec(`INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3)`, name, value, fmtTime(now))
	}
	return err
}

// TokenInfo is an API token as listed: its name and age, never its hash.
type TokenInfo struct {
	Name      string
	CreatedAt time.Time
}

// TokenList returns the API tokens by name.
func (tx *Tx) TokenList() ([]TokenInfo, error) {
	rows, err := tx.q.QueryContext(tx.ctx, `SELECT name, created_at FROM tokens ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []TokenInfo
	for rows.Next() {
		var t TokenInfo
		var created string
		if err := rows.Scan(&t.Name, &created); err != nil {
			return nil, err
		}
		t.CreatedAt = parseTime(sql.NullString{String: created, Valid: true})
		out = append(out, t)
	}
	return out, rows.Err()
}

// CountEvents counts the events of kind from sourceIP after since (the
// failed logins an address made lately).
func (tx *Tx) CountEvents(kind, sourceIP string, since time.Time) (int, error) {
	var n int
	err := tx.q.QueryRowContext(tx.ctx, `SELECT COUNT(*) FROM events WHERE source_ip = $1 AND kind = $2 AND ts > $3`,
		sourceIP, kind, fmtTime(since)).Scan(&n)
	return n, err
}

// Flash is how a flash ended, as the machine list shows it.
type Flash struct {
	ID        int64
	State     string // done or failed
	Cause     string
	CreatedAt time.Time
	OfferedAt time.Time
	EndedAt   time.Time
}

// LastFlashes returns each machine's newest flash that ended done or
// failed, by MAC (the index cycles_ended_flash finds them).
func (tx *Tx) LastFlashes() (map[string]Flash, error) {
	rows, err := tx.q.QueryContext(tx.ctx, `SELECT mac, id, state, cause, created_at, offered_at, ended_at FROM cycles WHERE id IN
		(SELECT MAX(id) FROM cycles WHERE kind = 'flash' AND state IN ('done', 'failed') GROUP BY mac)`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]Flash{}
	for rows.Next() {
		var mac string
		var f Flash
		var created, offered, ended sql.NullString
		if err := rows.Scan(&mac, &f.ID, &f.State, &f.Cause, &created, &offered, &ended); err != nil {
			return nil, err
		}
		f.CreatedAt, f.OfferedAt, f.EndedAt = parseTime(created), parseTime(offered), parseTime(ended)
		out[mac] = f
	}
	return out, rows.Err()
}

// Progress is where an open flash was at its latest progress post.
type Progress struct {
	Phase string    // "writing", "verifying", ...
	At    time.Time // when it was posted
	Total int64     // the image's size (the cycle's bytes_total), 0 unknown
}

// SetProgress records a progress post for cycle id (its bytes are in the
// cycle's row).
func (tx *Tx) SetProgress(id int64, phase string, at time.Time) error {
	_, err := tx.exec(`UPDATE cycles SET phase = $2, progress_at = $3 WHERE id = $1`, id, phase, fmtTime(at))
	return err
}

// OpenProgress returns the latest progress of every open cycle that has one,
// by cycle id.
func (tx *Tx) OpenProgress() (map[int64]Progress, error) {
	rows, err := tx.q.QueryContext(tx.ctx, `SELECT id, phase, progress_at, bytes_total FROM cycles WHERE ended_at IS NULL AND progress_at IS NOT NULL`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]Progress{}
	for rows.Next() {
		var id int64
		var phase sql.NullString
		var at sql.NullString
		var total sql.NullInt64
		if err := rows.Scan(&id, &phase, &at, &total); err != nil {
			return nil, err
		}
		out[id] = Progress{Phase: phase.String, At: parseTime(at), Total: total.Int64}
	}
	return out, rows.Err()
}

// Fingerprint sums up the fleet's state in a string that changes when a
// machine, an event, a cycle or an open flash's progress does, whichever
// server wrote it. Acknowledgements made by another server do not change it.
func (tx *Tx) Fingerprint() (string, error) {
	var ev, cy, n sql.NullInt64
	var upd, prog sql.NullString
	err := tx.q.QueryRowContext(tx.ctx, `SELECT (SELECT MAX(id) FROM events), (SELECT MAX(id) FROM cycles),
		(SELECT COUNT(*) FROM machines), (SELECT MAX(updated_at) FROM machines),
		(SELECT MAX(progress_at) FROM cycles WHERE ended_at IS NULL)`).Scan(&ev, &cy, &n, &upd, &prog)
	return fmt.Sprintf("%d/%d/%d/%s/%s", ev.Int64, cy.Int64, n.Int64, upd.String, prog.String), err
}
