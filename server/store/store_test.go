package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var ctx = context.Background()

func open(t *testing.T, path string, upTo int) testStore {
	t.Helper()
	s, err := tryOpen(t, path, upTo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestUpgradeKeepsRows: a database made by the first migration, with a
// machine, its labels and binding, events and a token, is upgraded in place
// and keeps all of them (bty-web wiped its database on every version change).
func TestUpgradeKeepsRows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.db")
	old := open(t, path, 1)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	ref := fmt.Sprintf("%064x", 42)
	err := old.Update(ctx, func(tx *Tx) error {
		// Written with the first schema's columns only, as a server of that
		// version did.
		if _, err := tx.exec(`INSERT INTO machines (mac, image_ref, boot_mode, target_disk_serial, known_disks, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $6)`, "52:54:00:12:34:56", ref, "bty-flash-once", "S1", `[{"path":"/dev/vda"}]`, fmtTime(now)); err != nil {
			return err
		}
		if _, err := tx.exec(`INSERT INTO labels (mac, label) VALUES ($1, $2), ($1, $3)`, "52:54:00:12:34:56", "ci", "rack1"); err != nil {
			return err
		}
		if err := tx.AddToken("admin", "h", now); err != nil {
			return err
		}
		return tx.AddEvent(&Event{TS: now, Kind: "machine.created", SubjectKind: "machine", SubjectID: "52:54:00:12:34:56", Actor: "admin", Summary: "created"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := old.Version(ctx); v != 1 {
		t.Fatalf("old database at version %d, want 1", v)
	}
	old.Close()

	latest := len(must(migrations(sqliteDialect)))
	s := open(t, path, 0)
	if v, _ := s.Version(ctx); v != latest {
		t.Errorf("upgraded database at version %d, want %d", v, latest)
	}
	err = s.View(ctx, func(tx *Tx) error {
		m, err := tx.Machine("52:54:00:12:34:56")
		if err != nil {
			return err
		}
		want := &Machine{MAC: "52:54:00:12:34:56", ImageRef: ref, BootMode: "bty-flash-once", TargetDiskSerial: "S1",
			Labels: []string{"ci", "rack1"}, KnownDisks: `[{"path":"/dev/vda"}]`, CreatedAt: now, UpdatedAt: now}
		if diff := cmp.Diff(want, m); diff != "" {
			t.Errorf("machine after the upgrade (-want +got):\n%s", diff)
		}
		evs, err := tx.Events(EventFilter{Limit: 10})
		if err != nil || len(evs) != 1 || evs[0].Kind != "machine.created" {
			t.Errorf("events after the upgrade = %+v, %v", evs, err)
		}
		if name, err := tx.TokenName("h"); name != "admin" {
			t.Errorf("token after the upgrade = %q, %v", name, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Opening again applies nothing and changes nothing.
	s.Close()
	s = open(t, path, 0)
	if v, _ := s.Version(ctx); v != latest {
		t.Errorf("reopened database at version %d, want %d", v, latest)
	}
}

// TestNewerSchemaRefused: a database from a newer bty is not touched.
func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.db")
	s := open(t, path, 0)
	s.Update(ctx, func(tx *Tx) error {
		_, err := tx.exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 'x')`)
		return err
	})
	s.Close()
	if _, err := tryOpen(t, path, 0); err == nil {
		t.Fatalf("opening a version 99 database = nil error, want a refusal")
	}
}

// TestRows: machines, cycles, offers, events, tokens and images round-trip,
// and concurrent writers all land.
func TestRows(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "fleet.db"), 0)
	now := time.Now().UTC().Truncate(time.Microsecond)
	m := &Machine{MAC: "aa:bb:cc:dd:ee:ff", BootMode: "bty-inventory", Labels: []string{"a"}, Power: "wol", DiskPlanID: 3, DiskAt: now, CreatedAt: now, UpdatedAt: now}
	c := &Cycle{MAC: m.MAC, Kind: "flash", State: "armed", Cause: "reflash", Attempt: 1, CreatedAt: now, BytesWritten: 9}
	err := s.Update(ctx, func(tx *Tx) error {
		if created, err := tx.PutMachine(m); err != nil || !created {
			return fmt.Errorf("PutMachine = %v, %v", created, err)
		}
		if err := tx.InsertCycle(c); err != nil {
			return err
		}
		return tx.AddOffer(&Offer{MAC: m.MAC, BootID: "b1", Kind: "bty-flash-once", CycleID: c.ID, Script: "#!ipxe\n", CreatedAt: now})
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Update(ctx, func(tx *Tx) error {
				return tx.AddEvent(&Event{TS: now, Kind: "k", SubjectKind: "machine", SubjectID: m.MAC, Actor: "t", Summary: fmt.Sprint(i)})
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	s.View(ctx, func(tx *Tx) error {
		got, err := tx.Machine(m.MAC)
		if diff := cmp.Diff(m, got); err != nil || diff != "" {
			t.Errorf("machine (-want +got) %v:\n%s", err, diff)
		}
		gc, err := tx.LatestCycle(m.MAC)
		if diff := cmp.Diff(c, gc); err != nil || diff != "" {
			t.Errorf("cycle (-want +got) %v:\n%s", err, diff)
		}
		if o, err := tx.Offer(m.MAC, ""); err != nil || o.CycleID != c.ID || o.BootID != "b1" {
			t.Errorf("latest offer = %+v, %v", o, err)
		}
		if _, err := tx.Offer(m.MAC, "b2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("offer b2 = %v, want ErrNotFound", err)
		}
		evs, _ := tx.Events(EventFilter{Limit: 100})
		if len(evs) != 20 {
			t.Errorf("%d events after 20 concurrent writers", len(evs))
		}
		if ms, _ := tx.Machines("a"); len(ms) != 1 {
			t.Errorf("Machines(label a) = %d machines, want 1", len(ms))
		}
		if ms, _ := tx.Machines("b"); len(ms) != 0 {
			t.Errorf("Machines(label b) = %d machines, want 0", len(ms))
		}
		return nil
	})
	s.Update(ctx, func(tx *Tx) error {
		n, err := tx.Prune(5, time.Time{})
		if n != 15 || err != nil {
			t.Errorf("Prune(keep 5) = %d, %v, want 15 deleted", n, err)
		}
		return nil
	})
	if s, ok := s.(*SQLite); ok {
		if v, err := s.IntegrityCheck(ctx); v != "ok" {
			t.Errorf("integrity_check = %q, %v", v, err)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestLatestOfferIndexed: a machine's latest offer is looked up through
// index offers_mac_created, in order. Without it, PostgreSQL sometimes
// walked every machine's offers newest first for a machine with none (after
// bench/fleet.sh: 6 ms per first PXE request at 15,000 offers, and growing
// with the fleet's history); otherwise both databases sort the machine's
// offers.
func TestLatestOfferIndexed(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "fleet.db"), 0)
	now := time.Now().UTC()
	err := s.Update(ctx, func(tx *Tx) error {
		for i := range 3000 { // 1000 machines, 3 boots each
			o := &Offer{MAC: fmt.Sprintf("aa:bb:cc:dd:%02x:%02x", i%1000/256, i%1000%256), BootID: fmt.Sprint("boot-", i), Kind: "exit", CreatedAt: now.Add(time.Duration(i) * time.Millisecond)}
			if err := tx.AddOffer(o); err != nil {
				return err
			}
		}
		_, err := tx.exec(`ANALYZE offers`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	explain := `EXPLAIN QUERY PLAN ` // SQLite
	if backend != "sqlite" {
		explain = `EXPLAIN `
	}
	var plan []string
	err = s.View(ctx, func(tx *Tx) error {
		rows, err := tx.q.QueryContext(ctx, explain+latestOffer, "aa:bb:cc:dd:ee:ff") // a first boot: no offers yet
		if err != nil {
			return err
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			for i := range vals {
				vals[i] = new(any)
			}
			if err := rows.Scan(vals...); err != nil {
				return err
			}
			plan = append(plan, fmt.Sprint(*vals[len(vals)-1].(*any)))
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "offers_mac_created") {
		t.Errorf("the latest offer of one machine is found with this plan, not through index offers_mac_created:\n%s", p)
	}
}
