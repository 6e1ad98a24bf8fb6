package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Tx is one transaction; its methods read and write rows.
type Tx struct {
	q      *querier
	d      *dialect
	write  bool     // in Update: the rows read by key are locked (dialect.lock)
	notes  []Change // Notify's, sent at the commit
	commit []func() // OnCommit's
	ctx    context.Context
	// labels holds the labels Machine read, so that PutMachine writes them
	// only when they changed (every statement is a round trip on
	// PostgreSQL).
	labels map[string][]string
}

// lock is what a query that reads rows by key adds in a write transaction,
// so that two writers of the same machine (cycle, image, tokens) take turns:
// on PostgreSQL " FOR UPDATE", on SQLite nothing (one writer).
func (tx *Tx) lock() string {
	if tx.write {
		return tx.d.lock
	}
	return ""
}

func (tx *Tx) exec(query string, args ...any) (sql.Result, error) {
	return tx.q.ExecContext(tx.ctx, query, args...)
}

// Machine is one machine's row. Zero values are NULL.
type Machine struct {
	MAC              string
	ImageRef         string
	BootMode         string
	SanbootDrive     string
	TargetDiskSerial string
	Power            string
	Delta            bool     // reflash by writing only the blocks the disk lacks
	Labels           []string // sorted
	DiscoveredAt     time.Time
	LastSeenAt       time.Time
	LastSeenIP       string
	LastFlashedAt    time.Time
	KnownDisks       string // JSON list
	KnownDisksAt     time.Time
	LSHW             string // JSON
	LSHWAt           time.Time
	DiskRef          string // what the last verified flash wrote
	DiskSHA256       string
	DiskSerial       string
	DiskPlanID       int64
	DiskAt           time.Time
	QuarantinedAt    time.Time
	QuarantineReason string
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

const machineCols = `mac, image_ref, boot_mode, sanboot_drive, target_disk_serial, power,
	discovered_at, last_seen_at, last_seen_ip, last_flashed_at, known_disks, known_disks_at, lshw, lshw_at,
	disk_ref, disk_sha256, disk_serial, disk_plan_id, disk_at, quarantined_at, quarantine_reason, created_at, updated_at, delta`

func (m *Machine) args() []any {
	return []any{m.MAC, nullString(m.ImageRef), m.BootMode, nullString(m.SanbootDrive), nullString(m.TargetDiskSerial), m.Power,
		nullTime(m.DiscoveredAt), nullTime(m.LastSeenAt), nullString(m.LastSeenIP), nullTime(m.LastFlashedAt),
		nullString(m.KnownDisks), nullTime(m.KnownDisksAt), nullString(m.LSHW), nullTime(m.LSHWAt),
		nullString(m.DiskRef), nullString(m.DiskSHA256), nullString(m.DiskSerial), nullInt(m.DiskPlanID), nullTime(m.DiskAt),
		nullTime(m.QuarantinedAt), nullString(m.QuarantineReason), nullTime(m.CreatedAt), nullTime(m.UpdatedAt), intBool(m.Delta)}
}

type scanner interface{ Scan(...any) error }

func scanMachine(row scanner, lshw bool, more ...any) (*Machine, error) {
	var m Machine
	var s [16]sql.NullString
	var t [10]sql.NullString
	var planID sql.NullInt64
	err := row.Scan(append([]any{&m.MAC, &s[0], &m.BootMode, &s[1], &s[2], &m.Power,
		&t[0], &t[1], &s[3], &t[2], &s[4], &t[3], &s[5], &t[4],
		&s[6], &s[7], &s[8], &planID, &t[5], &t[6], &s[9], &t[7], &t[8], &m.Delta}, more...)...)
	if err != nil {
		return nil, err
	}
	m.ImageRef, m.SanbootDrive, m.TargetDiskSerial, m.LastSeenIP, m.KnownDisks = s[0].String, s[1].String, s[2].String, s[3].String, s[4].String
	if lshw {
		m.LSHW = s[5].String
	}
	m.DiskRef, m.DiskSHA256, m.DiskSerial, m.DiskPlanID, m.QuarantineReason = s[6].String, s[7].String, s[8].String, planID.Int64, s[9].String
	m.DiscoveredAt, m.LastSeenAt, m.LastFlashedAt, m.KnownDisksAt, m.LSHWAt = parseTime(t[0]), parseTime(t[1]), parseTime(t[2]), parseTime(t[3]), parseTime(t[4])
	m.DiskAt, m.QuarantinedAt, m.CreatedAt, m.UpdatedAt = parseTime(t[5]), parseTime(t[6]), parseTime(t[7]), parseTime(t[8])
	return &m, nil
}

// Machine returns the machine with this MAC, or ErrNotFound.
func (tx *Tx) Machine(mac string) (*Machine, error) {
	// A locking read gets the labels in a second statement: on PostgreSQL a
	// statement sees what was committed when it began, and the lock may have
	// waited for another writer of the machine to commit.
	col := tx.d.labels
	if tx.lock() != "" {
		col = "NULL"
	}
	var labels sql.NullString
	m, err := scanMachine(tx.q.QueryRowContext(tx.ctx, `SELECT `+machineCols+`, `+col+` FROM machines WHERE mac = $1`+tx.lock(), mac), true, &labels)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if tx.lock() != "" {
		err := tx.q.QueryRowContext(tx.ctx, `SELECT `+tx.d.labels+` FROM machines WHERE mac = $1`, mac).Scan(&labels)
		if err != nil {
			return nil, err
		}
	}
	m.Labels = []string{}
	if labels.Valid {
		m.Labels = strings.Split(labels.String, labelSep)
		slices.Sort(m.Labels)
	}
	if tx.labels == nil {
		tx.labels = map[string][]string{}
	}
	tx.labels[mac] = slices.Clone(m.Labels)
	return m, nil
}

// Machines returns the machines ordered by MAC (those with label, when it is
// not ""), without their lshw trees.
func (tx *Tx) Machines(label string) ([]*Machine, error) {
	// Without the lshw trees: up to 4 MiB each, and no list shows them.
	cols := strings.Replace(machineCols, " lshw,", " NULL,", 1)
	q, args := `SELECT `+cols+` FROM machines ORDER BY mac`, []any{}
	if label != "" {
		q, args = `SELECT `+cols+` FROM machines WHERE mac IN (SELECT mac FROM labels WHERE label = $1) ORDER BY mac`, []any{label}
	}
	rows, err := tx.q.QueryContext(tx.ctx, q, args...)
	if err != nil {
		return nil, err
	}
	var out []*Machine
	for rows.Next() {
		m, err := scanMachine(rows, false)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	all, err := tx.q.QueryContext(tx.ctx, `SELECT mac, label FROM labels ORDER BY mac, label`)
	if err != nil {
		return nil, err
	}
	defer all.Close()
	byMAC := map[string][]string{}
	for all.Next() {
		var mac, l string
		if err := all.Scan(&mac, &l); err != nil {
			return nil, err
		}
		byMAC[mac] = append(byMAC[mac], l)
	}
	for _, m := range out {
		m.Labels = byMAC[m.MAC]
		if m.Labels == nil {
			m.Labels = []string{}
		}
	}
	return out, all.Err()
}

// PutMachine writes every column of m and its labels, inserting the row when
// it is new. created reports an insert.
func (tx *Tx) PutMachine(m *Machine) (created bool, err error) {
	res, err := tx.exec(`UPDATE machines SET image_ref = $2, boot_mode = $3, sanboot_drive = $4, target_disk_serial = $5, power = $6,
		discovered_at = $7, last_seen_at = $8, last_seen_ip = $9, last_flashed_at = $10, known_disks = $11, known_disks_at = $12,
		lshw = $13, lshw_at = $14, disk_ref = $15, disk_sha256 = $16, disk_serial = $17, disk_plan_id = $18, disk_at = $19,
		quarantined_at = $20, quarantine_reason = $21, created_at = $22, updated_at = $23, delta = $24 WHERE mac = $1`, m.args()...)
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := tx.exec(`INSERT INTO machines (`+machineCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
			$13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)`, m.args()...); err != nil {
			return false, err
		}
		created = true
	}
	if read, ok := tx.labels[m.MAC]; ok && !created && slices.Equal(read, m.Labels) {
		return false, nil
	}
	if _, err := tx.exec(`DELETE FROM labels WHERE mac = $1`, m.MAC); err != nil {
		return false, err
	}
	delete(tx.labels, m.MAC)
	for _, l := range m.Labels {
		if _, err := tx.exec(`INSERT INTO labels (mac, label) VALUES ($1, $2)`, m.MAC, l); err != nil {
			return false, err
		}
	}
	return created, nil
}

// DeleteMachine removes a machine, its labels, cycles and offers, or returns
// ErrNotFound. Its events stay.
func (tx *Tx) DeleteMachine(mac string) error {
	res, err := tx.exec(`DELETE FROM machines WHERE mac = $1`, mac)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	for _, q := range []string{`DELETE FROM labels WHERE mac = $1`, `DELETE FROM cycles WHERE mac = $1`, `DELETE FROM offers WHERE mac = $1`} {
		if _, err := tx.exec(q, mac); err != nil {
			return err
		}
	}
	return nil
}

// Cycle is one flash or inventory attempt. Zero values are NULL.
type Cycle struct {
	ID               int64
	MAC              string
	Kind             string
	State            string
	Cause            string
	Attempt          int
	ImageRef         string
	ImageName        string
	ImageSHA256      string
	TargetDiskSerial string
	TokenHash        string // sha256 of the agent token, once handed out
	CreatedAt        time.Time
	DHCPAt           time.Time // bty's proxyDHCP first answered this boot
	OfferedAt        time.Time
	BootedAt         time.Time
	PlannedAt        time.Time
	WriteStartedAt   time.Time
	EndedAt          time.Time
	Reason           string
	Class            string
	SHA256           string
	BytesWritten     int64
	BytesTotal       int64
	BytesFetched     *int64 // done, a delta reflash: the bytes it downloaded; nil for a full flash
}

const cycleCols = `id, mac, kind, state, cause, attempt, image_ref, image_name, image_sha256, target_disk_serial, token_hash,
	created_at, offered_at, booted_at, planned_at, write_started_at, ended_at, reason, class, sha256, bytes_written, bytes_total, dhcp_at, bytes_fetched`

func (c *Cycle) args() []any {
	return []any{c.ID, c.MAC, c.Kind, c.State, c.Cause, c.Attempt, nullString(c.ImageRef), nullString(c.ImageName),
		nullString(c.ImageSHA256), nullString(c.TargetDiskSerial), nullString(c.TokenHash),
		nullTime(c.CreatedAt), nullTime(c.OfferedAt), nullTime(c.BootedAt), nullTime(c.PlannedAt), nullTime(c.WriteStartedAt),
		nullTime(c.EndedAt), nullString(c.Reason), nullString(c.Class), nullString(c.SHA256), nullInt(c.BytesWritten), nullInt(c.BytesTotal), nullTime(c.DHCPAt), c.BytesFetched}
}

func scanCycle(row scanner) (*Cycle, error) {
	var c Cycle
	var s [8]sql.NullString
	var t [7]sql.NullString
	var created string
	var bw, bt, bf sql.NullInt64
	err := row.Scan(&c.ID, &c.MAC, &c.Kind, &c.State, &c.Cause, &c.Attempt, &s[0], &s[1], &s[2], &s[3], &s[4],
		&created, &t[0], &t[1], &t[2], &t[3], &t[4], &s[5], &s[6], &s[7], &bw, &bt, &t[5], &bf)
	if err != nil {
		return nil, err
	}
	c.ImageRef, c.ImageName, c.ImageSHA256, c.TargetDiskSerial, c.TokenHash = s[0].String, s[1].String, s[2].String, s[3].String, s[4].String
	c.Reason, c.Class, c.SHA256, c.BytesWritten, c.BytesTotal = s[5].String, s[6].String, s[7].String, bw.Int64, bt.Int64
	c.CreatedAt = parseTime(sql.NullString{String: created, Valid: true})
	c.OfferedAt, c.BootedAt, c.PlannedAt, c.WriteStartedAt, c.EndedAt = parseTime(t[0]), parseTime(t[1]), parseTime(t[2]), parseTime(t[3]), parseTime(t[4])
	c.DHCPAt = parseTime(t[5])
	if bf.Valid {
		c.BytesFetched = &bf.Int64
	}
	return &c, nil
}

// LatestCycle returns the machine's newest cycle, or ErrNotFound.
func (tx *Tx) LatestCycle(mac string) (*Cycle, error) {
	c, err := scanCycle(tx.q.QueryRowContext(tx.ctx, `SELECT `+cycleCols+` FROM cycles WHERE mac = $1 ORDER BY id DESC LIMIT 1`+tx.lock(), mac))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return c, err
}

// LatestCycles returns every machine's newest cycle, by MAC.
func (tx *Tx) LatestCycles() (map[string]*Cycle, error) {
	rows, err := tx.q.QueryContext(tx.ctx, `SELECT `+cycleCols+` FROM cycles WHERE id IN (SELECT MAX(id) FROM cycles GROUP BY mac)`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]*Cycle{}
	for rows.Next() {
		c, err := scanCycle(rows)
		if err != nil {
			return nil, err
		}
		out[c.MAC] = c
	}
	return out, rows.Err()
}

// OffersSince counts the offers made to a machine after t: the boots it
// started since then.
func (tx *Tx) OffersSince(mac string, t time.Time) (int, error) {
	var n int
	err := tx.q.QueryRowContext(tx.ctx, `SELECT COUNT(*) FROM offers WHERE mac = $1 AND created_at > $2`, mac, fmtTime(t)).Scan(&n)
	return n, err
}

// Cycle returns the cycle with this id, or ErrNotFound.
func (tx *Tx) Cycle(id int64) (*Cycle, error) {
	c, err := scanCycle(tx.q.QueryRowContext(tx.ctx, `SELECT `+cycleCols+` FROM cycles WHERE id = $1`+tx.lock(), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return c, err
}

// Cycles returns a machine's cycles, newest first, at most limit; with mac ""
// every machine's, and with since > 0 only ids above it.
func (tx *Tx) Cycles(mac string, since int64, limit int) ([]*Cycle, error) {
	q := `SELECT ` + cycleCols + ` FROM cycles WHERE id > $1`
	args := []any{since}
	if mac != "" {
		q += ` AND mac = $2`
		args = append(args, mac)
	}
	q += fmt.Sprintf(` ORDER BY id DESC LIMIT %d`, limit)
	rows, err := tx.q.QueryContext(tx.ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Cycle
	for rows.Next() {
		c, err := scanCycle(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// InsertCycle adds c and sets its ID.
func (tx *Tx) InsertCycle(c *Cycle) error {
	a := c.args()[1:]
	return tx.q.QueryRowContext(tx.ctx, `INSERT INTO cycles (`+strings.TrimPrefix(cycleCols, "id, ")+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23) RETURNING id`, a...).Scan(&c.ID)
}

// PutCycle writes every column of an existing cycle.
func (tx *Tx) PutCycle(c *Cycle) error {
	_, err := tx.exec(`UPDATE cycles SET mac = $2, kind = $3, state = $4, cause = $5, attempt = $6, image_ref = $7, image_name = $8,
		image_sha256 = $9, target_disk_serial = $10, token_hash = $11, created_at = $12, offered_at = $13, booted_at = $14,
		planned_at = $15, write_started_at = $16, ended_at = $17, reason = $18, class = $19, sha256 = $20, bytes_written = $21,
		bytes_total = $22, dhcp_at = $23, bytes_fetched = $24 WHERE id = $1`, c.args()...)
	return err
}

// Offer is the script one boot of a machine got.
type Offer struct {
	MAC       string
	BootID    string
	Kind      string // bty-web's offer_kind
	CycleID   int64
	Script    string
	CreatedAt time.Time
}

const (
	offerCols = `mac, boot_id, kind, cycle_id, script, created_at`
	// latestOffer is a machine's latest offer (index offers_mac_created).
	latestOffer = `SELECT ` + offerCols + ` FROM offers WHERE mac = $1 ORDER BY created_at DESC LIMIT 1`
)

// Offer returns the offer made to this boot, or ErrNotFound. With bootID ""
// it returns the machine's latest offer.
func (tx *Tx) Offer(mac, bootID string) (*Offer, error) {
	q, args := `SELECT `+offerCols+` FROM offers WHERE mac = $1 AND boot_id = $2`, []any{mac, bootID}
	if bootID == "" {
		q, args = latestOffer, []any{mac}
	}
	var o Offer
	var cycle sql.NullInt64
	var created string
	err := tx.q.QueryRowContext(tx.ctx, q, args...).Scan(&o.MAC, &o.BootID, &o.Kind, &cycle, &o.Script, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	o.CycleID = cycle.Int64
	o.CreatedAt = parseTime(sql.NullString{String: created, Valid: true})
	return &o, err
}

// AddOffer records an offer.
func (tx *Tx) AddOffer(o *Offer) error {
	_, err := tx.exec(`INSERT INTO offers (mac, boot_id, kind, cycle_id, script, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		o.MAC, o.BootID, o.Kind, nullInt(o.CycleID), o.Script, fmtTime(o.CreatedAt))
	return err
}

// AddToken stores a token's hash under name, or returns ErrExists.
func (tx *Tx) AddToken(name, hash string, now time.Time) error {
	var n int
	if err := tx.q.QueryRowContext(tx.ctx, `SELECT COUNT(*) FROM tokens WHERE name = $1`, name).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return ErrExists
	}
	_, err := tx.exec(`INSERT INTO tokens (name, hash, created_at) VALUES ($1, $2, $3)`, name, hash, fmtTime(now))
	return err
}

// DeleteToken removes a token, or returns ErrNotFound.
func (tx *Tx) DeleteToken(name string) error {
	res, err := tx.exec(`DELETE FROM tokens WHERE name = $1`, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// TokenName returns the name of the token with this hash, or ErrNotFound.
func (tx *Tx) TokenName(hash string) (string, error) {
	var name string
	err := tx.q.QueryRowContext(tx.ctx, `SELECT name FROM tokens WHERE hash = $1`, hash).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return name, err
}

// Tokens returns the number of tokens.
func (tx *Tx) Tokens() (int, error) {
	var n int
	err := tx.q.QueryRowContext(tx.ctx, `SELECT COUNT(*) FROM (SELECT name FROM tokens`+tx.lock()+`) AS t`).Scan(&n)
	return n, err
}

// Image is the digest a bound ref had when the catalogs were last read.
type Image struct {
	Ref, Name, SHA256 string
	SeenAt            time.Time
}

// Image returns the recorded digest of ref, or ErrNotFound.
func (tx *Tx) Image(ref string) (*Image, error) {
	var im Image
	var seen string
	err := tx.q.QueryRowContext(tx.ctx, `SELECT ref, name, sha256, seen_at FROM images WHERE ref = $1`+tx.lock(), ref).Scan(&im.Ref, &im.Name, &im.SHA256, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	im.SeenAt = parseTime(sql.NullString{String: seen, Valid: true})
	return &im, err
}

// PutImage records the digest of a ref.
func (tx *Tx) PutImage(im *Image) error {
	res, err := tx.exec(`UPDATE images SET name = $2, sha256 = $3, seen_at = $4 WHERE ref = $1`, im.Ref, im.Name, im.SHA256, fmtTime(im.SeenAt))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		_, err = tx.exec(`INSERT INTO images (ref, name, sha256, seen_at) VALUES ($1, $2, $3, $4)`, im.Ref, im.Name, im.SHA256, fmtTime(im.SeenAt))
	}
	return err
}
