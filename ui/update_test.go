package ui

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/google/go-cmp/cmp"

	"bty/catalog"
	"bty/disks"
	"bty/flash"
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

// want fails unless the wizard is on screen s, or reaches it while the work
// already started finishes (settle's quiet spell can end early on a loaded
// machine).
func (h *harness) want(s screen) {
	h.t.Helper()
	deadline := time.After(5 * time.Second)
	for h.m.screen != s {
		select {
		case msg := <-h.msgs:
			h.process(msg)
		case <-deadline:
			h.t.Fatalf("screen = %s, want %s\n%s", h.m.screenName(), screenNames[s], ansi.Strip(h.m.render()))
		}
	}
}

// helpLine is the help line as shown.
func (h *harness) helpLine() string {
	return ansi.Strip(h.m.helpLine())
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
	h.send(press("enter"))
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
	// The cursor starts on /dev/sdb, the first disk a y confirms.
	if sel, _ := h.m.disks.selected(); sel.Path != "/dev/sdb" {
		t.Errorf("cursor starts on %s, want /dev/sdb", sel.Path)
	}
	h.send(press("up")) // /dev/sda, refused: enter does nothing
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
	if sel, _ := h.m.disks.selected(); sel.Path != "/dev/sdb" {
		t.Errorf("cursor on %s after hiding the refused disk it was on, want /dev/sdb", sel.Path)
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
		h.send(keys("down", "enter")...)
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
		h.want(screenConfirm) // a new confirmation
		h.send(press("y"))
		h.want(screenProgress)
		close(f.release)
		h.until("done", func(m Model) bool { return m.screen == screenDone })
	})
	t.Run("enter on the error screen does not flash again", func(t *testing.T) {
		f := newFakeBackend()
		f.flashErr = errors.New("target: write /dev/sdb: input/output error")
		h := atConfirm(t, f, fakeOptions(f))
		h.send(press("y"))
		h.until("error", func(m Model) bool { return m.screen == screenError })
		calls := f.flashCalls()
		h.send(press("enter"))
		h.want(screenConfirm)
		h.send(press("enter")) // the confirmation's default is no
		h.want(screenDisks)
		if got := f.flashCalls(); got != calls {
			t.Errorf("enter, enter after a failed flash started %d more flashes, want none", got-calls)
		}
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
	t.Run("reboot asks, the default is no", func(t *testing.T) {
		for _, no := range []string{"n", "esc", "enter", "x"} {
			h := done(t, func(*Options) {})
			if !strings.Contains(h.helpLine(), "b reboot") {
				t.Errorf("help = %q, want b reboot", h.helpLine())
			}
			h.send(press("b"))
			if h.quit || h.m.outcome.Reboot {
				t.Fatal("b rebooted without asking")
			}
			if s := ansi.Strip(h.m.render()); !strings.Contains(s, "Reboot this machine now? [y/N]") {
				t.Errorf("b does not ask:\n%s", s)
			}
			h.send(press(no))
			if h.quit || h.m.outcome.Reboot {
				t.Errorf("b then %s rebooted", no)
			}
			h.want(screenDone)
		}
		h := done(t, func(*Options) {})
		h.send(keys("b", "y")...)
		if !h.quit || !h.m.outcome.Reboot {
			t.Errorf("b y: quit %v, reboot %v", h.quit, h.m.outcome.Reboot)
		}
		if diff := cmp.Diff([]string{"/dev/sdb"}, h.m.outcome.Flashed); diff != "" {
			t.Errorf("flashed (-want +got):\n%s", diff)
		}
	})
	t.Run("no reboot outside the live environment", func(t *testing.T) {
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

// screenText is the whole screen as shown, without colours.
func (h *harness) screenText() string { return ansi.Strip(h.m.render()) }

func (h *harness) resize(w, hgt int) {
	h.send(tea.WindowSizeMsg{Width: w, Height: hgt})
}

// longTarget is a file target whose path does not fit on one line at 60
// columns, like the demo's scratch file in a temporary folder.
const longTarget = "/tmp/bty-demo-2877037615/work/another-level/scratch.img"

func TestConfirmWindowSize(t *testing.T) {
	targets := func(disks.Check) ([]Target, error) {
		return append(fakeTargets(), FileTarget(longTarget, "regular file")), nil
	}
	for _, tc := range []struct {
		name   string
		target string
		answer []tea.Msg // what confirms
	}{
		{"y", longTarget, keys("y")},
		{"typed", "/dev/nvme0n1", append(typed("nvme0n1"), press("enter"))},
	} {
		for _, size := range [][2]int{{40, 12}, {60, 24}, {80, 24}} {
			t.Run(fmt.Sprintf("%s/%dx%d", tc.name, size[0], size[1]), func(t *testing.T) {
				f := newFakeBackend()
				o := fakeOptions(f)
				o.Image, o.Disk, o.Targets = "debian-12-generic-amd64.img.xz", tc.target, targets
				h := newHarness(t, o)
				h.want(screenConfirm)
				h.resize(size[0], size[1])
				s := h.screenText()
				small := size[1] < 20
				if small {
					want := "Window too small"
					if !strings.Contains(s, want) || !strings.Contains(s, fmt.Sprintf("This window is %dx%d", size[0], size[1])) {
						t.Errorf("at %dx%d the screen does not say the window is too small:\n%s", size[0], size[1], s)
					}
					if strings.Contains(h.helpLine(), "flash") || strings.Contains(h.helpLine(), "confirm") {
						t.Errorf("help = %q: no answer is taken in a window too small", h.helpLine())
					}
				} else {
					// The whole question is on screen, the warning uncut.
					flat := strings.Join(strings.Fields(s), " ")
					for _, want := range []string{"Target", "will be destroyed.", "All data on"} {
						if !strings.Contains(flat, want) {
							t.Errorf("at %dx%d the screen lacks %q:\n%s", size[0], size[1], want, s)
						}
					}
					if !strings.Contains(strings.ReplaceAll(flat, "/ ", "/"), tc.target) {
						t.Errorf("at %dx%d the target %s is not on screen in full:\n%s", size[0], size[1], tc.target, s)
					}
					prompt := "Flash it? [y/N]"
					if tc.name == "typed" {
						prompt = "Type nvme0n1 to confirm:"
					}
					if !strings.Contains(s, prompt) {
						t.Errorf("at %dx%d the prompt %q is not on screen:\n%s", size[0], size[1], prompt, s)
					}
				}
				h.send(tc.answer...)
				if small {
					h.want(screenConfirm)
					if n := f.flashCalls(); n != 0 {
						t.Fatalf("at %dx%d the answer flashed (%d flashes)", size[0], size[1], n)
					}
					// Large enough again: the question is back, and taken.
					h.resize(80, 24)
					h.send(tc.answer...)
				}
				h.until("done", func(m Model) bool { return m.screen == screenDone })
				if n := f.flashCalls(); n != 1 {
					t.Errorf("flashes = %d, want 1", n)
				}
			})
		}
	}
}

func TestDiskCursorStart(t *testing.T) {
	nvme, sdb, sda := fakeTargets()[2], fakeTargets()[1], fakeTargets()[0]
	for _, tc := range []struct {
		name    string
		targets []Target
		want    string // "" for no row
	}{
		{"typed disk first, removable after", []Target{nvme, sdb}, "/dev/sdb"},
		{"typed disk and a refused one", []Target{nvme, sda}, "/dev/sda"},
		{"only a typed disk", []Target{nvme}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := fakeOptions(newFakeBackend())
			o.Targets = func(disks.Check) ([]Target, error) { return tc.targets, nil }
			h := newHarness(t, o)
			h.send(keys("down", "enter")...)
			h.want(screenDisks)
			sel, _ := h.m.disks.selected()
			if sel.Path != tc.want {
				t.Fatalf("the cursor starts on %q, want %q", sel.Path, tc.want)
			}
			h.send(press("enter"))
			if tc.want != "/dev/sdb" {
				h.want(screenDisks) // nothing chosen
			}
			if tc.want == "" {
				if !strings.Contains(h.screenText(), "move to a disk to choose it") {
					t.Errorf("no hint to move:\n%s", h.screenText())
				}
				h.send(press("down"))
				if sel, _ := h.m.disks.selected(); sel.Path != nvme.Path {
					t.Errorf("down: cursor on %q, want %s", sel.Path, nvme.Path)
				}
			}
		})
	}
}

func TestLoopBackingFile(t *testing.T) {
	const fix = "../disks/testdata/laptop"
	roots := disks.Roots{Sys: fix + "/sys", Proc: fix + "/proc", Dev: fix + "/dev", Run: fix + "/run"}
	o := fakeOptions(newFakeBackend())
	o.Targets = DiskTargets(roots)
	o.Image, o.Disk = "rescue.img", "/dev/loop0"
	h := newHarness(t, o)
	h.want(screenConfirm)
	if s := h.screenText(); !strings.Contains(s, "Backing  /home/user/vm.img") {
		t.Errorf("the confirmation does not name loop0's backing file:\n%s", s)
	}
	h.send(press("esc"))
	h.want(screenDisks)
	if s := h.screenText(); !strings.Contains(s, "backing file /home/user/vm.img") {
		t.Errorf("the disk screen does not name loop0's backing file:\n%s", s)
	}
}

func TestSlowCatalog(t *testing.T) {
	f := newFakeBackend()
	o := fakeOptions(f)
	o.Catalogs = []string{goodCatalog, slowCatalog}
	h := newHarness(t, o)
	h.want(screenImages)
	// The image root's rows and the loaded catalog's, while the slow one loads.
	if got := len(h.m.images.rows); got != 6 {
		t.Errorf("rows while the slow catalog loads = %d, want 6", got)
	}
	s := h.screenText()
	if !strings.Contains(s, "Loading the catalog "+slowCatalog) {
		t.Errorf("the slow catalog is not named:\n%s", s)
	}
	if !strings.Contains(h.helpLine(), "esc stop loading") || !strings.Contains(h.helpLine(), "enter choose") {
		t.Errorf("help = %q, want enter choose and esc stop loading", h.helpLine())
	}
	h.send(press("esc"))
	h.want(screenImages)
	h.until("the load cancelled", func(Model) bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.stopped == 1
	})
	h.settle()
	s = h.screenText()
	if len(h.m.images.pending) != 0 || strings.Contains(s, "Loading") {
		t.Errorf("still loading after esc:\n%s", s)
	}
	if !strings.Contains(s, "stopped waiting") || strings.Contains(s, "context canceled") {
		t.Errorf("the banner does not say the load was stopped, in plain words:\n%s", s)
	}
	if got := len(h.m.images.rows); got != 6 {
		t.Errorf("rows after esc = %d, want 6", got)
	}
}

func TestFullHelp(t *testing.T) {
	h := newHarness(t, fakeOptions(newFakeBackend()))
	h.resize(60, 24)
	short := h.helpLine()
	if strings.Contains(short, "esc back") {
		t.Fatalf("help at 60 columns = %q: expected it to leave keys out", short)
	}
	h.send(press("?"))
	s := h.screenText()
	for _, want := range []string{"Keys on this screen", "enter", "choose", "/", "filter", "esc", "back", "r", "refresh", "q", "quit", "ctrl+c"} {
		if !strings.Contains(s, want) {
			t.Errorf("the list of keys lacks %q:\n%s", want, s)
		}
	}
	h.send(press("esc"))
	if h.m.showHelp || h.m.screen != screenImages {
		t.Errorf("esc did not close the list of keys (screen %s)", h.m.screenName())
	}
	h.send(press("/"))
	h.send(typed("?")...) // typed while filtering
	if h.m.showHelp || h.m.images.filter.Value() != "?" {
		t.Errorf("? while filtering: help %v, filter %q", h.m.showHelp, h.m.images.filter.Value())
	}
}

// TestHelpLineNarrow: at 60 columns q quit stays on the help line of every
// screen where it works, and ? where keys are left out.
func TestHelpLineNarrow(t *testing.T) {
	f := newFakeBackend()
	f.hold = true
	h := newHarness(t, fakeOptions(f))
	h.resize(60, 24)
	check := func(where string) {
		t.Helper()
		l := h.helpLine()
		if w := ansi.StringWidth(l); w > 60 {
			t.Errorf("%s: help line is %d wide: %q", where, w, l)
		}
		if h.m.keys.Quit.Enabled() && !strings.Contains(l, "q ") {
			t.Errorf("%s: help = %q, want q", where, l)
		}
		for _, b := range h.m.helpBindings() {
			if b.Enabled() && !strings.Contains(l, b.Help().Key+" "+b.Help().Desc) && !strings.Contains(l, "? all keys") {
				t.Errorf("%s: help = %q leaves %q out without ? all keys", where, l, b.Help().Key)
			}
		}
	}
	check("images")
	h.send(keys("down", "enter")...)
	h.want(screenDisks)
	check("disks")
	h.send(press("enter"))
	h.want(screenConfirm)
	check("confirm")
	h.send(press("y"))
	h.until("progress", func(m Model) bool { return m.screen == screenProgress })
	check("progress")
	close(f.release)
	h.until("done", func(m Model) bool { return m.screen == screenDone })
	check("done")
}

func TestLongLists(t *testing.T) {
	var ts []Target
	for i := range 12 {
		ts = append(ts, Target{Path: fmt.Sprintf("/dev/sd%c", 'b'+i), Name: fmt.Sprintf("sd%c", 'b'+i), Removable: true, Size: 8 << 30, Verdict: disks.Verdict{Level: disks.OK}})
	}
	o := fakeOptions(newFakeBackend())
	o.Targets = func(disks.Check) ([]Target, error) { return ts, nil }
	o.Catalogs = []string{goodCatalog}
	h := newHarness(t, o)
	h.resize(80, 12) // 3 of the 6 images fit, 2 of the 12 disks
	more := func() []string { return regexp.MustCompile(`[↑↓] \d+ more`).FindAllString(h.screenText(), -1) }
	if got, want := more(), []string{"↓ 3 more"}; !slices.Equal(got, want) {
		t.Errorf("images at the top: %q, want %q:\n%s", got, want, h.screenText())
	}
	h.send(keys("down", "down", "down", "down", "down")...)
	if got, want := more(), []string{"↑ 3 more"}; !slices.Equal(got, want) {
		t.Errorf("images at the bottom: %q, want %q:\n%s", got, want, h.screenText())
	}
	h.send(press("enter"))
	h.want(screenDisks)
	h.send(keys("down", "down", "down", "down")...)
	if got, want := more(), []string{"↑ 3 more", "↓ 7 more"}; !slices.Equal(got, want) {
		t.Errorf("disks in the middle: %q, want %q:\n%s", got, want, h.screenText())
	}
}

func TestSourceFieldStartsEmpty(t *testing.T) {
	o := fakeOptions(newFakeBackend())
	o.ImageRoot = "/nonexistent"
	h := newHarness(t, o)
	h.want(screenSource)
	h.send(keys("down", "down", "enter")...)
	h.send(typed("https://typo.example/catalog.toml")...)
	h.send(press("esc"))
	h.send(press("enter"))
	if v := h.m.source.input.Value(); v != "" {
		t.Errorf("the typed source field starts with %q after esc, want empty", v)
	}
	h.send(typed(badCatalog)...)
	h.send(press("enter"))
	h.want(screenImages)
	h.send(press("esc"))
	h.want(screenSource)
	h.send(press("enter"))
	if v := h.m.source.input.Value(); v != "" {
		t.Errorf("the typed source field starts with %q after a load, want empty", v)
	}
}

func TestProgressUnknownSize(t *testing.T) {
	s := newProgressScreen(plan{image: catalog.Resolved{Name: "big.img.gz", Source: fakeSource{"/images/big.img.gz"}}, target: fakeTargets()[1]})
	s.SetSize(80, 20)
	s.p = flash.Progress{Phase: flash.PhaseWriting, SourceBytes: 131 << 20, SourceTotal: 402 << 20, Written: 700 << 20, Zeroed: 412 << 20, ImageSize: -1, Rate: 143.2 * (1 << 20)}
	v := ansi.Strip(s.View(DefaultStyles()))
	for _, want := range []string{"1.1 GiB (image size known at the end)", "700 MiB written, 412 MiB zeroed", "143 MiB/s", "Read      131 MiB of 402 MiB", "33% of the compressed file read"} {
		if !strings.Contains(v, want) {
			t.Errorf("progress of a gzip image lacks %q:\n%s", want, v)
		}
	}
	// The only percentage is the source's, on its labelled line.
	for _, l := range strings.Split(v, "\n") {
		if strings.Contains(l, "%") && !strings.Contains(l, "of the compressed file read") {
			t.Errorf("a percentage not labelled as the source's: %q\n%s", l, v)
		}
	}
}

func TestCancelInPlainWords(t *testing.T) {
	flashing := func(t *testing.T) (*fakeBackend, *harness) {
		f := newFakeBackend()
		f.hold = true
		h := atConfirm(t, f, fakeOptions(f))
		h.send(press("y"))
		h.until("progress", func(m Model) bool { return m.progress.p.Phase == "writing" })
		return f, h
	}
	t.Run("cancel, then quit from the error screen", func(t *testing.T) {
		_, h := flashing(t)
		h.send(keys("ctrl+c", "y")...)
		h.until("error", func(m Model) bool { return m.screen == screenError })
		s := h.screenText()
		if strings.Contains(s, "context canceled") || !strings.Contains(s, "/dev/sdb was left without a partition table") {
			t.Errorf("the error screen after a cancel:\n%s", s)
		}
		h.send(press("q"))
		if err := h.m.outcome.Err; !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "context canceled") {
			t.Errorf("outcome error = %q, want a cancellation in plain words", err)
		}
		want := []Unfinished{{Target: "/dev/sdb", Left: "/dev/sdb was left without a partition table: it will not boot until it is flashed again."}}
		if diff := cmp.Diff(want, h.m.outcome.Unfinished); diff != "" {
			t.Errorf("unfinished (-want +got):\n%s", diff)
		}
	})
	for _, tc := range []struct {
		name string
		msg  tea.Msg
	}{{"q y", nil}, {"a signal", interruptMsg{}}} {
		t.Run(tc.name+" during a flash", func(t *testing.T) {
			_, h := flashing(t)
			if tc.msg != nil {
				h.send(tc.msg)
			} else {
				h.send(keys("q", "y")...)
			}
			h.until("quit", func(Model) bool { return h.quit })
			err := h.m.outcome.Err
			if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "context") {
				t.Errorf("outcome error = %q, want a cancellation in plain words", err)
			}
			if len(h.m.outcome.Flashed) != 0 || len(h.m.outcome.Unfinished) != 1 {
				t.Errorf("outcome = %+v, want /dev/sdb unfinished", h.m.outcome)
			}
		})
	}
	t.Run("a flash after a success is no longer flashed", func(t *testing.T) {
		f := newFakeBackend()
		h := atConfirm(t, f, fakeOptions(f))
		h.send(press("y"))
		h.until("done", func(m Model) bool { return m.screen == screenDone })
		f.mu.Lock()
		f.hold = true
		f.mu.Unlock()
		h.send(press("a"))
		h.want(screenDisks)
		h.send(press("enter"))
		h.send(press("y"))
		h.until("progress", func(m Model) bool { return m.screen == screenProgress && m.progress.p.Phase == "writing" })
		h.send(keys("q", "y")...)
		h.until("quit", func(Model) bool { return h.quit })
		if len(h.m.outcome.Flashed) != 0 || len(h.m.outcome.Unfinished) != 1 {
			t.Errorf("outcome = %+v, want /dev/sdb unfinished, not flashed", h.m.outcome)
		}
	})
}

func TestLeftOn(t *testing.T) {
	for _, tc := range []struct {
		phase flash.Phase
		want  string
		wrote bool
	}{
		{flash.PhaseOpening, "Nothing was written to /dev/sdb", false},
		{flash.PhaseWriting, "/dev/sdb was left without a partition table", true},
		{flash.PhaseFinishing, "/dev/sdb was left without a partition table, or with one over an image that did not finish", true},
		{flash.PhaseVerifying, "/dev/sdb holds the image, but reading it back failed", true},
	} {
		got, wrote := leftOn("/dev/sdb", tc.phase)
		if !strings.HasPrefix(got, tc.want) || wrote != tc.wrote {
			t.Errorf("leftOn(/dev/sdb, %s) = %q, %v; want %q..., %v", tc.phase, got, wrote, tc.want, tc.wrote)
		}
	}
}

// TestImagesPendingDigest: an image whose server is still computing its
// sha256 ([[pending_images]]) reads "wait" in the SHA256 column, not "-" as
// one that has no digest.
func TestImagesPendingDigest(t *testing.T) {
	s := newImagesScreen("/root", DefaultStyles())
	s.SetSize(80, 24)
	s.setRows([]catalog.Entry{
		{Name: "big.img", Pending: true, Size: 40 << 30, From: "http://h/catalog.toml"},
		{Name: "plain.img", Size: 1 << 20, From: "http://h/catalog.toml"},
	}, nil, nil)
	s.loading = false
	view := s.View(DefaultStyles())
	for _, want := range []string{"big.img", "wait"} {
		if !strings.Contains(view, want) {
			t.Errorf("images view = %q, want %q", view, want)
		}
	}
	if strings.Count(view, "wait") != 1 {
		t.Errorf("images view = %q, want one waiting row", view)
	}
}
