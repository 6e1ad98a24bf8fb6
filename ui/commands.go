package ui

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"

	"bty/catalog"
	"bty/flash"
)

// resolvePrefill resolves --image (again).
func (m *Model) resolvePrefill() tea.Cmd {
	m.resolveGen++
	m.images.status = "Opening " + m.opt.Image + "..."
	return m.prefillCmd()
}

func (m Model) prefillCmd() tea.Cmd {
	gen, spec, root, cats, res, ins, ctx := m.resolveGen, m.opt.Image, m.opt.ImageRoot, m.catalogs, m.res, m.be.Inspect, m.ctx
	return func() tea.Msg {
		img, err := res.Resolve(ctx, spec, root, cats)
		var e catalog.Entry
		if img.Path != "" && err == nil {
			// A path given directly: its size, for the plan and the
			// verdicts, is the file's.
			if fi, err := os.Stat(img.Path); err == nil {
				e.Size = fi.Size()
			}
		}
		return resolvedMsg{gen: gen, prefill: true, entry: e, image: img, info: inspect(ctx, ins, img, err), err: err}
	}
}

// inspect reads what an opened image will write. A source that cannot be
// read now leaves it unknown: the flash will say why.
func inspect(ctx context.Context, fn func(context.Context, flash.Source, flash.Options) (flash.Info, error), img catalog.Resolved, err error) flash.Info {
	unknown := flash.Info{SourceSize: -1, ImageSize: -1}
	if err != nil || img.Source == nil {
		return unknown
	}
	ctx, cancel := context.WithTimeout(ctx, inspectTimeout)
	defer cancel()
	info, err := fn(ctx, img.Source, flash.Options{FormatHint: img.Format})
	if err != nil {
		return unknown
	}
	return info
}

// inspectTimeout bounds the reads of an image's head and trailer before the
// disks are listed: a source that slow will show its trouble in the flash.
const inspectTimeout = 15 * time.Second

// imageLoad is one listing of the images: the image root's, then each
// catalog's, arriving one by one. A slow catalog does not hold back the
// others; stop gives up on the ones still loading.
type imageLoad struct {
	catalogs []string
	lists    [][]catalog.Entry // [0] the image root, then one per catalog
	errs     []string          // per list, its banner line, "" when none
	done     []bool
	ctx      context.Context // of the catalog loads
	stop     context.CancelFunc
}

func (l imageLoad) pending() []string {
	var out []string
	for i, src := range l.catalogs {
		if !l.done[i+1] {
			out = append(out, src)
		}
	}
	return out
}

func (l imageLoad) complete() bool { return !slices.Contains(l.done, false) }

// loadImages lists the image root and the catalogs (again).
func (m *Model) loadImages() tea.Cmd {
	m.startLoad()
	m.images.loading = true
	return m.imagesCmd()
}

// startLoad begins a new image load, abandoning the last one.
func (m *Model) startLoad() {
	if m.load.stop != nil {
		m.load.stop()
	}
	m.imagesGen++
	n := 1 + len(m.catalogs)
	// The catalogs load under a context of their own, which stop cancels.
	ctx, stop := context.WithCancel(m.ctx)
	m.load = imageLoad{catalogs: m.catalogs, lists: make([][]catalog.Entry, n), errs: make([]string, n), done: make([]bool, n), ctx: ctx, stop: stop}
}

// imagesCmd lists the image root and loads each catalog, in parallel
// (Resolver.Lists); each list arrives as a listLoadedMsg.
func (m Model) imagesCmd() tea.Cmd {
	gen, res, root, cats, ctx := m.imagesGen, m.res, m.opt.ImageRoot, m.load.catalogs, m.load.ctx
	return func() tea.Msg { return nextList(gen, res.Lists(ctx, root, cats))() }
}

// nextList waits for the next list of load gen; nil after the last.
func nextList(gen int, lists <-chan catalog.List) tea.Cmd {
	return func() tea.Msg {
		l, ok := <-lists
		if !ok {
			return nil
		}
		return listLoadedMsg{gen: gen, list: l, next: lists}
	}
}

// listLoaded takes one list of images and waits for the next; the image
// screen shows the rows once the image root is listed, and names the
// catalogs still loading. A list of an abandoned load is dropped.
func (m Model) listLoaded(msg listLoadedMsg) (Model, tea.Cmd) {
	i := msg.list.Index
	if msg.gen != m.imagesGen || i >= len(m.load.done) {
		return m, nil
	}
	next := nextList(msg.gen, msg.next)
	if m.load.done[i] { // given up on (stopLoading)
		return m, next
	}
	l := m.load
	l.lists, l.errs, l.done = slices.Clone(l.lists), slices.Clone(l.errs), slices.Clone(l.done)
	l.lists[i], l.errs[i], l.done[i] = msg.list.Rows, bannerLine(msg.list), true
	m.load = l
	return m.showLoad(), next
}

// bannerLine is what the image screen says of a list that could not be read,
// "" when it was.
func bannerLine(l catalog.List) string {
	switch {
	case l.Err == nil:
		return ""
	case l.Index == 0:
		return plainText(l.Err)
	}
	msg := oneLine(l.Err)
	if !strings.Contains(msg, l.Source) {
		msg = "catalog " + l.Source + ": " + msg
	}
	return msg + " (its images are not listed)"
}

// stopLoading gives up on the catalogs still loading.
func (m Model) stopLoading() Model {
	if m.load.stop != nil {
		m.load.stop()
	}
	l := m.load
	l.errs, l.done = slices.Clone(l.errs), slices.Clone(l.done)
	for i, src := range l.catalogs {
		if !l.done[i+1] {
			l.done[i+1] = true
			l.errs[i+1] = "catalog " + src + ": stopped waiting for it (its images are not listed; r loads it again)"
		}
	}
	m.load = l
	return m.showLoad()
}

func (m Model) showLoad() Model {
	l := m.load
	if !l.done[0] {
		return m
	}
	var banner []string
	for _, e := range l.errs {
		if e != "" {
			banner = append(banner, e)
		}
	}
	m.images.setRows(catalog.Merge(l.lists...), banner, l.pending())
	if !l.complete() {
		return m
	}
	l.stop()
	if !m.sourceFixed && !m.sourceSeen && m.opt.Image == "" {
		m.sourceSeen = true
		if len(m.images.rows) == 0 && len(banner) == 0 && m.screen == screenImages {
			m.source.canBack = false
			m.screen = screenSource
		}
	}
	return m
}

func (m *Model) openImage(e catalog.Entry) tea.Cmd {
	m.resolveGen++
	m.opening = e
	gen, res, ins, ctx := m.resolveGen, m.res, m.be.Inspect, m.ctx
	m.images.status = "Opening " + e.Name + "..."
	return func() tea.Msg {
		img, err := res.Open(ctx, e)
		return resolvedMsg{gen: gen, entry: e, image: img, info: inspect(ctx, ins, img, err), err: err}
	}
}

func (m *Model) loadTargets() tea.Cmd {
	m.targetsGen++
	m.disks.loading = true
	gen, list, c := m.targetsGen, m.opt.Targets, m.plan.check(m.opt.ImageRoot)
	return func() tea.Msg {
		if list == nil {
			return targetsLoadedMsg{gen: gen, err: errors.New("no targets to list")}
		}
		ts, err := list(c)
		return targetsLoadedMsg{gen: gen, targets: ts, err: err}
	}
}

// startFlash runs the flash in a goroutine started by the returned command;
// progress and the result come through flashCh, drained by waitFlash.
func (m *Model) startFlash() tea.Cmd {
	ctx, cancel := context.WithCancel(m.ctx)
	ch := make(chan tea.Msg, 8)
	m.cancel, m.flashCh, m.quitAfter = cancel, ch, false
	m.progress = newProgressScreen(m.plan)
	m.progress.SetSize(m.bodySize())
	m.screen = screenProgress
	pl, fl := m.plan, m.be.Flash
	// phase is the last phase reported, kept even when the screen drops the
	// report: what a failure leaves on the target depends on it.
	var mu sync.Mutex
	phase := flash.PhaseOpening
	opt := flash.Options{
		SHA256:     pl.sha256,
		Size:       pl.image.Size,
		FormatHint: pl.image.Format,
		Verify:     pl.verify,
		Progress: func(p flash.Progress) {
			mu.Lock()
			phase = p.Phase
			mu.Unlock()
			select {
			case ch <- progressMsg{p}:
			default: // the screen is behind: this report is dropped, the next one is newer
			}
		},
	}
	return func() tea.Msg {
		go func() {
			res, err := fl(ctx, pl.image.Source, pl.target.Path, opt)
			mu.Lock()
			last := phase
			mu.Unlock()
			ch <- flashDoneMsg{res: res, err: err, phase: last}
		}()
		return <-ch
	}
}

func waitFlash(ch chan tea.Msg) tea.Cmd {
	return func() tea.Msg { return <-ch }
}
