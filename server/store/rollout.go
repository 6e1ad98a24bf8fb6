package store

import (
	"database/sql"
	"errors"
	"time"
)

// Rollout is a staged promotion of an image to the machines of a label.
type Rollout struct {
	ID          int64
	Label       string
	ImageRef    string
	ImageName   string
	MaxParallel int
	MaxFailures int
	State       string // running, paused, stopped, cancelled, done
	Reason      string
	Actor       string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	EndedAt     time.Time
}

// RolloutMachine is one machine of a rollout.
type RolloutMachine struct {
	RolloutID  int64
	MAC        string
	Seq        int    // the order of admission
	State      string // waiting, flashing, done, failed, skipped, cancelled
	AfterCycle int64  // the machine's newest cycle id when it was admitted
	Reason     string
	AdmittedAt time.Time
	EndedAt    time.Time
}

const rolloutCols = `id, label, image_ref, image_name, max_parallel, max_failures, state, reason, actor, created_at, updated_at, ended_at`

func scanRollout(row scanner) (*Rollout, error) {
	var r Rollout
	var reason, created, updated, ended sql.NullString
	err := row.Scan(&r.ID, &r.Label, &r.ImageRef, &r.ImageName, &r.MaxParallel, &r.MaxFailures, &r.State, &reason, &r.Actor, &created, &updated, &ended)
	if err != nil {
		return nil, err
	}
	r.Reason, r.CreatedAt, r.UpdatedAt, r.EndedAt = reason.String, parseTime(created), parseTime(updated), parseTime(ended)
	return &r, nil
}

// InsertRollout adds r and sets its ID.
func (tx *Tx) InsertRollout(r *Rollout) error {
	return tx.q.QueryRowContext(tx.ctx, `INSERT INTO rollouts (label, image_ref, image_name, max_parallel, max_failures, state, reason, actor, created_at, updated_at, ended_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
		r.Label, r.ImageRef, r.ImageName, r.MaxParallel, r.MaxFailures, r.State, nullString(r.Reason), r.Actor,
		fmtTime(r.CreatedAt), fmtTime(r.UpdatedAt), nullTime(r.EndedAt)).Scan(&r.ID)
}

// Rollout returns the rollout with this id, or ErrNotFound.
func (tx *Tx) Rollout(id int64) (*Rollout, error) {
	r, err := scanRollout(tx.q.QueryRowContext(tx.ctx, `SELECT `+rolloutCols+` FROM rollouts WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return r, err
}

// LockRollout writes the rollout's row back as it is, with its update time:
// the first statement of an admission, so that two servers admitting
// machines of one rollout take turns (PostgreSQL holds the row's lock to the
// end of the transaction; SQLite has one writer anyway). It returns the row
// as it is then.
func (tx *Tx) LockRollout(id int64, now time.Time) (*Rollout, error) {
	res, err := tx.exec(`UPDATE rollouts SET updated_at = $2 WHERE id = $1`, id, fmtTime(now))
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, ErrNotFound
	}
	return tx.Rollout(id)
}

// Rollouts returns rollouts, newest first, at most limit; active only
// those not ended (running, paused, stopped by failures, or cancelled while
// machines still flash).
func (tx *Tx) Rollouts(active bool, limit int) ([]*Rollout, error) {
	q := `SELECT ` + rolloutCols + ` FROM rollouts`
	if active {
		q += ` WHERE ended_at IS NULL`
	}
	rows, err := tx.q.QueryContext(tx.ctx, q+` ORDER BY id DESC LIMIT $1`, max(limit, 1))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Rollout
	for rows.Next() {
		r, err := scanRollout(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// PutRollout writes the rollout's state, reason and times.
func (tx *Tx) PutRollout(r *Rollout) error {
	_, err := tx.exec(`UPDATE rollouts SET state = $2, reason = $3, updated_at = $4, ended_at = $5, max_parallel = $6, max_failures = $7 WHERE id = $1`,
		r.ID, r.State, nullString(r.Reason), fmtTime(r.UpdatedAt), nullTime(r.EndedAt), r.MaxParallel, r.MaxFailures)
	return err
}

const memberCols = `rollout_id, mac, seq, state, after_cycle, reason, admitted_at, ended_at`

func scanMember(row scanner) (*RolloutMachine, error) {
	var m RolloutMachine
	var reason, admitted, ended sql.NullString
	if err := row.Scan(&m.RolloutID, &m.MAC, &m.Seq, &m.State, &m.AfterCycle, &reason, &admitted, &ended); err != nil {
		return nil, err
	}
	m.Reason, m.AdmittedAt, m.EndedAt = reason.String, parseTime(admitted), parseTime(ended)
	return &m, nil
}

// AddRolloutMachine adds a machine to a rollout.
func (tx *Tx) AddRolloutMachine(m *RolloutMachine) error {
	_, err := tx.exec(`INSERT INTO rollout_machines (`+memberCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		m.RolloutID, m.MAC, m.Seq, m.State, m.AfterCycle, nullString(m.Reason), nullTime(m.AdmittedAt), nullTime(m.EndedAt))
	return err
}

// PutRolloutMachine writes a member's state.
func (tx *Tx) PutRolloutMachine(m *RolloutMachine) error {
	_, err := tx.exec(`UPDATE rollout_machines SET state = $3, after_cycle = $4, reason = $5, admitted_at = $6, ended_at = $7 WHERE rollout_id = $1 AND mac = $2`,
		m.RolloutID, m.MAC, m.State, m.AfterCycle, nullString(m.Reason), nullTime(m.AdmittedAt), nullTime(m.EndedAt))
	return err
}

// RolloutMachines returns a rollout's machines in their order.
func (tx *Tx) RolloutMachines(id int64) ([]*RolloutMachine, error) {
	rows, err := tx.q.QueryContext(tx.ctx, `SELECT `+memberCols+` FROM rollout_machines WHERE rollout_id = $1 ORDER BY seq`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*RolloutMachine
	for rows.Next() {
		m, err := scanMember(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// ActiveMembership returns the machine's membership of a rollout that has
// not ended, in which it waits or flashes, and that rollout (the newest
// when there are two: one cancelled while the machine flashed); ErrNotFound
// when there is none.
func (tx *Tx) ActiveMembership(mac string) (*RolloutMachine, *Rollout, error) {
	m, err := scanMember(tx.q.QueryRowContext(tx.ctx, `SELECT `+memberCols+` FROM rollout_machines
		WHERE mac = $1 AND state IN ('waiting', 'flashing')
		AND rollout_id IN (SELECT id FROM rollouts WHERE ended_at IS NULL)
		ORDER BY rollout_id DESC LIMIT 1`, mac))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, err
	}
	r, err := tx.Rollout(m.RolloutID)
	return m, r, err
}

// CountRolloutMachines counts a rollout's machines in state.
func (tx *Tx) CountRolloutMachines(id int64, state string) (int, error) {
	var n int
	err := tx.q.QueryRowContext(tx.ctx, `SELECT COUNT(*) FROM rollout_machines WHERE rollout_id = $1 AND state = $2`, id, state).Scan(&n)
	return n, err
}

// OpenFlashDigests returns the image digests of the flash cycles under way
// (planned: the machine has its plan and may be reading the image), which
// the image cache keeps.
func (tx *Tx) OpenFlashDigests() (map[string]bool, error) {
	rows, err := tx.q.QueryContext(tx.ctx, `SELECT DISTINCT image_sha256 FROM cycles WHERE kind = 'flash' AND state IN ('booted', 'planned') AND image_sha256 IS NOT NULL`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out[d] = true
	}
	return out, rows.Err()
}
