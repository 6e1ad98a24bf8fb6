package server

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bty/wire"
)

// TestFlashOnce: flash until one done, then the disk at every boot; the
// machine knows what its disk holds.
func TestFlashOnce(t *testing.T) {
	f := newFixture(t)
	f.register(wire.BootFlashOnce)
	if st := f.machine().State; st != wire.StateStale {
		t.Errorf("state before the first flash = %s, want stale", st)
	}
	p := f.flash("b1")
	if p.Image != f.ts.URL+"/images/"+testImg || p.DiskImageSHA != f.sha || p.TargetDiskSerial != "SER1" || p.Name != testImg || p.Format == "" {
		t.Errorf("flash plan = %+v", p)
	}
	for _, id := range []string{"b2", "b3"} {
		if s := f.boot(id); !isDisk(s) {
			t.Errorf("boot %s after done = %q, want the disk", id, s)
		}
	}
	m := f.machine()
	if m.State != wire.StateCurrent || m.Disk == nil || m.Disk.SHA256 != f.sha || m.Disk.PlanID != p.PlanID || m.LastFlashedAt == nil {
		t.Errorf("machine after the flash = state %s, disk %+v", m.State, m.Disk)
	}
	c := m.Cycle
	if c.State != wire.CycleDone || c.OfferedAt == nil || c.BootedAt == nil || c.PlannedAt == nil || c.EndedAt == nil {
		t.Errorf("timeline = %+v, want every step stamped", c)
	}
	// A hand-run bty --server on the flashed machine still gets a flash
	// (bty-web's rule: the plan does not depend on the boot).
	if p := f.plan(); p.Mode != wire.ModeFlash || p.PlanID == c.ID {
		t.Errorf("plan fetched by hand = %+v, want a new flash plan", p)
	}
}

// TestFlashAlways: flash, disk, flash, disk...
func TestFlashAlways(t *testing.T) {
	f := newFixture(t)
	f.register(wire.BootFlashAlways)
	f.flash("b1")
	if s := f.boot("b2"); !isDisk(s) {
		t.Fatalf("boot after the flash = %q, want the disk", s)
	}
	f.flash("b3")
	if s := f.boot("b4"); !isDisk(s) {
		t.Fatalf("boot after the second flash = %q, want the disk", s)
	}
}

// TestInventoryMode: report the disks, boot the disk, report again.
func TestInventoryMode(t *testing.T) {
	f := newFixture(t)
	f.want(f.adm("PUT", "/machines/"+testMAC, `{"boot_mode":"bty-inventory"}`), 200, "PUT")
	for round := range 2 {
		if s := f.boot("i" + itoa(int64(round))); !isLive(s) {
			t.Fatalf("round %d: %q, want the live environment", round, s)
		}
		p := f.plan()
		if p.Mode != wire.ModeInventory {
			t.Fatalf("plan = %+v", p)
		}
		f.want(f.do("POST", "/pxe/"+testMAC+"/inventory", `{"disks":[{"path":"/dev/vda","serial":"S"}]}`, "Authorization", "Bearer "+p.AgentToken), 204, "inventory")
		if s := f.boot("d" + itoa(int64(round))); !isDisk(s) {
			t.Fatalf("round %d after the inventory: %q, want the disk", round, s)
		}
	}
}

// TestOtherModes: the wizard, the disk, and ramboot served as the wizard
// with a reason (bty-web gave a plan of exit there, its defect 7.6).
func TestOtherModes(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		mode string
		live bool
		plan wire.Mode
	}{{wire.BootTUI, true, wire.ModeInteractive}, {wire.BootExit, false, wire.ModeExit}, {wire.BootRamboot, true, wire.ModeInteractive}} {
		f.want(f.adm("PUT", "/machines/"+testMAC, `{"boot_mode":"`+tc.mode+`"}`), 200, "PUT")
		if s := f.boot(tc.mode); isLive(s) != tc.live {
			t.Errorf("%s: script %q", tc.mode, s)
		}
		p := f.plan()
		if p.Mode != tc.plan || (tc.plan == wire.ModeInteractive && p.Catalog != f.ts.URL+"/catalog.toml") {
			t.Errorf("%s: plan %+v", tc.mode, p)
		}
		if tc.mode == wire.BootRamboot && !strings.Contains(p.Reason, "ramboot") {
			t.Errorf("ramboot plan gives no reason: %+v", p)
		}
	}
	// A flash mode without an image, and with an image no catalog has.
	f.want(f.adm("PUT", "/machines/"+testMAC, `{"boot_mode":"bty-flash-once","target_disk_serial":"S"}`), 200, "PUT")
	if s := f.boot("u1"); !strings.Contains(s, "no usable bty assignment") {
		t.Errorf("flash mode without an image: %q", s)
	}
	if p := f.plan(); p.Mode != wire.ModeExit {
		t.Errorf("plan without an image = %+v, want exit", p)
	}
	f.want(f.adm("PUT", "/machines/"+testMAC, `{"boot_mode":"bty-flash-once","target_disk_serial":"S","bty_image_ref":"`+strings.Repeat("0", 64)+`"}`), 200, "PUT")
	if s := f.boot("u2"); !strings.Contains(s, "ref=000000000000") || !strings.Contains(s, "\nexit\n") {
		t.Errorf("flash mode with an unknown image: %q", s)
	}
}

// TestDefectRetryEveryCycle (bty-web 7.2): a flash that never reported is
// retried at the next boot in every cycle, not only the first; bty-web booted
// the half-flashed disk from the second cycle of flash-always on.
func TestDefectRetryEveryCycle(t *testing.T) {
	f := newFixture(t)
	f.register(wire.BootFlashAlways)
	f.flash("b1")
	if !isDisk(f.boot("b2")) {
		t.Fatal("no disk boot after the first flash")
	}
	// Cycle two: offered, kernel fetched, plan fetched, then the machine
	// dies without a status.
	if !isLive(f.boot("b3")) {
		t.Fatal("no flash at the start of cycle two")
	}
	f.do("HEAD", "/boot/vmlinuz?mac="+testMAC, "")
	f.plan()
	if s := f.boot("b4"); !isLive(s) {
		t.Fatalf("boot after a crashed flash in cycle two = %q, want the flash again", s)
	}
	m := f.machine()
	if m.Cycle.Trigger != "retry" || m.Cycle.Attempt != 2 {
		t.Errorf("cycle after the crash = %+v, want attempt 2 of a retry", m.Cycle)
	}
	if kinds := f.kinds(); !has(kinds, "machine.flash_failed") || !has(kinds, "machine.retry") {
		t.Errorf("events = %q, want the crash logged as a failure and a retry", kinds)
	}
}

// TestDefectReflashNow (bty-web 7.3): a flash-once machine that booted its
// disk is re-armed by a reflash, without changing its binding; with a cmd:
// power driver it is power-cycled, the driver seeing the MAC and the action.
func TestDefectReflashNow(t *testing.T) {
	f := newFixture(t)
	out := filepath.Join(t.TempDir(), "power.log")
	f.register(wire.BootFlashOnce, `,"power":"cmd:echo $BTY_MAC $BTY_POWER_ACTION >> `+out+`"`)
	f.flash("b1")
	if !isDisk(f.boot("b2")) {
		t.Fatal("no disk boot after the flash")
	}
	r := f.want(f.adm("POST", "/machines/"+testMAC+"/reflash", `{"reason":"CI job 7 found the box dirty"}`), 202, "reflash")
	var c wire.Cycle
	json.Unmarshal([]byte(r.body), &c)
	if c.State != wire.CycleArmed || c.Trigger != "reflash" {
		t.Errorf("reflash answer = %+v", c)
	}
	if st := f.machine().State; st != wire.StateArmed {
		t.Errorf("state after reflash = %s, want armed", st)
	}
	f.srv.bg.Wait()
	if b, _ := os.ReadFile(out); string(b) != testMAC+" cycle\n" {
		t.Errorf("the power driver ran with %q, want %q", b, testMAC+" cycle\n")
	}
	p := f.flash("b3")
	if p.PlanID != c.ID {
		t.Errorf("the flash ran plan %d, want the armed %d", p.PlanID, c.ID)
	}
	if kinds := f.kinds(); !has(kinds, "machine.reflash_requested") || !has(kinds, "power.cycled") {
		t.Errorf("events = %q", kinds)
	}
	// Refused for a mode that does not flash.
	f.want(f.adm("PATCH", "/machines/"+testMAC, `{"boot_mode":"bty-tui"}`), 200, "PATCH")
	f.want(f.adm("POST", "/machines/"+testMAC+"/reflash", ""), 409, "reflash a tui machine")
	f.want(f.adm("POST", "/machines/aa:aa:aa:aa:aa:aa/reflash", ""), 404, "reflash unknown")
}

// TestDefectIdempotentOffer (bty-web 7.4): an iPXE retry of the same boot
// gets the same script, so a lost answer does not turn a disk boot into a
// reflash; the next boot (a new boot id) gets the next decision.
func TestDefectIdempotentOffer(t *testing.T) {
	f := newFixture(t)
	f.register(wire.BootFlashAlways)
	f.flash("b1")
	first := f.boot("b2")
	if !isDisk(first) {
		t.Fatal("no disk boot after the flash")
	}
	for range 3 {
		if again := f.boot("b2"); again != first {
			t.Fatalf("the same boot asked again got %q, want the same disk boot", again)
		}
	}
	if !isLive(f.boot("b3")) {
		t.Fatal("a new boot was not offered the next flash")
	}
	if again := f.boot("b3"); !isLive(again) {
		t.Fatal("the flash boot asked again was not offered the flash again")
	}

	// Without a boot id (a chain set up by hand): a repeat within the
	// window, before the kernel is fetched, is the same boot.
	f.flash("b4")
	path := "/pxe/" + wire.HexHyp(testMAC)
	first = f.want(f.do("GET", path, ""), 200, "no id").body
	if !isDisk(first) {
		t.Fatal("no disk boot after the flash, without an id")
	}
	if again := f.want(f.do("GET", path, ""), 200, "no id, retry").body; again != first {
		t.Errorf("a retry without an id got %q, want the same disk boot", again)
	}
	f.tick(repeatWindow)
	if again := f.want(f.do("GET", path, ""), 200, "no id, later").body; !isLive(again) {
		t.Errorf("a boot without an id after the window got %q, want the next flash", again)
	}
}

// TestStatusRefused: a late status for an older plan cannot end a newer one;
// a spoofed status (no token, another token, a plan not handed out yet) is
// refused and logged; a repeated status is acknowledged without effect.
func TestStatusRefused(t *testing.T) {
	f := newFixture(t)
	f.register(wire.BootFlashOnce)
	if !isLive(f.boot("b1")) {
		t.Fatal("no flash offered")
	}
	old := f.plan()
	done := func(p wire.Plan) string {
		return `{"status":"done","plan_id":` + itoa(p.PlanID) + `,"sha256":"` + f.sha + `"}`
	}
	// Spoofs while plan 1 is under way.
	f.want(f.do("POST", "/pxe/"+testMAC+"/status", done(old)), 401, "done without a token")
	f.want(f.do("POST", "/pxe/"+testMAC+"/status", done(old), "Authorization", "Bearer "+strings.Repeat("f", 64)), 403, "done with another token")
	// A reflash supersedes plan 1; its late done is refused and does not
	// end plan 2, which cannot be ended before its plan is handed out.
	f.want(f.adm("POST", "/machines/"+testMAC+"/reflash", ""), 202, "reflash")
	f.want(f.status(old, done(old)), 409, "late done for plan 1")
	f.want(f.status(old, `{"status":"done"}`), 409, "done without a plan id, before plan 2 is handed out")
	m := f.machine()
	if m.Disk != nil || m.Cycle.State != wire.CycleArmed {
		t.Fatalf("after the refused posts: disk %+v, cycle %+v; want nothing recorded", m.Disk, m.Cycle)
	}
	p := f.flash("b2")
	// The same done again (its answer was lost) is acknowledged; a failed
	// for the ended plan is not.
	f.want(f.status(p, done(p)), 204, "the same done again")
	f.want(f.status(p, `{"status":"failed","plan_id":`+itoa(p.PlanID)+`}`), 409, "failed after done")
	f.want(f.do("POST", "/pxe/"+testMAC+"/status", `{"status":"done","plan_id":999}`), 409, "done for a plan that does not exist")
	kinds := f.kinds()
	n := 0
	for _, k := range kinds {
		if k == "pxe.status.refused" {
			n++
		}
	}
	if n != 6 {
		t.Errorf("%d pxe.status.refused events, want 6: %q", n, kinds)
	}
}

// TestRetryThenQuarantine: a failed flash is retried (attempts 2 and 3 with
// the default of two retries), then the machine is quarantined: it boots
// its disk and its plan says why, until a reflash releases it.
func TestRetryThenQuarantine(t *testing.T) {
	f := newFixture(t)
	f.register(wire.BootFlashOnce)
	for attempt := 1; attempt <= 3; attempt++ {
		if !isLive(f.boot("b" + itoa(int64(attempt)))) {
			t.Fatalf("attempt %d: no flash offered", attempt)
		}
		p := f.plan()
		f.want(f.status(p, `{"status":"failed","reason":"sha256 mismatch","class":"integrity","plan_id":`+itoa(p.PlanID)+`}`), 204, "failed")
		m := f.machine()
		if attempt < 3 && (m.Cycle.State != wire.CycleArmed || m.Cycle.Attempt != attempt+1) {
			t.Fatalf("after failure %d: cycle %+v, want attempt %d armed", attempt, m.Cycle, attempt+1)
		}
	}
	m := f.machine()
	if m.State != wire.StateQuarantined || m.Quarantine == nil || !strings.Contains(m.Quarantine.Reason, "sha256 mismatch") {
		t.Fatalf("after three failures: %+v", m)
	}
	if kinds := f.kinds(); !has(kinds, "machine.quarantined") {
		t.Errorf("events = %q", kinds)
	}
	if !isDisk(f.boot("q1")) {
		t.Errorf("a quarantined machine was not sent to its disk")
	}
	if p := f.plan(); p.Mode != wire.ModeExit || !strings.Contains(p.Reason, "quarantined") {
		t.Errorf("plan of a quarantined machine = %+v", p)
	}
	f.want(f.adm("POST", "/machines/"+testMAC+"/reflash", ""), 202, "reflash")
	if m := f.machine(); m.Quarantine != nil {
		t.Errorf("still quarantined after a reflash")
	}
	f.flash("r1")
}

// TestWakeOnLAN: the wol driver sends a magic packet to the given address.
func TestWakeOnLAN(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	f := newFixture(t)
	f.register(wire.BootFlashOnce, `,"power":"wol:`+pc.LocalAddr().String()+`"`)
	f.want(f.adm("POST", "/machines/"+testMAC+"/reflash", ""), 202, "reflash")
	buf := make([]byte, 200)
	pc.SetReadDeadline(time.Now().Add(time.Minute))
	n, _, err := pc.ReadFrom(buf)
	if err != nil || n != 102 || buf[0] != 0xff || buf[6] != 0x52 || buf[101] != 0x56 {
		t.Errorf("magic packet = %x, %v", buf[:n], err)
	}
}

// TestStaleOnRefresh: when a catalog row's digest changes at a refresh, the
// machines whose disks hold the old bytes are stale and flash at their next
// boot.
func TestStaleOnRefresh(t *testing.T) {
	dir := t.TempDir()
	cat := filepath.Join(dir, "catalog.toml")
	src := "https://images.example/rolling.img.gz"
	write := func(sum string) {
		os.WriteFile(cat, []byte("version = 1\n[[images]]\nname = \"rolling\"\nsrc = \""+src+"\"\nsha256 = \""+sum+"\"\n"), 0o644)
	}
	write(strings.Repeat("a", 64))
	f := newFixture(t, func(o *Options) {
		o.CatalogSources = []string{cat}
		o.Resolver = &catalogResolver
	})
	if err := f.srv.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	ref := refOf(t, src)
	f.want(f.adm("PUT", "/machines/"+testMAC, `{"bty_image_ref":"`+ref+`","boot_mode":"bty-flash-once","target_disk_serial":"S"}`), 200, "PUT")
	if !isLive(f.boot("b1")) {
		t.Fatal("no flash")
	}
	p := f.plan()
	if p.Image != src || p.DiskImageSHA != strings.Repeat("a", 64) {
		t.Errorf("plan = %+v", p)
	}
	f.want(f.status(p, `{"status":"done","plan_id":`+itoa(p.PlanID)+`}`), 204, "done")
	f.srv.Refresh(t.Context())
	if !isDisk(f.boot("b2")) || f.machine().State != wire.StateCurrent {
		t.Fatal("not current after the flash")
	}
	write(strings.Repeat("b", 64))
	f.tick(indexTTL)
	if err := f.srv.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if kinds := f.kinds(); !has(kinds, "image.changed") || !has(kinds, "machine.stale") {
		t.Errorf("events after the tag moved = %q", kinds)
	}
	if st := f.machine().State; st != wire.StateStale {
		t.Errorf("state after the tag moved = %s, want stale", st)
	}
	if !isLive(f.boot("b3")) {
		t.Errorf("a stale flash-once machine was not flashed at its next boot")
	}
}

// TestMetrics: the machine gauges and the flash counters in Prometheus' text.
func TestMetrics(t *testing.T) {
	f := newFixture(t)
	f.register(wire.BootFlashOnce)
	f.flash("b1")
	r := f.want(f.do("GET", "/metrics", ""), 200, "metrics")
	for _, want := range []string{
		`bty_machines{state="current"} 1`, `bty_machines{state="stale"} 0`,
		`bty_cycles_total{kind="flash",result="done"} 1`,
		"bty_flash_duration_seconds_count 1", `bty_http_requests_total{route="GET /pxe/{mac}/plan",code="200"} 1`,
	} {
		if !strings.Contains(r.body, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, r.body)
		}
	}
}
