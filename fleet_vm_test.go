package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"bty/blockindex"
	"bty/internal/testproc"
	"bty/wire"
)

// TestVMFleetLoop: the whole PXE loop against a real bty serve --state, in
// one VM reused across the phases. qemu's user network hands the NIC's iPXE
// ROM bootfile=http://10.0.2.2:PORT/pxe-bootstrap.ipxe; the server boots the
// live environment that bty media netboot built (--boot), which flashes the
// disk named by serial, posts done and reboots, and the next boot gets the
// disk. Then bty fleet reflash --wait power-cycles the VM through a cmd:
// driver that writes system_reset to its QEMU monitor, and exits 0 when the
// second flash is done. Then, with delta reflash on (bty fleet set --delta
// on), a third reflash finds the disk holding the image but for two patches
// and fetches only their blocks: the bytes the machine reports, which bty
// fleet show and the event say, are the server's count of blocks served, far
// below the image and the full flash before it. Then (delta off) an image whose catalog
// digest is wrong fails, is retried (--retries 1), fails again and the
// machine is quarantined (reflash --wait exits 4). The decoy disk is
// untouched throughout.
func TestVMFleetLoop(t *testing.T) {
	k := requireVM(t)
	requireTool(t, "mkfifo")
	requireNICROM(t)
	dir := t.TempDir()

	// The server: the kit's image, and a catalog whose row for the same
	// bytes has a wrong digest. The port is chosen first so the catalog
	// can name it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	guest := "http://10.0.2.2:" + itoaInt(port)
	imgs := filepath.Join(dir, "images")
	os.MkdirAll(imgs, 0o755)
	b, err := os.ReadFile(filepath.Join(k.dir, "images", vmImage))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(imgs, vmImage), b)
	bad := filepath.Join(dir, "bad.toml")
	writeFile(t, bad, []byte("version = 1\n[[images]]\nname = \"bad.img.gz\"\nsrc = \""+guest+"/images/"+vmImage+"?bad\"\nsha256 = \""+strings.Repeat("0", 64)+"\"\n"))
	srv := startFleet(t, imgs, filepath.Join(dir, "state"), "127.0.0.1:"+itoaInt(port), "--boot", k.netboot, "--catalog", bad, "--retries", "1")

	// The VM's monitor is a pair of FIFOs: the power driver writes to .in.
	mon := filepath.Join(dir, "mon")
	for _, f := range []string{mon + ".in", mon + ".out"} {
		if err := syscall.Mkfifo(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Drain the monitor's output so qemu never blocks on it.
	out, err := os.OpenFile(mon+".out", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := out.Read(buf); err != nil {
				return
			}
		}
	}()
	power := "cmd:echo system_reset > " + mon + ".in"
	if r := srv.fleet("set", vmMAC, "--image", vmImage, "--disk", "serial:"+vmTarget, "--mode", "bty-flash-once", "--power", power); r.code != 0 {
		t.Fatalf("bty fleet set = %d %s", r.code, r.stderr)
	}

	target, decoy, decoyUnchanged := vmDisks(t)
	console := filepath.Join(dir, "console.log")
	args := []string{"-accel", "tcg", "-m", "512M", "-display", "none", "-no-user-config", "-nodefaults",
		"-serial", "file:" + console, "-monitor", "pipe:" + mon, "-boot", "order=n",
		"-netdev", "user,id=n0,bootfile=" + guest + "/pxe-bootstrap.ipxe", "-device", "virtio-net-pci,netdev=n0,mac=" + vmMAC}
	args = append(args, target.args(1)...)
	args = append(args, decoy.args(2)...)
	qemu := testproc.DieWithTest(exec.Command("qemu-system-x86_64", args...))
	qemu.Stdout, qemu.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := qemu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		qemu.Process.Kill()
		qemu.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(console)
			t.Logf("serial console (tail):\n%s", tail(plainText(string(b)), 6000))
		}
	})
	since := func() time.Duration { return time.Since(start).Round(time.Second) }
	machine := func() wire.Machine {
		var m wire.Machine
		r := srv.fleet("show", vmMAC, "--json")
		var shown struct {
			Machine wire.Machine `json:"machine"`
		}
		if json.Unmarshal([]byte(r.stdout), &shown) == nil {
			m = shown.Machine
		}
		return m
	}
	offers := func(kind string) int {
		r := srv.fleet("events", "--machine", vmMAC, "--kind", "netboot.pxe.offered", "--limit", "500", "--json")
		return strings.Count(r.stdout, `"offer_kind":"`+kind+`"`)
	}
	waitFor := func(what string, limit time.Duration, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(limit); !ok(); time.Sleep(2 * time.Second) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s (VM up %s)", what, limit, since())
			}
		}
		t.Logf("%s after %s", what, since())
	}

	// Phase 1: PXE, the live environment from /boot, flash by serial,
	// done, reboot; the next boot is offered the disk.
	waitFor("first flash done", 2*vmTimeout, func() bool { m := machine(); return m.Disk != nil })
	waitFor("the reboot offered the disk", vmTimeout, func() bool { return offers("bty-flash-once-ipxe-exit") >= 1 })
	checkTarget(t, k, target)
	m := machine()
	if m.State != wire.StateCurrent || m.Disk.Serial != vmTarget || m.Cycle.State != wire.CycleDone || m.Cycle.BootedAt == nil || m.Cycle.WriteStartedAt == nil {
		t.Errorf("after the first flash: state %s, disk %+v, cycle %+v", m.State, m.Disk, m.Cycle)
	}
	if n := offers("bty-flash-once"); n != 1 {
		t.Errorf("%d flash offers after the disk boot, want 1: the machine was flashed again", n)
	}
	// The NIC's iPXE writes to the screen only; the live environment's log
	// is on the serial console.
	b, _ = os.ReadFile(console)
	if n := strings.Count(plainText(string(b)), "bty: flash complete"); n != 1 {
		t.Errorf("the console shows %d completed flashes, want 1", n)
	}

	// Phase 2: reflash --wait resets the VM through the monitor and waits
	// for the second flash. The target is wiped first, so the bytes show
	// that it was written again.
	writeFile(t, target.path, make([]byte, 16<<20))
	before := servedCounts(t, srv.url)
	r := srv.fleet("reflash", vmMAC, "--wait", "--timeout", (2 * vmTimeout).String(), "--reason", "CI job teardown")
	t.Logf("bty fleet reflash --wait = %d after %s: %s", r.code, since(), strings.TrimSpace(r.stderr))
	if r.code != 0 {
		t.Fatalf("bty fleet reflash --wait = %d, want 0", r.code)
	}
	checkTarget(t, k, target)
	full := servedCounts(t, srv.url)["bytes image"] - before["bytes image"]
	if r := srv.fleet("events", "--machine", vmMAC, "--kind", "power.cycled", "--json"); !strings.Contains(r.stdout, "power.cycled") {
		t.Errorf("no power.cycled event: %s", r.stdout)
	}

	// Phase 3: delta on, the disk holds the image but for 4 KiB in two of
	// its blocks: a reflash fetches only what the disk lacks.
	if r := srv.fleet("set", vmMAC, "--delta", "on"); r.code != 0 {
		t.Fatalf("bty fleet set --delta on = %d %s", r.code, r.stderr)
	}
	patchBlocks(t, target.path, k.raw, 2)
	before = servedCounts(t, srv.url)
	r = srv.fleet("reflash", vmMAC, "--wait", "--timeout", (2 * vmTimeout).String(), "--reason", "CI job, delta")
	t.Logf("bty fleet reflash --wait (delta) = %d after %s: %s", r.code, since(), strings.TrimSpace(r.stderr))
	if r.code != 0 {
		t.Fatalf("bty fleet reflash --wait (delta) = %d, want 0", r.code)
	}
	checkTarget(t, k, target)
	after := servedCounts(t, srv.url)
	served := func(k string) int64 { return after[k] - before[k] }
	cy := machine().Cycle
	if cy == nil || cy.State != wire.CycleDone || cy.BytesFetched == nil {
		t.Fatalf("the delta cycle = %+v, want done with the bytes fetched", cy)
	}
	fetched := *cy.BytesFetched
	t.Logf("delta reflash: the machine fetched %d bytes (the server served %d in %d blocks, the index %d bytes, images %d); the full reflash before it: %d bytes; the image: %d bytes decoded",
		fetched, served("bytes block"), served("requests block"), served("bytes index"), served("bytes image"), full, len(k.raw))
	if fetched == 0 || fetched != served("bytes block") || served("bytes image") != 0 || served("requests index") != 1 {
		t.Errorf("the machine reports %d bytes fetched; the server served %d of blocks, %d of images, %d indexes: want the blocks it reported, the index once, no image",
			fetched, served("bytes block"), served("bytes image"), served("requests index"))
	}
	if fetched*10 > full || fetched*10 > int64(len(k.raw)) {
		t.Errorf("the delta fetched %d bytes, want far below the full reflash's %d and the image's %d", fetched, full, len(k.raw))
	}
	if show := srv.fleet("show", vmMAC).stdout; !strings.Contains(show, "delta: ") {
		t.Errorf("bty fleet show does not say what the delta fetched:\n%s", show)
	}
	ev := srv.fleet("events", "--machine", vmMAC, "--kind", "machine.flashed", "--limit", "1").stdout
	t.Logf("%s", strings.TrimSpace(ev))
	if !strings.Contains(ev, "delta: ") {
		t.Errorf("the machine.flashed event does not say what the delta fetched: %s", ev)
	}

	// Phase 4: a wrong digest fails, is retried once, fails and quarantines.
	if r := srv.fleet("set", vmMAC, "--image", "bad.img.gz", "--delta", "off"); r.code != 0 {
		t.Fatalf("bty fleet set --image bad.img.gz --delta off = %d %s", r.code, r.stderr)
	}
	r = srv.fleet("reflash", vmMAC, "--wait", "--timeout", (3 * vmTimeout).String())
	t.Logf("bty fleet reflash --wait (bad digest) = %d after %s: %s", r.code, since(), strings.TrimSpace(r.stderr))
	if r.code != exitIntegrity || !strings.Contains(r.stderr, "quarantined") {
		t.Errorf("reflash --wait of a wrong digest = %d, want %d and the quarantine", r.code, exitIntegrity)
	}
	ev = srv.fleet("events", "--machine", vmMAC, "--limit", "500").stdout
	if strings.Count(ev, "machine.flash_failed") != 2 || !strings.Contains(ev, "machine.retry") || !strings.Contains(ev, "machine.quarantined") {
		t.Errorf("events of the failing cycle:\n%s", ev)
	}
	if m := machine(); m.State != wire.StateQuarantined {
		t.Errorf("state after the failures = %s, want quarantined", m.State)
	}
	decoyUnchanged()
}

// patchBlocks overwrites 4 KiB with random bytes in each of the first n
// 64 KiB blocks of the image (past its first MiB) that hold data, on the
// disk image at path: blocks a delta must fetch.
func patchBlocks(t *testing.T, path string, img []byte, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const bs = blockindex.DefaultBlockSize
	for off := 1 << 20; off+bs <= len(img)-1<<20 && n > 0; off += bs {
		if bytes.Equal(img[off:off+bs], make([]byte, bs)) {
			continue
		}
		if _, err := f.WriteAt(randomBytes(t, 4096), int64(off)); err != nil {
			t.Fatal(err)
		}
		n--
	}
	if n > 0 {
		t.Fatalf("the image has too few blocks with data to patch")
	}
}

// requireNICROM skips unless qemu's virtio-net has its iPXE ROM, which
// SeaBIOS boots from the network.
func requireNICROM(t *testing.T) {
	t.Helper()
	for _, p := range []string{"/usr/lib/ipxe/qemu/efi-virtio.rom", "/usr/share/qemu/efi-virtio.rom"} {
		if _, err := os.Stat(p); err == nil {
			return
		}
	}
	t.Skip("VM test: no iPXE ROM for virtio-net (apt-get install ipxe-qemu)")
}

func itoaInt(n int) string { b, _ := json.Marshal(n); return string(b) }
