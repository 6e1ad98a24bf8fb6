package web_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"bty/server/store"
	"bty/wire"
)

// seed registers n machines as a working fleet would have them: labels, an
// inventory and an lshw tree, bound to the image, three ended flashes each
// (every seventh machine's last one failed), every fiftieth flashing now,
// and ten events each.
func seed(h *harness, n int) {
	h.t.Helper()
	now := h.now()
	disks := `[{"path":"/dev/nvme0n1","size":"477G","model":"Samsung SSD 980 PRO 512GB","serial":"S5GXNX0T","tran":"nvme","size_bytes":512110190592},` +
		`{"path":"/dev/sda","size":"1.8T","vendor":"ATA","model":"ST2000DM008","serial":"ZFL0DECOY","tran":"sata","size_bytes":2000398934016}]`
	lshw := `{"id":"machine","class":"system","vendor":"Supermicro","product":"SYS-5019C-M","children":[{"id":"core","class":"bus","children":[{"id":"cpu","class":"processor","product":"Intel Xeon E-2276G"},{"id":"memory","class":"memory","size":34359738368}]}]}`
	err := h.st.Update(context.Background(), func(tx *store.Tx) error {
		for i := 0; i < n; i++ {
			mac := fmt.Sprintf("52:54:00:00:%02x:%02x", i>>8, i&0xff)
			at := now.Add(-time.Duration(n-i) * time.Minute)
			m := &store.Machine{MAC: mac, ImageRef: h.ref, BootMode: wire.BootFlashOnce, TargetDiskSerial: "S5GXNX0T",
				Labels: []string{"ci", fmt.Sprintf("rack%d", i%20)}, DiscoveredAt: at, LastSeenAt: at, LastSeenIP: "10.0.0.1",
				KnownDisks: disks, KnownDisksAt: at, LSHW: lshw, LSHWAt: at, DiskRef: h.ref, DiskSHA256: h.sha, DiskSerial: "S5GXNX0T",
				DiskAt: at, CreatedAt: at, UpdatedAt: at}
			if _, err := tx.PutMachine(m); err != nil {
				return err
			}
			for k := 0; k < 3; k++ {
				start := at.Add(-time.Duration(3-k) * time.Hour)
				c := &store.Cycle{MAC: mac, Kind: wire.KindFlash, State: wire.CycleDone, Cause: "reflash", Attempt: 1, ImageRef: h.ref,
					ImageName: h.image, ImageSHA256: h.sha, TargetDiskSerial: "S5GXNX0T", CreatedAt: start, OfferedAt: start.Add(time.Second),
					BootedAt: start.Add(20 * time.Second), PlannedAt: start.Add(40 * time.Second), WriteStartedAt: start.Add(45 * time.Second),
					EndedAt: start.Add(5 * time.Minute), SHA256: h.sha, BytesWritten: 8e9, BytesTotal: 8e9}
				if k == 2 && i%7 == 0 {
					c.State, c.Reason, c.Class, c.SHA256 = wire.CycleFailed, "integrity: digest mismatch", "integrity", ""
				}
				if err := tx.InsertCycle(c); err != nil {
					return err
				}
			}
			if i%50 == 0 {
				c := &store.Cycle{MAC: mac, Kind: wire.KindFlash, State: wire.CyclePlanned, Cause: "reflash", Attempt: 1, ImageRef: h.ref,
					ImageName: h.image, TargetDiskSerial: "S5GXNX0T", CreatedAt: now.Add(-time.Minute), OfferedAt: now.Add(-50 * time.Second),
					PlannedAt: now.Add(-30 * time.Second), WriteStartedAt: now.Add(-20 * time.Second), BytesWritten: 4e9, BytesTotal: 8e9}
				if err := tx.InsertCycle(c); err != nil {
					return err
				}
				if err := tx.SetProgress(c.ID, "writing", now.Add(-time.Second)); err != nil {
					return err
				}
			}
			for k := 0; k < 10; k++ {
				kind := []string{"netboot.pxe.offered", "netboot.flasher.armed", "netboot.pxe.plan", "machine.flash_started", "machine.flashed"}[k%5]
				if k == 9 && i%7 == 0 {
					kind = "machine.flash_failed"
				}
				if err := tx.AddEvent(&store.Event{TS: at.Add(time.Duration(k) * time.Second), Kind: kind, SubjectKind: "machine", SubjectID: mac,
					Actor: "pxe-client", SourceIP: "10.0.0.1", Summary: kind + " of " + mac}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPages renders each page over HTTP on loopback with 1000 machines
// registered (go test ./server/web -run '^$' -bench Pages -benchtime 20x).
// The bound is 50 ms a page.
func BenchmarkPages(b *testing.B) {
	h := newHarness(b)
	seed(h, 1000)
	c := noRedirect(nil)
	h.login(c)
	for _, p := range []struct{ name, path, want string }{
		{"dashboard", "/ui/dashboard", "Flashing now"},
		{"machines", "/ui/machines", "1 to 100 of 1000 machines"},
		{"machines-filtered", "/ui/machines?q=rack7&state=current&sort=seen&dir=desc", "(of 1000)"},
		{"machine", "/ui/machines/52:54:00:00:03:e7", "Flashes and inventories"},
		{"images", "/ui/images", h.image},
		{"events", "/ui/events", "machine.flashed"},
		{"tokens", "/ui/tokens", "admin"},
	} {
		get := func(b *testing.B) {
			code, body := h.do(c, "GET", p.path, "")
			if code != http.StatusOK || !strings.Contains(body, p.want) {
				b.Fatalf("GET %s = %d, want 200 with %q", p.path, code, p.want)
			}
		}
		// The fleet unchanged since the last page (the lists reuse their
		// read), and right after a change (every list reads afresh): an
		// acknowledgement through the API, outside the timing.
		for _, changed := range []bool{false, true} {
			name := p.name
			if changed {
				name += "-after-a-change"
			}
			b.Run(name, func(b *testing.B) {
				var cpu time.Duration
				for b.Loop() {
					if changed {
						b.StopTimer()
						h.api("POST", "/events/1/ack", "")
						b.StartTimer()
					}
					start := cpuTime()
					get(b)
					cpu += cpuTime() - start
				}
				// The CPU time per page, server and client together: unlike
				// ns/op, it does not grow when other work shares the machine.
				b.ReportMetric(float64(cpu)/float64(b.N)/1e6, "cpu-ms/op")
			})
		}
	}
}
