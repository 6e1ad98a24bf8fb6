package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
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
	p.keys("Escape")
	s := p.waitFor("Choose the target disk", dev)
	if !strings.Contains(s, "› "+dev) {
		t.Errorf("the disk screen's cursor is not on %s:\n%s", dev, s)
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
