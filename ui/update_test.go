package ui

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/google/go-cmp/cmp"
)

// harness drives a Model the way a program does, without a terminal: each
// message goes through Update, and the commands it returns run in goroutines
// whose messages are fed back in until nothing more arrives.
type harness struct {
	t    *testing.T
	m    Model
	msgs chan tea.Msg
	quit bool
}

func newHarness(t *testing.T, opt Options) *harness {
	t.Helper()
	h := &harness{t: t, m: New(t.Context(), opt), msgs: make(chan tea.Msg, 64)}
	h.exec(h.m.Init())
	h.settle()
	return h
}

func (h *harness) exec(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	go func() {
		if msg := cmd(); msg != nil {
			h.msgs <- msg
		}
	}()
}

func (h *harness) process(msg tea.Msg) {
	switch msg := msg.(type) {
	case tea.BatchMsg:
		for _, c := range msg {
			h.exec(c)
		}
	case tea.QuitMsg:
		h.quit = true
	default:
		m, cmd := h.m.Update(msg)
		h.m = m.(Model)
		h.exec(cmd)
	}
}

// settle handles messages until none arrives for a while.
func (h *harness) settle() {
	for {
		select {
		case msg := <-h.msgs:
			h.process(msg)
		case <-time.After(40 * time.Millisecond):
			return
		}
	}
}

// send delivers each message in turn, letting the work it starts finish.
func (h *harness) send(msgs ...tea.Msg) *harness {
	h.t.Helper()
	for _, msg := range msgs {
		h.process(msg)
		h.settle()
	}
	return h
}

// until handles messages until cond holds, or fails the test.
func (h *harness) until(what string, cond func(Model) bool) {
	h.t.Helper()
	deadline := time.After(5 * time.Second)
	for !cond(h.m) {
		select {
		case msg := <-h.msgs:
			h.process(msg)
		case <-deadline:
			h.t.Fatalf("waiting for %s: still on %s\n%s", what, h.m.screenName(), ansi.Strip(h.m.render()))
		}
	}
}

func (h *harness) want(s screen) {
	h.t.Helper()
	if h.m.screen != s {
		h.t.Fatalf("screen = %s, want %s\n%s", h.m.screenName(), screenNames[s], ansi.Strip(h.m.render()))
	}
}

// helpLine is the help line as shown.
func (h *harness) helpLine() string {
	return ansi.Strip(h.m.help.ShortHelpView(h.m.helpBindings()))
}

var screenNames = map[screen]string{
	screenSource: "source", screenImages: "images", screenDisks: "disks", screenConfirm: "confirm",
	screenProgress: "progress", screenDone: "done", screenError: "error",
}

func (m Model) screenName() string { return screenNames[m.screen] }

func rowNames(m Model) []string {
	var names []string
	for _, i := range m.images.shown {
		names = append(names, m.images.rows[i].Name)
	}
	return names
}

// atDisks is a wizard on the disk screen with the debian image chosen.
func atDisks(t *testing.T, f *fakeBackend, opt Options) *harness {
	t.Helper()
	h := newHarness(t, opt)
	h.want(screenImages)
	h.send(keys("down", "enter")...)
	h.want(screenDisks)
	if h.m.plan.image.Name != "debian-12-generic-amd64.img.xz" {
		t.Fatalf("plan image = %q, want debian-12-generic-amd64.img.xz", h.m.plan.image.Name)
	}
	return h
}

// atConfirm is a wizard on the confirmation for /dev/sdb (removable).
func atConfirm(t *testing.T, f *fakeBackend, opt Options) *harness {
	t.Helper()
	h := atDisks(t, f, opt)
	h.send(keys("down", "enter")...)
	h.want(screenConfirm)
	if h.m.plan.target.Path != "/dev/sdb" {
		t.Fatalf("plan target = %q, want /dev/sdb", h.m.plan.target.Path)
	}
	return h
}

func TestStartScreen(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opt      func(*Options)
		want     screen
		catalogs []string
		rows     int
		banner   int
	}{
		{"root has images: source skipped", func(*Options) {}, screenImages, nil, 4, 0},
		{"empty root: source asked", func(o *Options) { o.ImageRoot = "/nonexistent" }, screenSource, nil, 0, 0},
		{"--catalog: source skipped", func(o *Options) { o.ImageRoot = "/nonexistent"; o.Catalogs = []string{goodCatalog} }, screenImages, []string{goodCatalog}, 2, 0},
		{"failed catalog: banner and local rows", func(o *Options) { o.Catalogs = []string{badCatalog} }, screenImages, []string{badCatalog}, 4, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := fakeOptions(newFakeBackend())
			tc.opt(&opt)
			h := newHarness(t, opt)
			h.want(tc.want)
			if diff := cmp.Diff(tc.catalogs, h.m.catalogs); diff != "" {
				t.Errorf("catalogs (-want +got):\n%s", diff)
			}
			if got := len(h.m.images.rows); got != tc.rows {
				t.Errorf("rows = %d, want %d", got, tc.rows)
			}
			if got := len(h.m.images.banner); got != tc.banner {
				t.Errorf("banner = %q, want %d lines", h.m.images.banner, tc.banner)
			}
		})
	}
}

func TestSourceScreen(t *testing.T) {
	empty := func() Options {
		o := fakeOptions(newFakeBackend())
		o.ImageRoot = "/nonexistent"
		return o
	}
	t.Run("local only", func(t *testing.T) {
		h := newHarness(t, empty())
		h.want(screenSource)
		h.send(press("enter"))
		h.want(screenImages)
		if len(h.m.catalogs) != 0 {
			t.Errorf("catalogs = %q, want none", h.m.catalogs)
		}
	})
	t.Run("default catalog", func(t *testing.T) {
		h := newHarness(t, empty())
		h.send(keys("down", "enter")...)
		h.want(screenImages)
		if diff := cmp.Diff([]string{goodCatalog}, h.m.catalogs); diff != "" {
			t.Errorf("catalogs (-want +got):\n%s", diff)
		}
		if got, want := rowNames(h.m), []string{"fedora-40-cloud.raw.xz", "talos-1.7-metal.raw.zst"}; !slices.Equal(got, want) {
			t.Errorf("rows = %q, want %q", got, want)
		}
	})
	t.Run("custom source keeps its case", func(t *testing.T) {
		h := newHarness(t, empty())
		h.send(keys("down", "down", "enter")...)
		h.want(screenSource)
		if !h.m.source.typing {
			t.Fatal("the custom source's input did not open")
		}
		if strings.Contains(h.helpLine(), "quit") {
			t.Errorf("help while typing = %q: q types, it does not quit", h.helpLine())
		}
		src := "oras://Registry.Example/Team/Catalog:V1"
		h.send(typed(src)...)
		h.send(press("enter"))
		h.want(screenImages)
		if diff := cmp.Diff([]string{src}, h.m.catalogs); diff != "" {
			t.Errorf("catalogs (-want +got):\n%s", diff)
		}
		if len(h.m.images.banner) != 1 {
			t.Errorf("banner = %q, want the failed catalog", h.m.images.banner)
		}
	})
	t.Run("empty custom source is refused", func(t *testing.T) {
		h := newHarness(t, empty())
		h.send(keys("up", "enter", "enter")...)
		h.want(screenSource)
		if h.m.source.problem == "" {
			t.Error("no problem shown for an empty source")
		}
		h.send(press("esc"))
		if h.m.source.typing {
			t.Error("esc did not close the input")
		}
	})
	t.Run("no default catalog", func(t *testing.T) {
		o := empty()
		o.DefaultCatalog = ""
		h := newHarness(t, o)
		if got := len(h.m.source.choices()); got != 2 {
			t.Errorf("choices = %d, want 2 (local, custom)", got)
		}
	})
	t.Run("back from images, and back again", func(t *testing.T) {
		h := newHarness(t, fakeOptions(newFakeBackend()))
		h.want(screenImages)
		h.send(press("esc"))
		h.want(screenSource)
		h.send(press("esc"))
		h.want(screenImages)
	})
	t.Run("first screen has no back", func(t *testing.T) {
		h := newHarness(t, empty())
		h.send(press("esc"))
		h.want(screenSource)
		if strings.Contains(h.helpLine(), "back") {
			t.Errorf("help = %q, want no back", h.helpLine())
		}
	})
}

func TestImagesScreen(t *testing.T) {
	t.Run("choose and back", func(t *testing.T) {
		f := newFakeBackend()
		h := atDisks(t, f, fakeOptions(f))
		h.send(press("esc"))
		h.want(screenImages)
	})
	t.Run("filter", func(t *testing.T) {
		h := newHarness(t, fakeOptions(newFakeBackend()))
		h.send(press("/"))
		h.send(typed("qu")...) // q types while filtering
		h.send(press("enter"))
		if got, want := rowNames(h.m), []string{}; len(got) != 0 {
			t.Errorf("rows for qu = %q, want %q", got, want)
		}
		h.send(keys("down", "up", "down", "enter")...) // nothing to move to or choose
		h.want(screenImages)
		h.send(press("esc"))
		if got := len(rowNames(h.m)); got != 4 {
			t.Errorf("rows after clearing = %d, want 4", got)
		}
		h.send(press("/"))
		h.send(typed("UBU")...)
		h.send(press("enter"))
		if got, want := rowNames(h.m), []string{"ubuntu-24.04-server-cloudimg.img.gz"}; !slices.Equal(got, want) {
			t.Errorf("rows for UBU = %q, want %q", got, want)
		}
		if !strings.Contains(h.helpLine(), "clear filter") {
			t.Errorf("help = %q, want clear filter", h.helpLine())
		}
		h.send(press("enter"))
		h.want(screenDisks)
		if h.m.plan.image.Name != "ubuntu-24.04-server-cloudimg.img.gz" {
			t.Errorf("chose %q", h.m.plan.image.Name)
		}
	})
	t.Run("refresh", func(t *testing.T) {
		f := newFakeBackend()
		h := newHarness(t, fakeOptions(f))
		h.send(press("r"))
		if f.loads != 2 {
			t.Errorf("loads = %d, want 2", f.loads)
		}
	})
	t.Run("open fails, retry, back", func(t *testing.T) {
		f := newFakeBackend()
		h := newHarness(t, fakeOptions(f))
		h.send(keys("down", "down", "enter")...) // rescue.img fails to open
		h.want(screenError)
		if got := h.m.failure.err.Error(); !strings.Contains(got, "permission denied") {
			t.Errorf("error = %q", got)
		}
		h.send(press("r"))
		h.want(screenError)
		if got := len(f.opened); got != 2 {
			t.Errorf("opened %d times, want 2", got)
		}
		h.send(press("esc"))
		h.want(screenImages)
	})
	t.Run("quit", func(t *testing.T) {
		h := newHarness(t, fakeOptions(newFakeBackend()))
		h.send(press("q"))
		if !h.quit {
			t.Error("q did not quit")
		}
		if h.m.outcome.Err != nil {
			t.Errorf("outcome error = %v, want nil", h.m.outcome.Err)
		}
	})
}

func TestDisksScreen(t *testing.T) {
	f := newFakeBackend()
	h := atDisks(t, f, fakeOptions(f))
	// The cursor starts on /dev/sda, refused: enter does nothing.
	if strings.Contains(h.helpLine(), "choose") {
		t.Errorf("help on a refused disk = %q, want no choose", h.helpLine())
	}
	h.send(press("enter"))
	h.want(screenDisks)
	h.send(press("a"))
	if got := len(h.m.disks.shown); got != 2 {
		t.Errorf("shown with refused hidden = %d, want 2", got)
	}
	if !strings.Contains(h.helpLine(), "show refused") {
		t.Errorf("help = %q, want show refused", h.helpLine())
	}
	h.send(press("a"))
	if got := len(h.m.disks.shown); got != 4 {
		t.Errorf("shown = %d, want 4", got)
	}
	gen := h.m.targetsGen
	h.send(press("r"))
	if h.m.targetsGen != gen+1 || h.m.disks.loading {
		t.Errorf("refresh: generation %d -> %d, loading %v", gen, h.m.targetsGen, h.m.disks.loading)
	}
	if sel, _ := h.m.disks.selected(); sel.Path != "/dev/sdb" {
		t.Errorf("cursor on %s after hiding and showing, want /dev/sdb", sel.Path)
	}
	h.send(keys("down", "enter")...) // nvme0n1 needs its name
	h.want(screenConfirm)
	if !h.m.plan.target.needsName() {
		t.Error("nvme0n1 does not need its name typed")
	}
	h.send(press("esc"))
	h.want(screenDisks)
}

func TestConfirmScreen(t *testing.T) {
	for _, tc := range []struct {
		name  string
		keys  []tea.Msg
		want  screen
		flash bool
	}{
		{"y flashes", keys("y"), screenDone, true},
		{"n goes back", keys("n"), screenDisks, false},
		{"esc goes back", keys("esc"), screenDisks, false},
		{"enter is no", keys("enter"), screenDisks, false},
		{"other keys do nothing", keys("x", "z"), screenConfirm, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeBackend()
			h := atConfirm(t, f, fakeOptions(f))
			h.send(tc.keys...)
			if tc.flash {
				h.until("done", func(m Model) bool { return m.screen == screenDone })
			}
			h.want(tc.want)
			if got := len(f.flashedTargets()) > 0; got != tc.flash {
				t.Errorf("flashed = %v, want %v", got, tc.flash)
			}
		})
	}
	t.Run("typed name", func(t *testing.T) {
		f := newFakeBackend()
		h := atDisks(t, f, fakeOptions(f))
		h.send(keys("down", "down", "enter")...)
		h.want(screenConfirm)
		h.send(typed("y")...)
		h.send(press("enter"))
		h.want(screenConfirm)
		if h.m.confirm.problem == "" {
			t.Error("a wrong name shows no problem")
		}
		h.send(typed("nvme0n1")...)
		h.send(press("enter"))
		h.until("done", func(m Model) bool { return m.screen == screenDone })
		if diff := cmp.Diff([]string{"/dev/nvme0n1"}, f.flashedTargets()); diff != "" {
			t.Errorf("flashed (-want +got):\n%s", diff)
		}
		if f.lastOpt.SHA256 != fakeDigest || f.lastOpt.Size != 312<<20 || f.lastOpt.FormatHint != "img.xz" {
			t.Errorf("flash options = %+v", f.lastOpt)
		}
	})
}

func TestProgressScreen(t *testing.T) {
	flashing := func(t *testing.T) (*fakeBackend, *harness) {
		f := newFakeBackend()
		f.hold = true
		h := atConfirm(t, f, fakeOptions(f))
		h.send(press("y"))
		h.want(screenProgress)
		h.until("progress", func(m Model) bool { return m.progress.p.Phase == "writing" })
		return f, h
	}
	t.Run("finishes", func(t *testing.T) {
		f, h := flashing(t)
		close(f.release)
		h.until("done", func(m Model) bool { return m.screen == screenDone })
	})
	t.Run("ctrl+c asks, n keeps flashing", func(t *testing.T) {
		_, h := flashing(t)
		h.send(press("ctrl+c"))
		if h.m.progress.asking != askCancel {
			t.Fatal("ctrl+c did not ask")
		}
		if !strings.Contains(ansi.Strip(h.m.render()), "no partition table") {
			t.Error("the question does not say what cancelling leaves")
		}
		h.send(press("n"))
		h.want(screenProgress)
		if h.m.progress.asking != askNone || h.quit {
			t.Error("n did not keep flashing")
		}
	})
	t.Run("ctrl+c y cancels, then retry and back", func(t *testing.T) {
		f, h := flashing(t)
		h.send(keys("ctrl+c", "y")...)
		h.until("error", func(m Model) bool { return m.screen == screenError })
		if !errors.Is(h.m.failure.err, context.Canceled) {
			t.Errorf("error = %v, want cancelled", h.m.failure.err)
		}
		h.send(press("r"))
		h.want(screenProgress)
		close(f.release)
		h.until("done", func(m Model) bool { return m.screen == screenDone })
	})
	t.Run("esc from a failed flash", func(t *testing.T) {
		_, h := flashing(t)
		h.send(keys("ctrl+c", "y")...)
		h.until("error", func(m Model) bool { return m.screen == screenError })
		h.send(press("esc"))
		h.want(screenDisks)
	})
	t.Run("q asks, y quits after the flash stops", func(t *testing.T) {
		_, h := flashing(t)
		h.send(press("q"))
		if h.m.progress.asking != askQuit || h.quit {
			t.Fatal("q did not ask")
		}
		h.send(press("y"))
		h.until("quit", func(Model) bool { return h.quit })
		if !errors.Is(h.m.outcome.Err, context.Canceled) {
			t.Errorf("outcome error = %v, want cancelled", h.m.outcome.Err)
		}
	})
	t.Run("a signal cancels and quits", func(t *testing.T) {
		_, h := flashing(t)
		h.send(interruptMsg{})
		h.until("quit", func(Model) bool { return h.quit })
		if !errors.Is(h.m.outcome.Err, context.Canceled) {
			t.Errorf("outcome error = %v, want cancelled", h.m.outcome.Err)
		}
	})
	t.Run("failure", func(t *testing.T) {
		f := newFakeBackend()
		f.flashErr = errors.New("integrity check failed: sha256 mismatch: got 0123, want 3f2a")
		h := atConfirm(t, f, fakeOptions(f))
		h.send(press("y"))
		h.until("error", func(m Model) bool { return m.screen == screenError })
		if !strings.Contains(ansi.Strip(h.m.render()), "sha256 mismatch") {
			t.Error("the error screen does not show the message")
		}
		h.send(press("q"))
		if !h.quit || h.m.outcome.Err == nil {
			t.Errorf("quit from the error: quit %v, outcome error %v", h.quit, h.m.outcome.Err)
		}
	})
}

func TestDoneScreen(t *testing.T) {
	done := func(t *testing.T, opt func(*Options)) *harness {
		f := newFakeBackend()
		o := fakeOptions(f)
		opt(&o)
		h := atConfirm(t, f, o)
		h.send(press("y"))
		h.until("done", func(m Model) bool { return m.screen == screenDone })
		return h
	}
	t.Run("another disk", func(t *testing.T) {
		h := done(t, func(*Options) {})
		h.send(press("a"))
		h.want(screenDisks)
		if h.m.plan.image.Name != "debian-12-generic-amd64.img.xz" {
			t.Errorf("image = %q, want the same", h.m.plan.image.Name)
		}
	})
	t.Run("back to the images", func(t *testing.T) {
		h := done(t, func(*Options) {})
		h.send(press("esc"))
		h.want(screenImages)
	})
	t.Run("reboot", func(t *testing.T) {
		h := done(t, func(*Options) {})
		h.send(press("b"))
		if !h.quit || !h.m.outcome.Reboot {
			t.Errorf("b: quit %v, reboot %v", h.quit, h.m.outcome.Reboot)
		}
		if diff := cmp.Diff([]string{"/dev/sdb"}, h.m.outcome.Flashed); diff != "" {
			t.Errorf("flashed (-want +got):\n%s", diff)
		}
	})
	t.Run("no reboot in the demo", func(t *testing.T) {
		h := done(t, func(o *Options) { o.CanReboot = false })
		if strings.Contains(h.helpLine(), "reboot") {
			t.Errorf("help = %q, want no reboot", h.helpLine())
		}
		h.send(press("b"))
		if h.quit || h.m.outcome.Reboot {
			t.Error("b rebooted without CanReboot")
		}
	})
	t.Run("quit", func(t *testing.T) {
		h := done(t, func(*Options) {})
		h.send(press("q"))
		if !h.quit || h.m.outcome.Err != nil {
			t.Errorf("q: quit %v, error %v", h.quit, h.m.outcome.Err)
		}
	})
}

func TestPrefill(t *testing.T) {
	for _, tc := range []struct {
		name        string
		image, disk string
		want        screen
		problem     string
	}{
		{"image and disk: confirmation", "debian-12-generic-amd64.img.xz", "/dev/sdb", screenConfirm, ""},
		{"by serial", "debian-12-generic-amd64.img.xz", "serial:S64ANS0T123456", screenConfirm, ""},
		{"refused disk", "debian-12-generic-amd64.img.xz", "/dev/sdc", screenDisks, "is refused: partition sdc1 is mounted at /mnt/backup"},
		{"unknown disk", "debian-12-generic-amd64.img.xz", "/dev/sdz", screenDisks, "no such disk"},
		{"image only", "debian-12-generic-amd64.img.xz", "", screenDisks, ""},
		{"unknown image", "nope.img", "/dev/sdb", screenError, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := fakeOptions(newFakeBackend())
			o.Image, o.Disk = tc.image, tc.disk
			h := newHarness(t, o)
			h.want(tc.want)
			if !strings.Contains(h.m.disks.problem, tc.problem) {
				t.Errorf("problem = %q, want %q", h.m.disks.problem, tc.problem)
			}
			if tc.want == screenDisks && tc.problem != "" {
				if sel, _ := h.m.disks.selected(); tc.disk == "/dev/sdc" && sel.Path != "/dev/sdc" {
					t.Errorf("cursor on %s, want the refused disk", sel.Path)
				}
			}
		})
	}
	t.Run("--sha256 overrides", func(t *testing.T) {
		o := fakeOptions(newFakeBackend())
		o.Image, o.Disk, o.SHA256 = "rescue.img", "/dev/sdb", strings.Repeat("ab", 32)
		h := newHarness(t, o)
		h.want(screenConfirm)
		if h.m.plan.sha256 != o.SHA256 {
			t.Errorf("sha256 = %q, want %q", h.m.plan.sha256, o.SHA256)
		}
		h.send(press("esc"))
		h.want(screenDisks)
		h.send(press("esc"))
		h.want(screenImages)
		h.until("images", func(m Model) bool { return !m.images.loading })
	})
	t.Run("unknown image: retry and back", func(t *testing.T) {
		o := fakeOptions(newFakeBackend())
		o.Image = "nope.img"
		h := newHarness(t, o)
		h.want(screenError)
		h.send(press("r"))
		h.want(screenError)
		h.send(press("esc"))
		h.want(screenImages)
		h.until("images", func(m Model) bool { return !m.images.loading })
		if len(h.m.images.rows) != 4 {
			t.Errorf("rows = %d, want 4", len(h.m.images.rows))
		}
	})
}

func TestResize(t *testing.T) {
	h := newHarness(t, fakeOptions(newFakeBackend()))
	for _, size := range [][2]int{{80, 24}, {120, 40}, {60, 15}} {
		h.send(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		lines := strings.Split(ansi.Strip(h.m.render()), "\n")
		if len(lines) != size[1] {
			t.Errorf("%dx%d: %d lines", size[0], size[1], len(lines))
		}
		for i, l := range lines {
			if w := ansi.StringWidth(l); w > size[0] {
				t.Errorf("%dx%d: line %d is %d wide: %q", size[0], size[1], i, w, l)
			}
		}
	}
}

func TestPlainTerminal(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		tty  string
		want bool
	}{
		{map[string]string{"TERM": "xterm-256color"}, "/dev/pts/3", false},
		{map[string]string{"TERM": "xterm-256color", "NO_COLOR": "1"}, "/dev/pts/3", true},
		{map[string]string{"TERM": "linux"}, "/dev/tty1", true},
		{map[string]string{"TERM": "vt220"}, "/dev/ttyS0", true},
		{map[string]string{"TERM": "xterm"}, "/dev/ttyS0", true},
		{map[string]string{}, "/dev/pts/0", true},
	} {
		if got := PlainTerminal(func(k string) string { return tc.env[k] }, tc.tty); got != tc.want {
			t.Errorf("PlainTerminal(%v, %q) = %v, want %v", tc.env, tc.tty, got, tc.want)
		}
	}
}
