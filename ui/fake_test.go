package ui

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"bty/catalog"
	"bty/disks"
	"bty/flash"
	"bty/format"
)

// The fixtures: an image root, a catalog that loads, one that does not, and
// four disks (refused, removable, non-removable, mounted).
const (
	fakeRoot    = "/var/lib/bty/images"
	goodCatalog = "https://images.example.com/catalog.toml"
	badCatalog  = "oras://ghcr.io/example/catalog:v1"
	slowCatalog = "https://slow.example.com/catalog.toml" // answers only when cancelled
	fakeDigest  = "3f2a9c01d4e5b6a7980112233445566778899aabbccddeeff00112233c9d1a7e"
)

func fakeRootRows() []catalog.Entry {
	return []catalog.Entry{
		{Name: "alpine-3.20-x86_64.qcow2", Src: fakeRoot + "/alpine-3.20-x86_64.qcow2", Format: format.Qcow2.Catalog(), Size: 187 << 20, From: fakeRoot},
		{Name: "debian-12-generic-amd64.img.xz", Src: fakeRoot + "/debian-12-generic-amd64.img.xz", Format: format.Xz.Catalog(), Size: 312 << 20, SHA256: fakeDigest, From: fakeRoot},
		{Name: "rescue.img", Src: fakeRoot + "/rescue.img", Format: format.Raw.Catalog(), Size: 64 << 20, From: fakeRoot},
		{Name: "ubuntu-24.04-server-cloudimg.img.gz", Src: fakeRoot + "/ubuntu-24.04-server-cloudimg.img.gz", Format: format.Gzip.Catalog(), Size: 598 << 20, SHA256: fakeDigest, From: fakeRoot},
	}
}

func fakeCatalogRows() []catalog.Entry {
	return []catalog.Entry{
		{Name: "fedora-40-cloud.raw.xz", Src: "https://images.example.com/fedora-40-cloud.raw.xz", Format: format.Xz.Catalog(), Size: 402 << 20, SHA256: fakeDigest, From: goodCatalog},
		{Name: "talos-1.7-metal.raw.zst", Src: "https://images.example.com/talos-1.7-metal.raw.zst", Format: format.Zstd.Catalog(), Size: 91 << 20, From: goodCatalog},
	}
}

func fakeTargets() []Target {
	return []Target{
		{Path: "/dev/sda", Name: "sda", Model: "ATA Samsung SSD 870", Serial: "S5STNF0T401234", Transport: "sata", Size: 500107862016,
			Verdict: disks.Verdict{Level: disks.Refused, Reasons: []string{"holds the running system (/ is mounted from sda2)"}}},
		{Path: "/dev/sdb", Name: "sdb", Model: "SanDisk Ultra", Serial: "4C530001230517117403", Transport: "usb", Size: 15931539456, Removable: true,
			Verdict: disks.Verdict{Level: disks.OK}},
		{Path: "/dev/nvme0n1", Name: "nvme0n1", Model: "Samsung SSD 980 1TB", Serial: "S64ANS0T123456", Transport: "nvme", Size: 1000204886016,
			Verdict: disks.Verdict{Level: disks.Confirm, Reasons: []string{"non-removable: type its name to confirm"}}},
		{Path: "/dev/sdc", Name: "sdc", Model: "WD Elements 25A2", Serial: "WX12A3456789", Transport: "usb", Size: 2000398934016, Removable: true,
			Verdict: disks.Verdict{Level: disks.Refused, Reasons: []string{"partition sdc1 is mounted at /mnt/backup"}}},
	}
}

// fakeSource is a source that is never read: the fake flash does not read.
type fakeSource struct{ name string }

func (s fakeSource) Name() string { return s.name }
func (s fakeSource) Open(context.Context, int64) (io.ReadCloser, int64, error) {
	return io.NopCloser(strings.NewReader("")), 0, nil
}

// fakeProgress is what the fake flash reports while it runs.
func fakeProgress() flash.Progress {
	return flash.Progress{Phase: flash.PhaseWriting, SourceBytes: 131 << 20, SourceTotal: 402 << 20,
		Written: 700 << 20, Zeroed: 412 << 20, ImageSize: 2 << 30, Rate: 143.2 * (1 << 20), ETA: 7 * time.Second}
}

func fakeResult() *flash.Result {
	return &flash.Result{Format: format.Xz, SHA256: fakeDigest, SourceBytes: 312 << 20, ImageSize: 2 << 30,
		Written: 1288 << 20, Zeroed: 760 << 20, Duration: 14*time.Second + 300*time.Millisecond, Verified: true}
}

// fakeBackend records what the wizard asked for. Its flash reports one
// progress and then, with hold set, waits for release or cancellation.
type fakeBackend struct {
	mu       sync.Mutex
	hold     bool
	release  chan struct{}
	flashErr error
	flashed  []string // targets
	calls    int      // flashes started
	unsized  bool     // report progress as for a gzip image: decoded size unknown
	stopped  int      // slow catalog loads that were cancelled
	opened   []string // image names
	loads    int      // image list loads
	lastOpt  flash.Options
}

func newFakeBackend() *fakeBackend { return &fakeBackend{release: make(chan struct{})} }

// Lists lists the fake image root and catalogs as the wizard's Resolver.
func (f *fakeBackend) Lists(ctx context.Context, root string, catalogs []string) <-chan catalog.List {
	ch := make(chan catalog.List, 1+len(catalogs))
	var wg sync.WaitGroup
	wg.Go(func() {
		l := catalog.List{Source: root}
		if root != "" {
			l.Rows, l.Err = f.scanRoot(root)
		}
		ch <- l
	})
	for i, src := range catalogs {
		wg.Go(func() {
			l := catalog.List{Index: 1 + i, Source: src}
			l.Rows, l.Err = f.loadCatalog(ctx, src)
			ch <- l
		})
	}
	go func() {
		wg.Wait()
		close(ch)
	}()
	return ch
}

// scanRoot lists the fake image root; any other directory does not exist,
// which is no error.
func (f *fakeBackend) scanRoot(dir string) ([]catalog.Entry, error) {
	f.mu.Lock()
	f.loads++
	f.mu.Unlock()
	if dir == fakeRoot {
		return fakeRootRows(), nil
	}
	return nil, nil
}

func (f *fakeBackend) loadCatalog(ctx context.Context, src string) ([]catalog.Entry, error) {
	switch src {
	case goodCatalog:
		return fakeCatalogRows(), nil
	case slowCatalog:
		<-ctx.Done()
		f.mu.Lock()
		f.stopped++
		f.mu.Unlock()
		return nil, fmt.Errorf("catalog %s: Get %q: %w", src, src, ctx.Err())
	}
	return nil, fmt.Errorf("catalog %s: no answer within 20s (offline?): check the network, or use a catalog file", src)
}

func (f *fakeBackend) Open(_ context.Context, e catalog.Entry) (catalog.Resolved, error) {
	f.mu.Lock()
	f.opened = append(f.opened, e.Name)
	f.mu.Unlock()
	if strings.HasPrefix(e.Name, "rescue") {
		return catalog.Resolved{}, fmt.Errorf("open %s: permission denied", e.Src)
	}
	from := catalog.DigestCatalog
	if e.From == fakeRoot {
		from = catalog.DigestSidecar
	}
	if e.SHA256 == "" {
		from = ""
	}
	return catalog.Resolved{Name: e.Name, Source: fakeSource{e.Src}, SHA256: e.SHA256, SHA256From: from, Format: e.Format, Size: e.Size, Ref: e.Ref}, nil
}

func (f *fakeBackend) Resolve(_ context.Context, spec, root string, cats []string) (catalog.Resolved, error) {
	for _, e := range append(fakeRootRows(), fakeCatalogRows()...) {
		if e.Name == spec {
			return catalog.Resolved{Name: e.Name, Source: fakeSource{e.Src}, SHA256: e.SHA256, Format: e.Format, Size: e.Size}, nil
		}
	}
	return catalog.Resolved{}, fmt.Errorf("image %q: not found in the image root %s, and no such file here: run bty images to see the names", spec, root)
}

func (f *fakeBackend) backend() Backend {
	return Backend{
		// Every image decodes to 2 GiB, known from its header.
		Inspect: func(_ context.Context, src flash.Source, _ flash.Options) (flash.Info, error) {
			return flash.Info{Format: format.FromName(src.Name()), SourceSize: -1, ImageSize: 2 << 30, Exact: true}, nil
		},
		Flash: func(ctx context.Context, src flash.Source, target string, opt flash.Options) (*flash.Result, error) {
			f.mu.Lock()
			f.lastOpt = opt
			f.calls++
			hold, release, ferr, unsized := f.hold, f.release, f.flashErr, f.unsized
			f.mu.Unlock()
			opt.Progress(flash.Progress{Phase: flash.PhaseOpening, SourceTotal: -1, ImageSize: -1})
			p := fakeProgress()
			if unsized {
				p.ImageSize, p.ETA = -1, 0
			}
			opt.Progress(p)
			if hold {
				select {
				case <-ctx.Done():
					return nil, fmt.Errorf("write %s: %w", target, ctx.Err())
				case <-release:
				}
			}
			if ferr != nil {
				return nil, ferr
			}
			f.mu.Lock()
			f.flashed = append(f.flashed, target)
			f.mu.Unlock()
			return fakeResult(), nil
		},
	}
}

func (f *fakeBackend) flashCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeBackend) flashedTargets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.flashed...)
}

// fakeOptions are the options of a real run (root, default catalog, reboot)
// over the fakes.
func fakeOptions(f *fakeBackend) Options {
	return Options{
		ImageRoot:      fakeRoot,
		DefaultCatalog: goodCatalog,
		Targets:        func(disks.Check) ([]Target, error) { return fakeTargets(), nil },
		CanReboot:      true,
		Resolver:       f,
		Backend:        f.backend(),
	}
}

// press is the key message for a key as bubbletea names it: "enter", "esc",
// "up", "ctrl+c", "a".
func press(k string) tea.KeyPressMsg {
	switch k {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	}
	r := []rune(k)
	if len(r) != 1 {
		panic("press: unknown key " + k)
	}
	return tea.KeyPressMsg{Code: r[0], Text: k}
}

// keys are the messages for typing each key in turn.
func keys(ks ...string) []tea.Msg {
	var out []tea.Msg
	for _, k := range ks {
		out = append(out, press(k))
	}
	return out
}

// typed is the messages for typing text.
func typed(s string) []tea.Msg {
	var out []tea.Msg
	for _, r := range s {
		out = append(out, tea.KeyPressMsg{Code: r, Text: string(r)})
	}
	return out
}

func TestPress(t *testing.T) {
	for _, k := range []string{"enter", "esc", "up", "down", "ctrl+c", "a", "/", "y"} {
		if got := press(k).String(); got != k {
			t.Errorf("press(%q).String() = %q, want %q", k, got, k)
		}
	}
}
