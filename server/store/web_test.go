package store

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestSessions: a session is found while it is valid; it ends when it
// expires, when its token is revoked, or, for the password's, when the
// password changes (all but the session that changed it).
func TestSessions(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "fleet.db"), 0)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.AddToken("ci", "tokhash", now); err != nil {
			return err
		}
		for _, se := range []Session{
			{IDHash: "pw1", Actor: "admin", CSRF: "c1"},
			{IDHash: "pw2", Actor: "admin", CSRF: "c2"},
			{IDHash: "tok", Actor: "ci", TokenHash: "tokhash", CSRF: "c3"},
			{IDHash: "old", Actor: "admin", CSRF: "c4", ExpiresAt: now.Add(-time.Second)},
		} {
			se.CreatedAt, se.SeenAt = now, now
			if se.ExpiresAt.IsZero() {
				se.ExpiresAt = now.Add(7 * day)
			}
			if err := tx.AddSession(&se); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	valid := func(id string, at time.Time) bool {
		t.Helper()
		var err error
		s.View(ctx, func(tx *Tx) error {
			_, err = tx.Session(id, at)
			return nil
		})
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	for id, want := range map[string]bool{"pw1": true, "pw2": true, "tok": true, "old": false, "nope": false} {
		if got := valid(id, now); got != want {
			t.Errorf("session %s valid = %v, want %v", id, got, want)
		}
	}
	if valid("pw1", now.Add(8*day)) {
		t.Error("session pw1 is valid after its expiry")
	}
	s.Update(ctx, func(tx *Tx) error { return tx.TouchSession("pw1", now.Add(6*day), now.Add(13*day)) })
	if !valid("pw1", now.Add(8*day)) {
		t.Error("session pw1 is not valid after TouchSession moved its expiry on")
	}
	s.Update(ctx, func(tx *Tx) error { return tx.DeleteToken("ci") })
	if valid("tok", now) {
		t.Error("the token's session is valid after the token was revoked")
	}
	var n int64
	s.Update(ctx, func(tx *Tx) (err error) { n, err = tx.EndPasswordSessions("pw2"); return err })
	if n != 2 || valid("pw1", now) || !valid("pw2", now) {
		t.Errorf("EndPasswordSessions(pw2) ended %d; pw1 valid %v, pw2 valid %v; want 2 ended (pw1, old), pw2 kept", n, valid("pw1", now), valid("pw2", now))
	}
}

// TestParseLayout: the hand-made parser reads what fmtTime writes, as
// time.Parse does, and leaves anything else to time.Parse.
func TestParseLayout(t *testing.T) {
	for _, tm := range []time.Time{time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(2026, 2, 28, 0, 0, 1, 1000, time.UTC)} {
		s := fmtTime(tm)
		got, ok := parseLayout(s)
		want, _ := time.Parse(timeLayout, s)
		if !ok || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("parseLayout(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "2025-03-01 12:00:00", "2025-13-01T12:00:00.000000Z", "2025-03-01T12:00:00.00000xZ"} {
		if _, ok := parseLayout(s); ok {
			t.Errorf("parseLayout(%q) succeeded, want it to leave it to time.Parse", s)
		}
	}
}
