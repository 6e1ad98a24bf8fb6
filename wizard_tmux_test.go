package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bty/demo"
)

// The wizard as a user runs it: the real binary in a tmux pane of a fixed
// size, driven with send-keys and read with capture-pane. With
// BTY_SCREENSHOTS=DIR the captured screens are written there (the README's
// screenshots come from such a run).

// pane is a tmux server of its own (-L) with one session running a command.
type pane struct {
	t    *testing.T
	sock string
}

// startPane runs the shell command line cmd in a new tmux session of w x h
// cells. When cmd ends, the pane shows "exit=CODE" and stays.
func startPane(t *testing.T, w, h int, cmd string) *pane {
	t.Helper()
	requireTool(t, "tmux")
	var b [6]byte
	rand.Read(b[:])
	p := &pane{t: t, sock: fmt.Sprintf("bty-test-%x", b)}
	line := cmd + `; echo "exit=$?"; sleep 3600`
	p.tmux("new-session", "-d", "-s", "main", "-x", fmt.Sprint(w), "-y", fmt.Sprint(h), line)
	t.Cleanup(func() { exec.Command("tmux", "-L", p.sock, "kill-server").Run() })
	return p
}

func (p *pane) tmux(args ...string) string {
	p.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", p.sock}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// keys sends keys as tmux names them: Enter, Escape, Down, C-c, or text.
func (p *pane) keys(keys ...string) {
	p.t.Helper()
	for _, k := range keys {
		p.tmux("send-keys", "-t", "main", k)
		time.Sleep(50 * time.Millisecond)
	}
}

// typeText sends text literally.
func (p *pane) typeText(s string) {
	p.t.Helper()
	p.tmux("send-keys", "-t", "main", "-l", s)
	time.Sleep(50 * time.Millisecond)
}

// resize sets the window to w x h cells.
func (p *pane) resize(w, h int) {
	p.t.Helper()
	p.tmux("resize-window", "-t", "main", "-x", fmt.Sprint(w), "-y", fmt.Sprint(h))
	time.Sleep(100 * time.Millisecond)
}

func (p *pane) screen() string {
	p.t.Helper()
	return p.tmux("capture-pane", "-p", "-t", "main")
}

// waitFor polls the screen until it shows every text, and returns it.
func (p *pane) waitFor(texts ...string) string {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := p.screen()
		ok := true
		for _, text := range texts {
			ok = ok && strings.Contains(s, text)
		}
		if ok {
			return s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the screen does not show %q:\n%s", texts, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shot saves the screen as name.txt under $BTY_SCREENSHOTS, if set.
func (p *pane) shot(name, screen string) {
	p.t.Helper()
	dir := os.Getenv("BTY_SCREENSHOTS")
	if dir == "" {
		return
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(screen, "\n"), "\n") {
		lines = append(lines, strings.TrimRight(l, " "))
	}
	if err := os.WriteFile(filepath.Join(dir, name+".txt"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// TestDemoTmux runs bty demo, flashes the xz image into the scratch file,
// checks its bytes, and walks back through every screen.
func TestDemoTmux(t *testing.T) {
	dir := t.TempDir()
	p := startPane(t, 80, 24, fmt.Sprintf("TERM=xterm-256color %s demo --dir %s", shellQuote(btyBin), shellQuote(dir)))
	s := p.waitFor("Choose an image", "demo-disk.qcow2", "6 images")
	p.shot("images", s)
	for _, name := range []string{"demo-disk.img ", "demo-disk.img.bz2", "demo-disk.img.gz", "demo-disk.img.xz", "demo-disk.img.zst", "demo-disk.qcow2"} {
		if !strings.Contains(s, name) {
			t.Errorf("the image screen does not list %s", name)
		}
	}

	// Back to the source screen and forward again.
	p.keys("Escape")
	p.shot("source", p.waitFor("Where do the images come from?", "Local images only"))
	p.keys("Enter")
	p.waitFor("Choose an image", "6 images")

	p.keys("Down", "Down", "Down") // demo-disk.img.xz
	p.keys("Enter")
	s = p.waitFor("Choose the target disk", "scratch.img")
	p.shot("disks", s)
	p.keys("Enter")
	s = p.waitFor("Flash it? [y/N]", "All data on")
	p.shot("confirm", s)
	if !strings.Contains(s, "demo-disk.img.xz") || !strings.Contains(s, filepath.Join(dir, "scratch.img")) {
		t.Errorf("the confirmation does not name the image and the scratch file:\n%s", s)
	}
	p.keys("n") // the default is no
	p.waitFor("Choose the target disk")
	p.keys("Enter")
	p.waitFor("Flash it? [y/N]")
	p.keys("y")
	s = p.waitFor("Done: demo-disk.img.xz is on", "matches the .sha256 sidecar")
	p.shot("done", s)
	if strings.Contains(s, "reboot") {
		t.Errorf("the demo offers a reboot:\n%s", s)
	}
	got, err := os.ReadFile(filepath.Join(dir, "scratch.img"))
	if err != nil {
		t.Fatal(err)
	}
	if want := demo.Disk(); !bytes.Equal(got, want) {
		t.Errorf("scratch file after flashing the xz image: %s", firstDiff(got, want))
	}

	p.keys("a") // another disk
	p.waitFor("Choose the target disk")
	p.keys("Escape")
	p.waitFor("Choose an image")
	p.keys("q")
	p.waitFor("exit=0")
}

// TestDemoTmuxCancel cancels a slow demo flash with ctrl+c and checks what it
// leaves: a scratch file whose first MiB is zero, and exit code 130.
func TestDemoTmuxCancel(t *testing.T) {
	dir := t.TempDir()
	p := startPane(t, 80, 24, fmt.Sprintf("TERM=linux %s demo --slow --dir %s", shellQuote(btyBin), shellQuote(dir)))
	p.waitFor("Choose an image", "6 images")
	p.keys("Enter") // demo-disk.img, raw: 8 MiB over about 5 s
	p.waitFor("Choose the target disk")
	p.keys("Enter")
	p.waitFor("Flash it? [y/N]")
	p.keys("y")
	s := p.waitFor("Flashing demo-disk.img", "MiB of 8.0 MiB")
	p.shot("progress", s)
	if strings.ContainsAny(s, "─›█░•") {
		t.Errorf("TERM=linux: the screen is not plain ASCII:\n%s", s)
	}
	p.keys("C-c")
	s = p.waitFor("Cancel the flash?", "no partition table")
	p.shot("progress-cancel", s)
	p.keys("y")
	s = p.waitFor("The flash was cancelled")
	p.shot("error", s)
	head := readDev(t, filepath.Join(dir, "scratch.img"), 1<<20)
	if !bytes.Equal(head, make([]byte, 1<<20)) {
		t.Error("the first MiB of a cancelled flash is not zero")
	}
	p.keys("q")
	p.waitFor("exit=130")
}

// TestWizardNeedsTerminal: without a terminal the wizard refuses and says to
// pass --yes.
func TestWizardNeedsTerminal(t *testing.T) {
	for _, args := range [][]string{{"demo"}, {"--image", "a.img", "--disk", "/tmp/b.img"}} {
		r := runBty(t, args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "--yes") {
			t.Errorf("bty %s without a terminal = exit %d, %q; want exit 2 saying --yes", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

// loopImageRoot is an image root holding one raw image of random bytes.
func loopImageRoot(t *testing.T, size int) (root, img string, data []byte) {
	t.Helper()
	root = t.TempDir()
	data = randomBytes(t, size)
	img = filepath.Join(root, "random.img")
	writeFile(t, img, data)
	return root, img, data
}

// TestWizardLoopTmux flashes a loop device through the wizard: --image and
// --disk open it at the confirmation, esc shows the disk screen with the loop
// device chosen, and the typed name confirms.
func TestWizardLoopTmux(t *testing.T) {
	requireRoot(t)
	root, img, data := loopImageRoot(t, 3<<20+512)
	dev := newLoop(t, 8<<20, 512)
	name := filepath.Base(dev)
	p := startPane(t, 80, 24, fmt.Sprintf("BTY_IMAGE_ROOT=%s BTY_DEFAULT_CATALOG=none %s --image %s --disk %s",
		shellQuote(root), shellQuote(btyBin), shellQuote(img), dev))
	p.waitFor("Flash this image to this disk?", "Type "+name+" to confirm")
	s := p.screen()
	if !strings.Contains(s, "Backing") || !strings.Contains(strings.Join(strings.Fields(s), ""), "/backing") {
		t.Errorf("the confirmation does not name %s's backing file:\n%s", dev, s)
	}
	p.keys("Escape")
	s = p.waitFor("Choose the target disk", dev)
	if !strings.Contains(s, "› "+dev) {
		t.Errorf("the disk screen's cursor is not on %s:\n%s", dev, s)
	}
	if !strings.Contains(s, "backing file ") || !strings.Contains(s, "/backing") {
		t.Errorf("the disk screen does not name %s's backing file:\n%s", dev, s)
	}
	p.keys("Enter")
	p.waitFor("Type " + name + " to confirm")
	p.typeText("sdz")
	p.keys("Enter")
	p.waitFor("is not " + name)
	p.typeText(name)
	p.keys("Enter")
	p.waitFor("random.img is on " + dev)
	if got := readDev(t, dev, len(data)); !bytes.Equal(got, data) {
		t.Errorf("%s after the wizard's flash: %s", dev, firstDiff(got, data))
	}
	p.keys("q")
	p.waitFor("exit=0")
}

// TestWizardMountedLoopTmux: a loop device with a mounted file system is shown
// refused, with the mount, and cannot be chosen.
func TestWizardMountedLoopTmux(t *testing.T) {
	requireRoot(t)
	requireTool(t, "mkfs.ext4", "mount", "umount")
	root, img, _ := loopImageRoot(t, 1<<20)
	dev := newLoop(t, 16<<20, 512)
	mnt := t.TempDir()
	sh(t, fmt.Sprintf("mkfs.ext4 -q -F %s && mount %s %s", dev, dev, mnt))
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	p := startPane(t, 120, 30, fmt.Sprintf("BTY_IMAGE_ROOT=%s BTY_DEFAULT_CATALOG=none %s --image %s --disk %s",
		shellQuote(root), shellQuote(btyBin), shellQuote(img), dev))
	s := p.waitFor("Choose the target disk", "--disk "+dev+" is refused", "REFUSED: "+filepath.Base(dev)+" is mounted at "+mnt)
	if strings.Contains(s, "enter choose") {
		t.Errorf("the refused disk can be chosen:\n%s", s)
	}
	p.keys("Enter")
	time.Sleep(300 * time.Millisecond)
	if s := p.screen(); !strings.Contains(s, "Choose the target disk") {
		t.Errorf("enter on a refused disk left the disk screen:\n%s", s)
	}
	p.keys("q")
	p.waitFor("exit=0")
}

// doneOnFile runs the wizard in a pane of w x h with env before it (and
// --no-reboot: a test never reboots the machine, whatever the wizard does),
// flashes a small raw image into a regular file and returns the pane on the
// done screen.
func doneOnFile(t *testing.T, env string) *pane {
	t.Helper()
	root, _, data := loopImageRoot(t, 1<<20)
	target := filepath.Join(t.TempDir(), "out.img")
	p := startPane(t, 80, 24, fmt.Sprintf("env -u BTY_LIVE %s BTY_IMAGE_ROOT=%s BTY_DEFAULT_CATALOG=none TERM=xterm-256color %s --no-reboot --image random.img --disk %s",
		env, shellQuote(root), shellQuote(btyBin), shellQuote(target)))
	p.waitFor("Flash it? [y/N]")
	p.keys("y")
	if s := p.waitFor("Done: random.img is on"); !strings.Contains(strings.ReplaceAll(flat(s), "/ ", "/"), target) {
		t.Errorf("the done screen does not name %s:\n%s", target, s)
	}
	if got, err := os.ReadFile(target); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("%s after the flash: %v", target, err)
	}
	return p
}

// TestWizardRebootTmux: outside the live environment the done screen offers
// no reboot and b does nothing; inside it (BTY_LIVE=1, as the live init sets
// it) b asks first, the default is no, and y reboots (here --no-reboot says
// it would).
func TestWizardRebootTmux(t *testing.T) {
	t.Run("workstation", func(t *testing.T) {
		p := doneOnFile(t, "")
		s := p.screen()
		if strings.Contains(s, "reboot") {
			t.Errorf("the done screen offers a reboot outside the live environment:\n%s", s)
		}
		p.keys("b")
		time.Sleep(300 * time.Millisecond)
		if s := p.screen(); !strings.Contains(s, "Done: random.img") || strings.Contains(s, "reboot") {
			t.Fatalf("b outside the live environment:\n%s", s)
		}
		p.keys("q")
		if s := p.waitFor("exit="); !strings.Contains(s, "exit=0") || strings.Contains(s, "reboot") {
			t.Errorf("after q:\n%s", s)
		}
	})
	t.Run("live environment", func(t *testing.T) {
		p := doneOnFile(t, "BTY_LIVE=1")
		p.waitFor("b reboot")
		p.keys("b")
		s := p.waitFor("Reboot this machine now? [y/N]")
		p.shot("done-reboot", s)
		p.keys("Enter") // the default is no
		time.Sleep(300 * time.Millisecond)
		if s := p.screen(); strings.Contains(s, "Reboot this machine now?") || strings.Contains(s, "exit=") {
			t.Fatalf("enter did not answer no:\n%s", s)
		}
		p.keys("b")
		p.waitFor("Reboot this machine now? [y/N]")
		p.keys("y")
		p.waitFor("bty: would sync and reboot now (--no-reboot)", "exit=0")
	})
}

// TestWizardConfirmSizeTmux: in a window too small for the whole
// confirmation, y does nothing and the screen says how large it must be;
// enlarged, the question is back and y flashes. At 60 columns a long path
// wraps and the warning is whole.
func TestWizardConfirmSizeTmux(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a-folder-with-a-long-name-for-the-demo")
	scratch := filepath.Join(dir, "scratch.img")
	p := startPane(t, 40, 12, fmt.Sprintf("TERM=xterm-256color %s demo --dir %s", shellQuote(btyBin), shellQuote(dir)))
	p.waitFor("Choose an image", "6 images")
	p.keys("Enter")
	p.waitFor("Choose the target")
	p.keys("Enter")
	s := p.waitFor("Window too small", "This window is 40x12")
	p.keys("y")
	time.Sleep(500 * time.Millisecond)
	if _, err := os.Stat(scratch); err == nil {
		t.Fatalf("y in a window too small for the confirmation flashed %s:\n%s", scratch, s)
	}
	p.resize(60, 24)
	s = p.waitFor("Flash it? [y/N]")
	// The path wraps after a / or a - (which one depends on the length of
	// the test's temporary directory): read it without the breaks.
	if f := flat(s); !strings.Contains(f, "will be destroyed.") || !strings.Contains(strings.ReplaceAll(f, " ", ""), scratch) {
		t.Errorf("at 60x24 the target or the warning is cut:\n%s", s)
	}
	for i, l := range strings.Split(s, "\n") {
		if len([]rune(strings.TrimRight(l, " "))) > 60 {
			t.Errorf("line %d is wider than 60: %q", i+1, l)
		}
	}
	p.keys("y")
	p.waitFor("Done: demo-disk.img is on")
	if got, err := os.ReadFile(scratch); err != nil || !bytes.Equal(got, demo.Disk()) {
		t.Errorf("%s after the flash: %v", scratch, err)
	}
	p.keys("q")
	p.waitFor("exit=0")
}

// TestDemoTmuxCancelTwice: a flash, then another cancelled: the error screen
// says what the scratch file holds, enter asks again instead of flashing,
// q y during the flash quits with 130, and the demo does not call the
// scratch file flashed nor print "context canceled".
func TestDemoTmuxCancelTwice(t *testing.T) {
	tmp := t.TempDir()
	p := startPane(t, 80, 24, fmt.Sprintf("TMPDIR=%s TERM=xterm-256color %s demo --slow", shellQuote(tmp), shellQuote(btyBin)))
	p.waitFor("Choose an image", "6 images")
	p.keys("Enter") // demo-disk.img
	p.waitFor("Choose the target disk")
	p.keys("Enter")
	p.waitFor("Flash it? [y/N]")
	p.keys("y")
	p.waitFor("Done: demo-disk.img is on")
	p.keys("a")
	p.waitFor("Choose the target disk")
	p.keys("Enter")
	p.waitFor("Flash it? [y/N]")
	p.keys("y")
	p.waitFor("Flashing demo-disk.img", "MiB of 8.0 MiB")
	p.keys("C-c")
	p.waitFor("Cancel the flash?")
	p.keys("y")
	s := p.waitFor("The flash was cancelled")
	if !strings.Contains(flat(s), "scratch.img was left without a partition table") {
		t.Errorf("the error screen does not say what the scratch file holds:\n%s", s)
	}
	p.keys("Enter")
	s = p.waitFor("Flash this image to this disk?")
	if strings.Contains(s, "Flashing") {
		t.Fatalf("enter on the error screen flashed again:\n%s", s)
	}
	p.keys("y")
	p.waitFor("Flashing demo-disk.img")
	p.keys("q")
	p.waitFor("Cancel the flash and quit?")
	p.keys("y")
	s = p.waitFor("exit=130")
	if strings.Contains(s, "context canceled") || strings.Contains(s, "flashed scratch file") {
		t.Errorf("after a cancelled flash:\n%s", s)
	}
	for _, want := range []string{"bty demo: the last flash did not finish; the scratch file was removed", "bty: cancelled at your request"} {
		if !strings.Contains(flat(s), want) {
			t.Errorf("the demo's last words lack %q:\n%s", want, s)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "bty-demo-*")); len(left) != 0 {
		t.Errorf("the demo left %q", left)
	}
}

// TestDemoTmuxNarrow: at 60 columns q quit stays on the help line, ? lists
// every key, and a bzip2 flash (decoded size unknown until its end) shows no
// percentage but the source's, labelled as such.
func TestDemoTmuxNarrow(t *testing.T) {
	dir := t.TempDir()
	p := startPane(t, 60, 24, fmt.Sprintf("TERM=xterm-256color %s demo --slow --dir %s", shellQuote(btyBin), shellQuote(dir)))
	s := p.waitFor("Choose an image", "6 images")
	if help := lastLine(s); !strings.Contains(help, "q quit") {
		t.Errorf("at 60 columns the help line lacks q quit: %q", help)
	}
	p.keys("?")
	s = p.waitFor("Keys on this screen")
	for _, want := range []string{"filter", "refresh", "back", "quit"} {
		if !strings.Contains(s, want) {
			t.Errorf("? does not list %q:\n%s", want, s)
		}
	}
	p.keys("Escape")
	p.waitFor("Choose an image")
	p.keys("Down") // demo-disk.img.bz2
	p.keys("Enter")
	p.waitFor("Choose the target disk")
	p.keys("Enter")
	p.waitFor("Flash it? [y/N]")
	p.keys("y")
	s = p.waitFor("Flashing demo-disk.img.bz2", "of the compressed file read")
	p.shot("progress-bzip2", s)
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "%") && !strings.Contains(l, "of the compressed file read") {
			t.Errorf("a percentage not labelled as the source's: %q\n%s", l, s)
		}
	}
	if strings.Contains(s, "MB") || strings.Contains(s, "KB") {
		t.Errorf("units other than IEC:\n%s", s)
	}
	p.waitFor("Done: demo-disk.img.bz2 is on")
	p.keys("q")
	p.waitFor("exit=0")
}

// flat is a screen's words joined by single spaces: text wrapped over lines
// reads as one.
func flat(s string) string { return strings.Join(strings.Fields(s), " ") }

// lastLine is the last line of a screen that is not blank.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n "), "\n")
	return lines[len(lines)-1]
}

// TestWizardDiskCursorTmux: on the machine's disks and a loop device the
// test made (each needs its name typed), the disk screen's cursor does not
// start on a disk that needs its name typed.
func TestWizardDiskCursorTmux(t *testing.T) {
	requireRoot(t)
	root, img, _ := loopImageRoot(t, 1<<20)
	dev := newLoop(t, 8<<20, 512)
	p := startPane(t, 120, 40, fmt.Sprintf("BTY_IMAGE_ROOT=%s BTY_DEFAULT_CATALOG=none %s --no-reboot --image %s",
		shellQuote(root), shellQuote(btyBin), shellQuote(img)))
	s := p.waitFor("Choose the target disk", dev)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "› ") && i+1 < len(lines) && strings.Contains(lines[i+1], "you will type") {
			t.Errorf("the cursor starts on a disk whose name must be typed:\n%s", s)
		}
	}
	p.keys("Enter") // on a refused disk, or none: nothing happens
	time.Sleep(300 * time.Millisecond)
	if s := p.screen(); !strings.Contains(s, "Choose the target disk") {
		t.Errorf("enter on the first disk left the disk screen:\n%s", s)
	}
	p.keys("q")
	p.waitFor("exit=0")
}

// TestWizardSlowCatalogTmux: a catalog whose server does not answer is named
// while it loads, the image root's rows are there meanwhile, and esc stops
// waiting for it.
func TestWizardSlowCatalogTmux(t *testing.T) {
	root, _, _ := loopImageRoot(t, 1<<20)
	stalled := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // answer only when the client gives up (or the test ends)
		case <-r.Context().Done():
		case <-stalled:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stalled) })
	url := srv.URL + "/catalog.toml"
	p := startPane(t, 100, 24, fmt.Sprintf("BTY_IMAGE_ROOT=%s %s --no-reboot --catalog %s", shellQuote(root), shellQuote(btyBin), url))
	s := p.waitFor("random.img", "Loading the catalog "+url)
	p.shot("images-loading", s)
	p.keys("Escape")
	s = p.waitFor("stopped waiting", "1 image")
	if strings.Contains(s, "Loading") || strings.Contains(s, "context canceled") {
		t.Errorf("after esc:\n%s", s)
	}
	p.keys("Enter")
	p.waitFor("Choose the target disk for random.img")
	p.keys("q")
	p.waitFor("exit=0")
}

// TestVMWizardLiveReboot: in the live environment of the boot media (its
// init exports BTY_LIVE=1) the wizard's done screen offers a reboot. The
// wizard opens at the confirmation on the serial console; the test types the
// target's name, and stops the VM on the done screen.
func TestVMWizardLiveReboot(t *testing.T) {
	k := requireVM(t)
	target, _, _ := vmDisks(t)
	args := []string{"-kernel", filepath.Join(k.netboot, "vmlinuz"), "-initrd", filepath.Join(k.netboot, "initrd.img"),
		"-append", "console=ttyS0 panic=-1 quiet bty.image=" + vmImage + " bty.disk=serial:" + vmTarget}
	args = append(args, target.args(1)...)
	args = append(args, "-drive", "file="+k.usb+",format=raw,if=none,id=d3,readonly=on", "-device", "virtio-blk-pci,drive=d3")
	runVM(t, vmRun{prompt: "Type vda to confirm", answer: "vda\r", until: func(console string) bool {
		i := strings.LastIndex(console, "Done:")
		return i >= 0 && strings.Contains(console[i:], "b reboot")
	}}, args...)
	checkTarget(t, k, target)
}
