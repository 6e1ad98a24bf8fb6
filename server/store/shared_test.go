package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// What several servers on one database rely on, on both databases.

// TestConcurrentOpen: four servers start at once on an empty database; every
// one opens it (on SQLite, turning a new file to WAL failed with SQLITE_BUSY
// about one start in fifty), and each migration was applied once.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.db")
	if backend != "sqlite" {
		pgDatabase(t, path)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := tryOpen(t, path, 0)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("server %d: %v", i, err)
		}
	}
	s := open(t, path, 0)
	ms, _ := migrations(sqliteDialect)
	var n int
	err := s.View(ctx, func(tx *Tx) error {
		return tx.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n)
	})
	if err != nil || n != len(ms) {
		t.Errorf("schema_migrations has %d rows (%v), want %d: one per migration", n, err, len(ms))
	}
	if backend == "sqlite" { // readers do not wait for the writer
		var mode string
		err := s.View(ctx, func(tx *Tx) error {
			return tx.q.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode)
		})
		if err != nil || mode != "wal" {
			t.Errorf("journal_mode is %q (%v), want wal", mode, err)
		}
	}
}

// TestNoLostUpdate: 16 writers at once each read a machine's labels, wait,
// and write them back with one more. Each Update commits (a conflict is run
// again, not returned) and none is lost.
func TestNoLostUpdate(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "fleet.db"), 0)
	now := time.Now().UTC()
	mac := "aa:bb:cc:dd:ee:01"
	err := s.Update(ctx, func(tx *Tx) error {
		_, err := tx.PutMachine(&Machine{MAC: mac, BootMode: "bty-inventory", Labels: []string{}, CreatedAt: now, UpdatedAt: now})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	runs := 0
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Update(ctx, func(tx *Tx) error {
				mu.Lock()
				runs++
				mu.Unlock()
				m, err := tx.Machine(mac)
				if err != nil {
					return err
				}
				time.Sleep(5 * time.Millisecond) // the others read the same row meanwhile
				m.Labels = append(m.Labels, fmt.Sprintf("l%02d", i))
				_, err = tx.PutMachine(m)
				return err
			})
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	var m *Machine
	s.View(ctx, func(tx *Tx) (err error) {
		m, err = tx.Machine(mac)
		return err
	})
	if m == nil || len(m.Labels) != n {
		t.Errorf("after %d writers the machine has %d labels, want %d: updates were lost", n, len(m.Labels), n)
	}
	t.Logf("%d writers ran their transaction %d times", n, runs)
}

// TestChanges: a notice reaches Changes when its transaction commits, not
// when it rolls back; on PostgreSQL a notice from one server reaches another.
func TestChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.db")
	a := open(t, path, 0)
	b := a
	if backend != "sqlite" {
		b = open(t, path, 0) // another server on the same database
	}
	ch := b.Changes(t.Context())
	a.Update(ctx, func(tx *Tx) error {
		tx.Notify("machine", "rolled-back")
		return errors.New("no")
	})
	a.Update(ctx, func(tx *Tx) error {
		tx.Notify("machine", "aa:bb:cc:dd:ee:02")
		return nil
	})
	select {
	case c := <-ch:
		if c != (Change{Topic: "machine", Detail: "aa:bb:cc:dd:ee:02"}) {
			t.Errorf("first change = %+v, want the committed one", c)
		}
	case <-time.After(time.Minute):
		t.Fatalf("no change in a minute")
	}
}

// TestFailedWriteAlone: of writers that run at once (on SQLite, committed
// together), those whose fn fails or panics leave nothing, the others
// everything; the store goes on working after a panic.
func TestFailedWriteAlone(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "fleet.db"), 0)
	now := time.Now().UTC()
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if v := recover(); v != nil && i%3 != 2 {
					t.Errorf("writer %d panicked: %v", i, v)
				}
			}()
			err := s.Update(ctx, func(tx *Tx) error {
				if err := tx.AddEvent(&Event{TS: now, Kind: fmt.Sprint("k", i%3), SubjectKind: "machine", SubjectID: "m", Actor: "t", Summary: "s"}); err != nil {
					return err
				}
				switch i % 3 {
				case 1:
					return errors.New("no")
				case 2:
					panic("fn panicked")
				}
				return nil
			})
			if (err == nil) != (i%3 == 0) {
				t.Errorf("writer %d: Update = %v", i, err)
			}
		}()
	}
	wg.Wait()
	var evs []Event
	s.View(ctx, func(tx *Tx) (err error) {
		evs, err = tx.Events(EventFilter{Limit: 100})
		return err
	})
	if len(evs) != 10 {
		t.Errorf("%d events, want the 10 of the writers that succeeded", len(evs))
	}
	for _, e := range evs {
		if e.Kind != "k0" {
			t.Errorf("event %s of a writer that failed was kept", e.Kind)
		}
	}
}
