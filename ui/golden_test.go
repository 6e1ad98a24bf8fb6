package ui

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"bty/disks"
)

// Golden screens: each screen is reached by driving a real program (teatest)
// with keys over the fakes, at 80x24 and 120x40 in the default look and at
// 80x24 in the plain look. The golden file holds the screen as text (the
// colours stripped); refresh with go test ./ui -run TestGolden -update.

// recorder keeps the model a program last handed to its filter, so a test can
// wait for a state instead of for bytes on the output.
type recorder struct {
	mu sync.Mutex
	m  Model
	ok bool
}

func (r *recorder) filter(m tea.Model, msg tea.Msg) tea.Msg {
	if mm, ok := m.(Model); ok {
		r.mu.Lock()
		r.m, r.ok = mm, true
		r.mu.Unlock()
	}
	return msg
}

// probeMsg does nothing; sending it makes the program pass its model through
// the filter.
type probeMsg struct{}

func (r *recorder) wait(t *testing.T, tm *teatest.TestModel, what string, cond func(Model) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		tm.Send(probeMsg{})
		time.Sleep(15 * time.Millisecond)
		r.mu.Lock()
		m, ok := r.m, r.ok
		r.mu.Unlock()
		if ok && cond(m) {
			return
		}
	}
	t.Fatalf("waiting for %s", what)
}

func on(s screen) func(Model) bool {
	return func(m Model) bool {
		switch {
		case m.screen != s:
			return false
		case s == screenImages:
			return !m.images.loading && m.images.status == ""
		case s == screenDisks:
			return !m.disks.loading
		}
		return true
	}
}

// goldenCase reaches one screen.
type goldenCase struct {
	name  string
	setup func(*fakeBackend, *Options)
	steps func(t *testing.T, tm *teatest.TestModel, r *recorder)
}

func send(tm *teatest.TestModel, msgs ...tea.Msg) {
	for _, m := range msgs {
		tm.Send(m)
	}
}

func goldenCases() []goldenCase {
	return []goldenCase{
		{"source", func(_ *fakeBackend, o *Options) { o.ImageRoot = "/nonexistent" }, func(t *testing.T, tm *teatest.TestModel, r *recorder) {
			r.wait(t, tm, "source", on(screenSource))
		}},
		{"source-custom", func(_ *fakeBackend, o *Options) { o.ImageRoot = "/nonexistent" }, func(t *testing.T, tm *teatest.TestModel, r *recorder) {
			r.wait(t, tm, "source", on(screenSource))
			send(tm, keys("down", "down", "enter")...)
			send(tm, typed("oras://registry.example/Team/Catalog:v2")...)
			r.wait(t, tm, "typed", func(m Model) bool { return strings.HasSuffix(m.source.input.Value(), "v2") })
		}},
		{"images", func(_ *fakeBackend, o *Options) { o.Catalogs = []string{goodCatalog, badCatalog} }, func(t *testing.T, tm *teatest.TestModel, r *recorder) {
			r.wait(t, tm, "images", on(screenImages))
			send(tm, press("down"))
			r.wait(t, tm, "cursor", func(m Model) bool { return m.images.cursor == 1 })
		}},
		{"images-filter", func(*fakeBackend, *Options) {}, func(t *testing.T, tm *teatest.TestModel, r *recorder) {
			r.wait(t, tm, "images", on(screenImages))
			send(tm, press("/"))
			send(tm, typed("img")...)
			r.wait(t, tm, "filter", func(m Model) bool { return m.images.filter.Value() == "img" })
		}},
		{"disks", func(*fakeBackend, *Options) {}, func(t *testing.T, tm *teatest.TestModel, r *recorder) {
			r.wait(t, tm, "images", on(screenImages))
			send(tm, keys("down", "enter")...)
			r.wait(t, tm, "disks", on(screenDisks))
			r.wait(t, tm, "cursor", func(m Model) bool { return m.disks.cursor == 1 })
		}},
		{"disks-hidden", func(*fakeBackend, *Options) {}, func(t *testing.T, tm *teatest.TestModel, r *recorder) {
			r.wait(t, tm, "images", on(screenImages))
			send(tm, keys("down", "enter")...)
			r.wait(t, tm, "disks", on(screenDisks))
			send(tm, press("a"))
			r.wait(t, tm, "hidden", func(m Model) bool { return !m.disks.showRefused })
		}},
		{"confirm-removable", func(*fakeBackend, *Options) {}, func(t *testing.T, tm *teatest.TestModel, r *recorder) {
			r.wait(t, tm, "images", on(screenImages))
			send(tm, keys("down", "enter")...)
			r.wait(t, tm, "disks", on(screenDisks))
			send(tm, press("enter"))
			r.wait(t, tm, "confirm", on(screenConfirm))
		}},
		{"confirm-typed", func(_ *fakeBackend, o *Options) { o.Verify = true }, func(t *testing.T, tm *teatest.TestModel, r *recorder) {
			r.wait(t, tm, "images", on(screenImages))
			send(tm, keys("down", "enter")...)
			r.wait(t, tm, "disks", on(screenDisks))
			send(tm, keys("down", "enter")...)
			r.wait(t, tm, "confirm", on(screenConfirm))
			send(tm, typed("nvme")...)
			r.wait(t, tm, "typed", func(m Model) bool { return m.confirm.input.Value() == "nvme" })
		}},
		{"progress", func(f *fakeBackend, o *Options) { f.hold = true; o.Catalogs = []string{goodCatalog} }, func(t *testing.T, tm *teatest.TestModel, r *recorder) {
			r.wait(t, tm, "images", on(screenImages))
			send(tm, keys("down", "down", "down", "down")...)
			r.wait(t, tm, "fedora", func(m Model) bool { return m.images.cursor == 4 })
			send(tm, press("enter")) // fedora, over https
			r.wait(t, tm, "disks", on(screenDisks))
			send(tm, press("enter"))
			r.wait(t, tm, "confirm", on(screenConfirm))
			send(tm, press("y"))
			r.wait(t, tm, "progress", func(m Model) bool { return m.screen == screenProgress && m.progress.p.Phase == "writing" })
		}},
		{"progress-cancel", func(f *fakeBackend, o *Options) { f.hold = true }, func(t *testing.T, tm *teatest.TestModel, r *recorder) {
			r.wait(t, tm, "images", on(screenImages))
			send(tm, keys("down", "enter")...)
			r.wait(t, tm, "disks", on(screenDisks))
			send(tm, press("enter"))
			r.wait(t, tm, "confirm", on(screenConfirm))
			send(tm, press("y"))
			r.wait(t, tm, "progress", func(m Model) bool { return m.screen == screenProgress && m.progress.p.Phase == "writing" })
			send(tm, press("ctrl+c"))
			r.wait(t, tm, "asking", func(m Model) bool { return m.progress.asking == askCancel })
		}},
		{"progress-gzip", func(f *fakeBackend, o *Options) { f.hold, f.unsized = true, true }, func(t *testing.T, tm *teatest.TestModel, r *recorder) {
			r.wait(t, tm, "images", on(screenImages))
			send(tm, keys("down", "down", "down", "enter")...) // ubuntu, gzip
			r.wait(t, tm, "disks", on(screenDisks))
			send(tm, press("enter"))
			r.wait(t, tm, "confirm", on(screenConfirm))
			send(tm, press("y"))
			r.wait(t, tm, "progress", func(m Model) bool { return m.screen == screenProgress && m.progress.p.Phase == "writing" })
		}},
		{"images-loading", func(_ *fakeBackend, o *Options) { o.Catalogs = []string{slowCatalog} }, func(t *testing.T, tm *teatest.TestModel, r *recorder) {
			r.wait(t, tm, "root rows", func(m Model) bool { return m.screen == screenImages && len(m.images.rows) == 4 })
		}},
		{"help", func(*fakeBackend, *Options) {}, func(t *testing.T, tm *teatest.TestModel, r *recorder) {
			r.wait(t, tm, "images", on(screenImages))
			send(tm, press("?"))
			r.wait(t, tm, "help", func(m Model) bool { return m.showHelp })
		}},
		{"done-reboot", func(*fakeBackend, *Options) {}, func(t *testing.T, tm *teatest.TestModel, r *recorder) {
			r.wait(t, tm, "images", on(screenImages))
			send(tm, keys("down", "enter")...)
			r.wait(t, tm, "disks", on(screenDisks))
			send(tm, press("enter"))
			r.wait(t, tm, "confirm", on(screenConfirm))
			send(tm, press("y"))
			r.wait(t, tm, "done", on(screenDone))
			send(tm, press("b"))
			r.wait(t, tm, "asking", func(m Model) bool { return m.done.asking })
		}},
		{"done", func(*fakeBackend, *Options) {}, func(t *testing.T, tm *teatest.TestModel, r *recorder) {
			r.wait(t, tm, "images", on(screenImages))
			send(tm, keys("down", "enter")...)
			r.wait(t, tm, "disks", on(screenDisks))
			send(tm, press("enter"))
			r.wait(t, tm, "confirm", on(screenConfirm))
			send(tm, press("y"))
			r.wait(t, tm, "done", on(screenDone))
		}},
		{"error", func(f *fakeBackend, _ *Options) {
			f.flashErr = fmt.Errorf("integrity check failed: sha256 mismatch: the image's bytes hash to 0c1d2e3f4a5b6c7d8e9f00112233445566778899aabbccddeeff001122334455, the catalog says %s: the download is corrupt or the catalog is stale", fakeDigest)
		}, func(t *testing.T, tm *teatest.TestModel, r *recorder) {
			r.wait(t, tm, "images", on(screenImages))
			send(tm, keys("down", "enter")...)
			r.wait(t, tm, "disks", on(screenDisks))
			send(tm, press("enter"))
			r.wait(t, tm, "confirm", on(screenConfirm))
			send(tm, press("y"))
			r.wait(t, tm, "error", on(screenError))
		}},
	}
}

func TestGolden(t *testing.T) {
	for _, look := range []struct {
		name  string
		plain bool
		sizes [][2]int
	}{
		{"default", false, [][2]int{{80, 24}, {120, 40}}},
		{"plain", true, [][2]int{{80, 24}}},
	} {
		for _, size := range look.sizes {
			for _, gc := range goldenCases() {
				t.Run(fmt.Sprintf("%s/%s-%dx%d", gc.name, look.name, size[0], size[1]), func(t *testing.T) {
					runGolden(t, gc, look.plain, size)
				})
			}
		}
	}
}

// TestGoldenConfirmSizes: the confirmation at 40x12 (too small: it says so),
// 60x24 (a long path wraps, the warning whole) and 80x24.
func TestGoldenConfirmSizes(t *testing.T) {
	long := func(_ *fakeBackend, o *Options) {
		o.Image, o.Disk = "debian-12-generic-amd64.img.xz", longTarget
		o.Targets = func(disks.Check) ([]Target, error) { return []Target{FileTarget(longTarget, "regular file")}, nil }
	}
	typed := func(_ *fakeBackend, o *Options) {
		o.Image, o.Disk = "debian-12-generic-amd64.img.xz", "/dev/nvme0n1"
	}
	atConfirm := func(t *testing.T, tm *teatest.TestModel, r *recorder) {
		r.wait(t, tm, "confirm", on(screenConfirm))
	}
	for _, gc := range []goldenCase{{"file", long, atConfirm}, {"typed", typed, atConfirm}} {
		for _, size := range [][2]int{{40, 12}, {60, 24}, {80, 24}} {
			t.Run(fmt.Sprintf("%s-%dx%d", gc.name, size[0], size[1]), func(t *testing.T) {
				runGolden(t, gc, false, size)
			})
		}
	}
}

// runGolden drives a program over the fakes to a screen and compares it with
// the golden file.
func runGolden(t *testing.T, gc goldenCase, plain bool, size [2]int) {
	t.Helper()
	f := newFakeBackend()
	opt := fakeOptions(f)
	opt.Plain = plain
	gc.setup(f, &opt)
	rec := &recorder{}
	tm := teatest.NewTestModel(t, New(t.Context(), opt),
		teatest.WithInitialTermSize(size[0], size[1]),
		teatest.WithProgramOptions(tea.WithFilter(rec.filter)))
	gc.steps(t, tm, rec)
	if err := tm.Quit(); err != nil {
		t.Fatal(err)
	}
	fm, ok := tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(Model)
	if !ok {
		t.Fatal("no final model")
	}
	out, err := io.ReadAll(tm.FinalOutput(t))
	if err != nil || len(out) == 0 {
		t.Fatalf("the program drew nothing (%v)", err)
	}
	screen := ansi.Strip(fm.render())
	checkScreen(t, screen, size[0], size[1], plain)
	golden.RequireEqual(t, []byte(trimLines(screen)+"\n"))
}

// checkScreen checks what every screen must do: fill the terminal exactly,
// and in the plain look use ASCII only.
func checkScreen(t *testing.T, screen string, w, h int, plain bool) {
	t.Helper()
	lines := strings.Split(screen, "\n")
	if len(lines) != h {
		t.Errorf("%d lines, want %d", len(lines), h)
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n > w {
			t.Errorf("line %d is %d cells wide, more than %d: %q", i+1, n, w, l)
		}
		if plain {
			for _, r := range l {
				if r > 126 || (r < 32 && r != '\t') {
					t.Errorf("plain look, line %d has %q: %q", i+1, r, l)
					break
				}
			}
		}
	}
}

// trimLines drops the trailing blanks of each line, invisible on a terminal.
func trimLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}
